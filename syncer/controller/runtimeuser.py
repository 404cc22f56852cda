"""A passwd entry for the arbitrary UID OpenShift runs the controller with.

Under the ``restricted-v2`` SCC a container runs with a UID picked from its namespace's
range, which no ``/etc/passwd`` in the image can know. Python and git do not mind, but
OpenSSH's ``ssh`` looks its user up first and stops with ``No user exists for uid N``
(ssh.c, ``getpwuid(getuid())``), so every ``ssh://`` Git remote would fail. The root
filesystem is read-only, so the entry cannot be appended to ``/etc/passwd`` either.

:func:`provide` therefore uses nss_wrapper (https://cwrap.org/nss_wrapper.html, Debian
package ``libnss-wrapper``, installed in the image): when the UID has no entry it writes
a passwd and a group file under the work directory — the image's entries plus one for
this UID, home ``$HOME`` — and sets ``LD_PRELOAD``, ``NSS_WRAPPER_PASSWD`` and
``NSS_WRAPPER_GROUP`` in this process's environment, which every child (git, ssh,
ssh-keygen, gpg) inherits. A UID that has an entry changes nothing.
"""

from __future__ import annotations

import os
import pwd
from pathlib import Path

USER_NAME = "syncer"
# Where Debian/Ubuntu and Fedora/RHEL install the library.
LIBRARY_PATHS = (
    "/usr/lib/x86_64-linux-gnu/libnss_wrapper.so",
    "/usr/lib/aarch64-linux-gnu/libnss_wrapper.so",
    "/usr/lib64/libnss_wrapper.so",
    "/usr/lib/libnss_wrapper.so",
)


def find_library() -> str | None:
    return next((p for p in LIBRARY_PATHS if Path(p).is_file()), None)


def wrapper_environment(uid: int, gid: int, home: str, directory: Path,
                        library: str) -> dict[str, str]:
    """Write passwd and group files that add ``uid``/``gid``; the environment that makes
    child processes read them."""
    directory.mkdir(parents=True, exist_ok=True)
    passwd = _lines("/etc/passwd")
    passwd.append(f"{USER_NAME}:x:{uid}:{gid}:syncer controller:{home}:/usr/sbin/nologin")
    group = _lines("/etc/group")
    if not any(line.split(":")[2:3] == [str(gid)] for line in group):
        group.append(f"{USER_NAME}:x:{gid}:")
    _write(directory / "passwd", passwd)
    _write(directory / "group", group)
    return {"LD_PRELOAD": library, "NSS_WRAPPER_PASSWD": str(directory / "passwd"),
            "NSS_WRAPPER_GROUP": str(directory / "group")}


def provide(directory: Path) -> str | None:
    """Give this process's UID a passwd entry for child processes if it has none.
    Returns what was done (or why it could not be), for the log; None when nothing was
    needed."""
    uid = os.getuid()
    try:
        pwd.getpwuid(uid)
        return None
    except KeyError:
        pass
    library = find_library()
    if library is None:
        return (f"uid {uid} has no passwd entry and libnss_wrapper is not installed: "
                "ssh:// Git remotes will fail (No user exists for uid)")
    home = os.environ.get("HOME") or str(directory)
    os.environ.update(wrapper_environment(uid, os.getgid(), home, directory, library))
    return f"uid {uid} has no passwd entry: child processes get one through {library}"


def _lines(path: str) -> list[str]:
    try:
        return [line for line in Path(path).read_text().splitlines() if line.strip()]
    except OSError:
        return []


def _write(path: Path, lines: list[str]) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text("\n".join(lines) + "\n")
    tmp.replace(path)
