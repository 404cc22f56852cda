"""Credentials from mounted Secret files, reloaded when the files change.

syncer never takes a credential on the command line or in the environment: the Git SSH
key or token, the SSH key for Windows hosts, the forge API token and the webhook secret
are files, normally keys of Secrets mounted as volumes. :class:`CredentialFiles` reads
them on demand and caches the contents; consumers call :meth:`CredentialFiles.get_bytes`
(or ``get_text``) each time they need one, so a rotated Secret takes effect at the next
use without a restart, and :meth:`on_change` lets a consumer drop what it built from the
old value (an SSH connection pool, say).

How rotation is noticed. The kubelet does not rewrite a Secret volume's files in place:
each key is a symlink ``key -> ..data/key``, ``..data`` is a symlink to a timestamped
directory, and an update writes a new timestamped directory and swaps ``..data`` with an
atomic rename. Watching the key file therefore sees nothing; :mod:`watchdog` watches the
*directory* that holds it, and any event in that directory re-reads every credential that
lives there. A changed content bumps that credential's generation, is logged by name (never
by value) and notifies the callbacks. As a second line of defence (inotify queues can
overflow; some volume types do not deliver events) every read also compares the file's
``stat`` (inode, size, mtime, after following the symlinks) with the cached one. Volumes
mounted with ``subPath`` are never updated by the kubelet, so the manifests mount whole
Secrets.

``ssh -i`` and Git refuse a key file that others can read, and Secret volumes shared with
an ``fsGroup`` are group-readable, so :meth:`private_copy` keeps a mode-0600 copy in a
private runtime directory, rewritten when the source changes. Every value read is handed
to the log :data:`~syncer.controller.logs.REDACTOR`, so a secret that ends up in an error
message is printed as ``***``.
"""

from __future__ import annotations

import logging
import os
import stat
import tempfile
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from watchdog.events import FileSystemEvent, FileSystemEventHandler
from watchdog.observers import Observer

from syncer.controller.logs import REDACTOR, Redactor

log = logging.getLogger(__name__)

# Credential names (also the file names of private copies and the keys in logs).
GIT_SSH_KEY = "git-ssh-key"
GIT_KNOWN_HOSTS = "git-known-hosts"
GIT_TOKEN = "git-token"
SSH_PRIVATE_KEY = "ssh-private-key"
FORGE_TOKEN = "forge-token"
WEBHOOK_SECRET = "webhook-secret"
# Values that are public (a known_hosts file): read through here for reloads, not redacted.
PUBLIC = frozenset({GIT_KNOWN_HOSTS})

Signature = tuple[int, int, int, int]


@dataclass
class _Entry:
    path: Path
    content: bytes | None = None
    signature: Signature | None = None
    generation: int = 0
    loaded: bool = False
    missing_logged: bool = False


def _signature(path: Path) -> Signature | None:
    try:
        st = os.stat(path)  # follows the key -> ..data/key -> ..2024_x/key symlinks
    except OSError:
        return None
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)


def write_private(directory: Path, name: str, data: bytes) -> Path:
    """``directory/name`` holding ``data``, mode 0600 in a 0700 directory, replaced
    atomically, and left alone when it already holds ``data``."""
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    target = directory / name
    try:
        if target.read_bytes() == data:
            return target
    except OSError:
        pass
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=f".{name}.")
    try:
        os.fchmod(fd, stat.S_IRUSR | stat.S_IWUSR)
        os.write(fd, data)
    finally:
        os.close(fd)
    os.replace(tmp, target)
    return target


class CredentialFiles:
    """Named credential files, read on demand, reloaded when their directory changes."""

    def __init__(
        self,
        files: dict[str, Path | None],
        runtime_dir: Path | None = None,
        redactor: Redactor = REDACTOR,
    ) -> None:
        self._entries = {name: _Entry(Path(p)) for name, p in files.items() if p is not None}
        self._lock = threading.RLock()
        self._callbacks: list[Callable[[str], None]] = []
        self._observer: Any = None
        self._redactor = redactor
        self._runtime_dir = runtime_dir

    @classmethod
    def from_config(cls, config: Any, runtime_dir: Path | None = None) -> CredentialFiles:
        return cls(
            {
                GIT_SSH_KEY: config.source.git_ssh_key_file,
                GIT_KNOWN_HOSTS: config.source.git_known_hosts_file,
                GIT_TOKEN: config.source.git_token_file,
                SSH_PRIVATE_KEY: config.ssh_private_key_file,
                FORGE_TOKEN: config.writeback.forge_token_file,
                WEBHOOK_SECRET: config.webhook_secret_file,
            },
            runtime_dir=runtime_dir,
        )

    # --- reading -----------------------------------------------------------------------

    def configured(self, name: str) -> bool:
        return name in self._entries

    def get_bytes(self, name: str) -> bytes | None:
        """The current content of credential ``name``; None if not configured or absent."""
        entry = self._entries.get(name)
        if entry is None:
            return None
        changed = False
        with self._lock:
            if not entry.loaded or _signature(entry.path) != entry.signature:
                changed = self._reload(name, entry)
            content = entry.content
        if changed:  # noticed by stat before (or without) the watchdog event
            self._notify([name])
        return content

    def get_text(self, name: str) -> str | None:
        """The content as text without surrounding whitespace (tokens end with a newline
        when written by ``echo``; the newline is not part of the token)."""
        data = self.get_bytes(name)
        return None if data is None else data.decode("utf-8").strip()

    def generation(self, name: str) -> int:
        """Counts content changes of ``name``; consumers compare it to rebuild lazily."""
        self.get_bytes(name)
        entry = self._entries.get(name)
        return entry.generation if entry else 0

    def private_copy(self, name: str) -> Path | None:
        """A mode-0600 copy of the credential for tools that insist on one (``ssh -i``),
        rewritten atomically when the source changes."""
        data = self.get_bytes(name)
        if data is None:
            return None
        with self._lock:
            if self._runtime_dir is None:
                self._runtime_dir = Path(tempfile.mkdtemp(prefix="syncer-credentials-"))
            return write_private(self._runtime_dir, name, data)

    def on_change(self, callback: Callable[[str], None]) -> None:
        """Call ``callback(name)`` after the content of a credential changed."""
        self._callbacks.append(callback)

    def _reload(self, name: str, entry: _Entry) -> bool:
        """Re-read one file; True when its content changed since the last read."""
        signature = _signature(entry.path)
        try:
            content: bytes | None = entry.path.read_bytes()
        except OSError as err:
            content = None
            if not entry.missing_logged:
                log.warning(
                    "credential file unreadable",
                    extra={"credential": name, "path": str(entry.path), "reason": err.strerror},
                )
                entry.missing_logged = True
        else:
            entry.missing_logged = False
            if name not in PUBLIC:
                self._redactor.add(content)
        changed = entry.loaded and content != entry.content
        entry.content, entry.signature, entry.loaded = content, signature, True
        if changed:
            entry.generation += 1
            log.info(
                "credential reloaded",
                extra={"credential": name, "path": str(entry.path), "generation": entry.generation},
            )
        return changed

    def reload_directory(self, directory: Path) -> list[str]:
        """Re-read every credential whose file lives in ``directory``; notify changes."""
        changed: list[str] = []
        with self._lock:
            for name, entry in self._entries.items():
                if entry.path.parent == directory and self._reload(name, entry):
                    changed.append(name)
        self._notify(changed)
        return changed

    def _notify(self, names: list[str]) -> None:
        for name in names:
            for callback in list(self._callbacks):
                try:
                    callback(name)
                except Exception:
                    log.exception("credential change callback failed", extra={"credential": name})

    # --- watching ----------------------------------------------------------------------

    def start(self) -> None:
        """Load every credential once and start watching their directories."""
        with self._lock:
            for name, entry in self._entries.items():
                self._reload(name, entry)
        directories = {entry.path.parent for entry in self._entries.values()}
        if not directories:
            return
        observer = Observer()
        for directory in sorted(directories):
            if directory.is_dir():
                observer.schedule(_DirectoryHandler(self, directory), str(directory))
        observer.daemon = True
        observer.start()
        self._observer = observer

    def stop(self) -> None:
        if self._observer is not None:
            self._observer.stop()
            self._observer.join(timeout=5)
            self._observer = None

    def __enter__(self) -> CredentialFiles:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


class _DirectoryHandler(FileSystemEventHandler):
    def __init__(self, files: CredentialFiles, directory: Path) -> None:
        self._files = files
        self._directory = directory

    def on_any_event(self, event: FileSystemEvent) -> None:
        if event.event_type in ("opened", "closed_no_write"):
            return  # reads (including our own) are not changes
        self._files.reload_directory(self._directory)
