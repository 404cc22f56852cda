"""A simulated ``C:\\`` drive: one real directory per host, with Windows semantics on top.

Files are real files under ``Drive.root`` so tests can look at them, and SFTP and the
PowerShell vocabulary see the same bytes. On top, the drive adds what a Linux directory
lacks and a Windows node stage must cope with:

- Windows paths: ``C:\\k\\kubelet.exe``, ``C:/k/kubelet.exe`` and SFTP's ``/C:/k/...`` all
  name the same file, case-insensitively (NTFS preserves case but ignores it).
- Files held by processes (``holders``): a running (or still exiting) process holds its
  executable. Opening it for writing fails with ERROR_SHARING_VIOLATION (32); deleting
  it or replacing it by a rename fails with ERROR_ACCESS_DENIED (5); renaming the held
  file itself away works, as it does on Windows.
- A free-space budget (:meth:`fill`): writes beyond it fail with ERROR_DISK_FULL (112).

All errors are :class:`~syncer_lab.winhost.win32.Win32Error` with the Windows code.
"""

from __future__ import annotations

import hashlib
import os
import tarfile
import threading
from collections.abc import Callable
from pathlib import Path, PurePosixPath

from syncer_lab.winhost import win32
from syncer_lab.winhost.win32 import Win32Error

# What `(Get-PSDrive C).Free` reports while the disk is not "full": 40 GiB.
DEFAULT_FREE_BYTES = 40 * 1024**3


def split_windows_path(path: str) -> list[str]:
    """``C:\\k\\x`` / ``/C:/k/x`` / ``C:/k/x`` -> ``["k", "x"]``; other drives are refused.

    Raises ``Win32Error(PATH_NOT_FOUND)`` for paths that are not on drive C:.
    """
    p = path.replace("\\", "/")
    if p.startswith("/") and len(p) >= 3 and p[2] == ":":
        p = p[1:]
    if len(p) < 2 or p[1] != ":" or p[0].upper() != "C":
        raise Win32Error(win32.PATH_NOT_FOUND, path)
    parts: list[str] = []
    for part in p[2:].split("/"):
        if part in ("", "."):
            continue
        if part == "..":
            if parts:
                parts.pop()
            continue
        parts.append(part)
    return parts


def windows_path(parts: list[str]) -> str:
    return "C:\\" + "\\".join(parts)


class Drive:
    """The host's C: drive, rooted at a real directory."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.root.mkdir(parents=True, exist_ok=True)
        self._lock = threading.RLock()
        self.free_bytes: int | None = None  # None: unlimited (reported as DEFAULT_FREE_BYTES)
        # Returns the processes holding a file (key: casefolded Windows path).
        self.holders: Callable[[str], list[str]] = lambda key: []

    # --- paths -------------------------------------------------------------------------
    def resolve(self, path: str) -> Path:
        """The real path for a Windows path, matching existing names case-insensitively."""
        current = self.root
        for part in split_windows_path(path):
            current = self._child(current, part)
        return current

    @staticmethod
    def _child(directory: Path, name: str) -> Path:
        candidate = directory / name
        if candidate.exists() or not directory.is_dir():
            return candidate
        folded = name.casefold()
        for entry in os.listdir(directory):
            if entry.casefold() == folded:
                return directory / entry
        return candidate

    def windows(self, real: Path) -> str:
        """The Windows path of a real path inside the drive."""
        rel = PurePosixPath(real.relative_to(self.root).as_posix())
        return windows_path([p for p in rel.parts if p != "."])

    @staticmethod
    def key(path: str) -> str:
        """Canonical, case-folded form of a Windows path (for comparisons)."""
        return windows_path(split_windows_path(path)).casefold()

    # --- queries -----------------------------------------------------------------------
    def exists(self, path: str) -> bool:
        try:
            return self.resolve(path).exists()
        except Win32Error:
            return False

    def is_file(self, path: str) -> bool:
        try:
            return self.resolve(path).is_file()
        except Win32Error:
            return False

    def is_dir(self, path: str) -> bool:
        try:
            return self.resolve(path).is_dir()
        except Win32Error:
            return False

    def read_bytes(self, path: str) -> bytes:
        real = self.resolve(path)
        if not real.is_file():
            raise Win32Error(win32.FILE_NOT_FOUND, path)
        return real.read_bytes()

    def sha256(self, path: str) -> str:
        return hashlib.sha256(self.read_bytes(path)).hexdigest().upper()

    def free(self) -> int:
        return DEFAULT_FREE_BYTES if self.free_bytes is None else self.free_bytes

    # --- holders -----------------------------------------------------------------------
    def held(self, path: str) -> bool:
        return bool(self.holders(self.key(path)))

    # --- space -------------------------------------------------------------------------
    def charge(self, nbytes: int, path: str) -> None:
        """Take ``nbytes`` from the free-space budget, or fail with ERROR_DISK_FULL."""
        with self._lock:
            if self.free_bytes is None or nbytes <= 0:
                return
            if nbytes > self.free_bytes:
                raise Win32Error(win32.DISK_FULL, path)
            self.free_bytes -= nbytes

    def refund(self, nbytes: int) -> None:
        with self._lock:
            if self.free_bytes is not None and nbytes > 0:
                self.free_bytes += nbytes

    def fill(self, free_bytes: int = 0) -> None:
        self.free_bytes = free_bytes

    def unfill(self) -> None:
        self.free_bytes = None

    # --- changes -----------------------------------------------------------------------
    def _parent_must_exist(self, real: Path, path: str) -> None:
        if not real.parent.is_dir():
            raise Win32Error(win32.PATH_NOT_FOUND, path)

    def _writable(self, path: str) -> Path:
        """The real path of a file about to be (re)written; fails as opening it would."""
        real = self.resolve(path)
        self._parent_must_exist(real, path)
        if real.is_dir():
            raise Win32Error(win32.ACCESS_DENIED, path)
        if real.exists() and self.held(path):
            raise Win32Error(win32.SHARING_VIOLATION, path)
        return real

    def make_directory(self, path: str) -> None:
        """``Directory.CreateDirectory``: parents too; an existing file is an error."""
        current = self.root
        for part in split_windows_path(path):
            nxt = self._child(current, part)
            if nxt.is_file():
                raise Win32Error(win32.ALREADY_EXISTS, path)
            if not nxt.exists():
                nxt.mkdir()
            current = nxt

    def write_bytes(self, path: str, data: bytes) -> None:
        """Create or truncate-and-write a file (``File.WriteAllText``)."""
        real = self._writable(path)
        old = real.stat().st_size if real.exists() else 0
        self.charge(len(data) - old, path)
        real.write_bytes(data)

    def open_for_write(self, path: str, truncate: bool) -> Path:
        """Checks before an SFTP open for writing; returns the real path to open."""
        real = self._writable(path)
        if truncate and real.exists():
            self.refund(real.stat().st_size)
        return real

    def remove(self, path: str, recursive: bool) -> None:
        """Delete a file, or a directory tree (``Remove-Item -Recurse -Force``).

        Like PowerShell, a recursive delete removes what it can and then fails on the
        first held file with ERROR_ACCESS_DENIED.
        """
        real = self.resolve(path)
        if not real.exists():
            raise Win32Error(win32.FILE_NOT_FOUND, path)
        if real.is_file():
            if self.held(path):
                raise Win32Error(win32.ACCESS_DENIED, path)
            self.refund(real.stat().st_size)
            real.unlink()
            return
        if not recursive and any(real.iterdir()):
            raise Win32Error(win32.DIR_NOT_EMPTY, path)
        blocked: str | None = None
        for dirpath, dirs, files in os.walk(real, topdown=False):
            for name in files:
                f = Path(dirpath) / name
                win = self.windows(f)
                if self.held(win):
                    blocked = blocked or win
                    continue
                self.refund(f.stat().st_size)
                f.unlink()
            for name in dirs:
                d = Path(dirpath) / name
                if not any(d.iterdir()):
                    d.rmdir()
        if blocked is not None:
            raise Win32Error(win32.ACCESS_DENIED, blocked)
        real.rmdir()

    def move(self, source: str, destination: str, replace: bool) -> None:
        """``MoveFileEx``: rename within the drive; replacing a held target is refused."""
        src = self.resolve(source)
        if not src.exists():
            raise Win32Error(win32.FILE_NOT_FOUND, source)
        dst = self.resolve(destination)
        if dst.is_dir():
            dst = dst / src.name
            destination = self.windows(dst)
        self._parent_must_exist(dst, destination)
        if dst.exists() and dst.resolve() != src.resolve():
            if not replace:
                raise Win32Error(win32.ALREADY_EXISTS, destination)
            if dst.is_dir() or self.held(destination):
                raise Win32Error(win32.ACCESS_DENIED, destination)
            self.refund(dst.stat().st_size)
        os.replace(src, dst)

    def extract_tar_gz(self, archive: str, directory: str, strip: int = 0) -> list[str]:
        """``tar.exe -xzf archive -C directory --strip-components strip``; returns bsdtar's
        error lines ([] = ok).

        Like bsdtar, members with absolute paths or ``..`` are refused, ``strip`` leading
        path elements are dropped (members with no more are skipped), a held file is not
        overwritten ("Can't unlink already-existing object"), and a full disk stops it.
        """
        errors: list[str] = []
        arc = self.resolve(archive)
        if not arc.is_file():
            return [f"tar.exe: Error opening archive: Failed to open '{archive}'"]
        dest = self.resolve(directory)
        if not dest.is_dir():
            return [f"tar.exe: could not chdir to '{directory}'"]
        try:
            with tarfile.open(arc, "r:gz") as tar:
                for member in tar.getmembers():
                    name = member.name.replace("\\", "/")
                    if ".." in name.split("/"):
                        errors.append(f"tar.exe: {member.name}: Path contains '..'")
                        continue
                    stripped = _strip_components(name, strip)
                    if stripped is None:
                        continue  # too short: skipped
                    parts = [p for p in stripped.split("/") if p not in ("", ".")]
                    if not parts:
                        continue
                    target = windows_path(split_windows_path(directory) + parts)
                    if member.isdir():
                        self.make_directory(target)
                        continue
                    if not member.isfile():
                        continue
                    src = tar.extractfile(member)
                    data = src.read() if src else b""
                    try:
                        self.make_directory(windows_path(split_windows_path(target)[:-1]))
                        real = self.resolve(target)
                        if real.exists() and self.held(target):
                            errors.append(
                                f"tar.exe: {member.name}: Can't unlink already-existing object"
                            )
                            continue
                        self.write_bytes(target, data)
                    except Win32Error as err:
                        if err.code == win32.DISK_FULL:
                            errors.append(f"tar.exe: {member.name}: Write failed")
                            return errors
                        errors.append(f"tar.exe: {member.name}: {err.text}")
        except (tarfile.TarError, OSError, EOFError) as err:
            errors.append(f"tar.exe: Error opening archive: {err}")
        return errors


def _strip_components(name: str, elements: int) -> str | None:
    """bsdtar's ``--strip-components`` (libarchive ``tar/util.c`` ``strip_components``):
    every ``/`` ends an element, ``.`` included, so ``./bin/x`` needs 2 to give ``x``; a
    name with too few elements is skipped (None). Leading ``/`` are then dropped."""
    i = 0
    while elements > 0:
        if i >= len(name):
            return None
        if name[i] == "/":
            elements -= 1
        i += 1
    rest = name[i:].lstrip("/")  # then bsdtar drops leading "/" (no absolute paths)
    return rest or None
