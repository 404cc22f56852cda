"""Component payloads: fetched once, verified before anything reaches a host, cached.

Every component in ``syncer-fleet``'s ``components.json`` names a ``url`` (``https://``,
``http://``, or ``file://`` where the operator allows it) and the ``sha256`` its bytes
must have. Where a download may go and how much it may read is
:mod:`syncer.nodes.downloads`' :class:`~syncer.nodes.downloads.FetchPolicy`.
:class:`PayloadCache` keeps a local content-addressed cache, ``<cache>/<sha256>``:

- a payload is downloaded to a temporary file in the cache directory while its SHA-256 is
  computed, and only renamed to ``<sha256>`` when the digest matches — a file named by its
  digest in the cache is therefore always intact (a half-written download never is);
- a mismatch raises :class:`PayloadError` (``payload kubelet: sha256 mismatch: the bytes
  at <url> are not <expected>``) and :func:`fetch_all` fetches **every** payload a rollout
  needs before the first host is touched, so a bad checksum in Git stops the rollout
  before any host is cordoned. The digest of what *was* read is never said: the message
  reaches Git, Events and the Node, and that digest would let a fleet author confirm the
  content of any file or URL the controller can reach;
- a payload already cached is not downloaded again (a previous version, needed for a
  rollback, is found by its digest alone); :meth:`PayloadCache.prune` removes what no
  committed or installed component names any more, and half-written files.

Upstream release artifacts are used as published (:mod:`syncer.components`):

- a **file** component with a ``path`` comes out of a ``.tar.gz`` (``kubelet.exe`` is
  ``kubernetes/node/bin/kubelet.exe`` in the Kubernetes Windows node tarball). The
  verified tarball's member is extracted into the cache under its own digest, and an
  index (``<cache>/members/<key>``) remembers which member digest a (tarball, path) pair
  gave, so later rounds know what a host should hold without opening the tarball again.
  What the host receives, and what its installed file's digest is compared with, is the
  member: :func:`host_view` turns the committed components into that view;
- an **archive** component (``PayloadKind.ARCHIVE``) is uploaded whole and expanded on the
  host by ``tar.exe``. :func:`fetch_all` reads its member list before any host is touched:
  the catalogue's ``binary`` must be in it (else the rollout stops with that reason), and
  the depth of its directory is the ``--strip-components`` that puts it at the target
  (containerd's release tarball has ``bin/containerd.exe``; bsdtar counts every path
  separator, ``./`` included: libarchive ``tar/util.c`` ``strip_components``).
"""

from __future__ import annotations

import hashlib
import os
import re
import tarfile
import tempfile
import threading
import urllib.parse
import urllib.request
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path, PurePosixPath

from syncer.components import CATALOGUE, PayloadKind
from syncer.desired import ComponentVersion, DesiredState
from syncer.nodes.downloads import DownloadError, FetchPolicy, display, stream

CHUNK = 1 << 20
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
# Bounds on reading a tarball's member list (its bytes are already verified and bounded).
MAX_MEMBERS = 20000


class PayloadError(Exception):
    """A payload could not be fetched or did not have the committed digest."""


@dataclass(frozen=True)
class Payload:
    component: str
    version: str
    sha256: str
    path: Path  # the verified file in the cache
    size: int
    strip: int = 0  # archives: leading path elements tar drops so the binary lands at target


def default_cache_dir() -> Path:
    """``$SYNCER_CACHE_DIR/payloads``, else ``~/.cache/syncer/payloads``."""
    base = os.environ.get("SYNCER_CACHE_DIR")
    root = Path(base) if base else Path.home() / ".cache" / "syncer"
    return root / "payloads"


class PayloadCache:
    """The local content-addressed cache (see the module docstring). Thread-safe."""

    def __init__(self, directory: Path | None = None, *,
                 policy: FetchPolicy | None = None) -> None:
        self.directory = directory or default_cache_dir()
        self.policy = policy or FetchPolicy()
        self._lock = threading.Lock()
        self._fetching: dict[str, threading.Lock] = {}
        self.downloads = 0

    def path(self, sha256: str) -> Path:
        return self.directory / sha256

    def cached(self, sha256: str) -> Path | None:
        path = self.path(sha256.lower())
        return path if _SHA256.match(sha256.lower()) and path.is_file() else None

    def fetch(self, component: str, version: str, url: str, sha256: str) -> Payload:
        """The verified payload, from the cache or downloaded. Raises PayloadError."""
        want = sha256.lower()
        if not _SHA256.match(want):
            raise PayloadError(f"payload {component}: sha256 {sha256!r} is not 64 hex digits")
        with self._lock:
            guard = self._fetching.setdefault(want, threading.Lock())
        with guard:
            path = self.cached(want)
            if path is None:
                path = self._download(component, url, want)
        return Payload(component, version, want, path, path.stat().st_size)

    def member(self, payload: Payload, member: str) -> Payload:
        """The file ``member`` of the verified tarball ``payload``, extracted into the
        cache under its own digest (once; the index remembers it). Raises PayloadError."""
        known = self.member_digest(payload.sha256, member)
        if known is not None and (path := self.cached(known)) is not None:
            return Payload(payload.component, payload.version, known, path, path.stat().st_size)
        with self._lock:
            guard = self._fetching.setdefault(f"{payload.sha256}:{member}", threading.Lock())
        with guard:
            sha = self._extract(payload, member)
        path = self.path(sha)
        return Payload(payload.component, payload.version, sha, path, path.stat().st_size)

    def member_digest(self, tarball_sha256: str, member: str) -> str | None:
        """The digest a member of a tarball had when it was extracted, if it was."""
        try:
            text = self._index(tarball_sha256, member).read_text("ascii").strip()
        except OSError:
            return None
        return text if _SHA256.match(text) and self.cached(text) is not None else None

    def _index(self, tarball_sha256: str, member: str) -> Path:
        key = hashlib.sha256(f"{tarball_sha256}\0{member}".encode()).hexdigest()
        return self.directory / "members" / key

    def _extract(self, payload: Payload, member: str) -> str:
        where = f"payload {payload.component}: {member}"
        try:
            with tarfile.open(payload.path, "r:gz") as tar:
                info = _find_member(tar, member, where)
                if not info.isfile():
                    raise PayloadError(f"{where}: not a regular file in the archive")
                source = tar.extractfile(info)
                if source is None:
                    raise PayloadError(f"{where}: cannot be read from the archive")
                fd, tmp_name = tempfile.mkstemp(prefix=".part-", dir=self.directory)
                tmp = Path(tmp_name)
                try:
                    digest = hashlib.sha256()
                    with os.fdopen(fd, "wb") as out:
                        while chunk := source.read(CHUNK):
                            digest.update(chunk)
                            out.write(chunk)
                    sha = digest.hexdigest()
                    os.replace(tmp, self.path(sha))
                finally:
                    tmp.unlink(missing_ok=True)
        except (tarfile.TarError, OSError, EOFError) as err:
            raise PayloadError(f"payload {payload.component}: not a readable .tar.gz: "
                               f"{err}") from None
        index = self._index(payload.sha256, member)
        index.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(prefix=".part-", dir=index.parent)
        with os.fdopen(fd, "w") as out:
            out.write(sha + "\n")
        os.replace(tmp_name, index)
        return sha

    def _download(self, component: str, url: str, want: str) -> Path:
        if not url:
            raise PayloadError(f"payload {component}: no url to fetch sha256 {want} from")
        self.directory.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(prefix=".part-", dir=self.directory)
        tmp = Path(tmp_name)
        digest = hashlib.sha256()
        try:
            with os.fdopen(fd, "wb") as out:
                for chunk in self._chunks(component, url):
                    digest.update(chunk)
                    out.write(chunk)
            got = digest.hexdigest()
            if got != want:
                raise PayloadError(
                    f"payload {component}: sha256 mismatch: the bytes at {display(url)} "
                    f"are not {want}"
                )
            final = self.path(want)
            os.replace(tmp, final)
            self.downloads += 1
            return final
        finally:
            tmp.unlink(missing_ok=True)

    def _chunks(self, component: str, url: str) -> Iterator[bytes]:
        parsed = urllib.parse.urlsplit(url)
        if parsed.scheme == "file":
            if not self.policy.allow_file:
                raise PayloadError(
                    f"payload {component}: file:// URLs are not fetched here (only by "
                    "syncer sync --once --allow-file-payloads, on a workstation)")
            path = Path(urllib.request.url2pathname(parsed.path))
            if not path.is_file():
                raise PayloadError(f"payload {component}: {path}: no such file")
            return _file_chunks(path, self.policy.max_bytes, component)
        if parsed.scheme in ("http", "https"):
            return _http_chunks(component, url, self.policy)
        raise PayloadError(
            f"payload {component}: unsupported URL scheme {parsed.scheme!r} "
            "(use https:// or http://)"
        )

    def prune(self, keep: Iterable[str]) -> int:
        """Delete cached payloads whose digest is not in ``keep`` (and their member
        indexes), and half-written files; the number of files removed."""
        wanted = {k.lower() for k in keep}
        removed = 0
        with self._lock:
            if not self.directory.is_dir():
                return 0
            for path in self.directory.iterdir():
                stale = path.name.startswith(".part-") or (
                    _SHA256.match(path.name) is not None and path.name not in wanted)
                if path.is_file() and stale:
                    path.unlink(missing_ok=True)
                    removed += 1
            members = self.directory / "members"
            if members.is_dir():
                for index in members.iterdir():
                    try:
                        member = index.read_text("ascii").strip()
                    except OSError:
                        continue
                    if member not in wanted:
                        index.unlink(missing_ok=True)
        return removed


def _file_chunks(path: Path, limit: int, component: str) -> Iterator[bytes]:
    with path.open("rb") as file:
        read = 0
        while chunk := file.read(CHUNK):
            read += len(chunk)
            if read > limit:
                raise PayloadError(f"payload {component}: larger than {limit} bytes")
            yield chunk


def _http_chunks(component: str, url: str, policy: FetchPolicy) -> Iterator[bytes]:
    try:
        yield from stream(url, policy)
    except DownloadError as err:
        raise PayloadError(f"payload {component}: {err}") from None


def _normal(name: str) -> str:
    """A member name as a relative POSIX path without ``./`` or repeated slashes."""
    return str(PurePosixPath(*[p for p in name.split("/") if p not in ("", ".")]))


def _find_member(tar: tarfile.TarFile, member: str, where: str) -> tarfile.TarInfo:
    wanted = _normal(member)
    for count, info in enumerate(tar):
        if count >= MAX_MEMBERS:
            break
        if _normal(info.name) == wanted:
            return info
    raise PayloadError(f"{where}: no such file in the archive")


def archive_strip(payload: Payload, binary: str) -> int:
    """How many leading path elements ``tar.exe --strip-components`` must drop so the
    archive's file named ``binary`` (a base name) lands in the target directory itself.
    Raises PayloadError when the archive has no such file."""
    try:
        with tarfile.open(payload.path, "r:gz") as tar:
            found: list[str] = []
            for count, info in enumerate(tar):
                if count >= MAX_MEMBERS:
                    break
                if info.isfile() and info.name.rstrip("/").rsplit("/", 1)[-1] == binary:
                    found.append(info.name.lstrip("/"))
    except (tarfile.TarError, OSError, EOFError) as err:
        raise PayloadError(f"payload {payload.component}: not a readable .tar.gz: "
                           f"{err}") from None
    if not found:
        raise PayloadError(f"payload {payload.component}: the archive has no {binary}")
    name = min(found, key=lambda n: n.count("/"))  # the shallowest, like bin/containerd.exe
    return name.count("/")


def _binary_name(component: str) -> str:
    binary = CATALOGUE[component].binary or CATALOGUE[component].target
    return binary.rsplit("\\", 1)[-1]


def resolve(cache: PayloadCache, committed: ComponentVersion) -> Payload:
    """What a host receives for one committed component: the verified payload, its member
    (``path``) extracted, or (archives) with its strip depth."""
    payload = cache.fetch(committed.name, committed.version, committed.url, committed.sha256)
    if committed.path:
        return cache.member(payload, committed.path)
    component = CATALOGUE.get(committed.name)
    if component is not None and component.kind is PayloadKind.ARCHIVE:
        return replace(payload, strip=archive_strip(payload, _binary_name(committed.name)))
    return payload


def fetch_all(
    cache: PayloadCache, wanted: Iterable[ComponentVersion], *, workers: int = 4
) -> dict[str, Payload]:
    """Resolve every committed component (concurrently); raise one PayloadError naming
    every failure. Keys of the result are the digests of what hosts receive. Called
    before any host is touched."""
    unique = {(w.sha256.lower(), w.path): w for w in wanted}
    results: dict[str, Payload] = {}
    failures: list[str] = []
    with ThreadPoolExecutor(max_workers=max(1, min(workers, len(unique) or 1))) as pool:
        futures = {key: pool.submit(resolve, cache, w) for key, w in unique.items()}
        for _, future in sorted(futures.items(), key=lambda kv: unique[kv[0]].name):
            try:
                payload = future.result()
            except PayloadError as err:
                failures.append(str(err))
            else:
                results[payload.sha256] = payload
    if failures:
        raise PayloadError("; ".join(failures))
    return results


def host_view(cache: PayloadCache, desired: DesiredState) -> DesiredState:
    """``desired`` as a host sees it: each component's ``sha256`` is the digest of what
    lands on the host (a ``path`` member's own digest, known from the cache's index or
    by fetching its tarball once). Raises PayloadError."""
    components: dict[str, ComponentVersion] = {}
    pending: list[ComponentVersion] = []
    for name, c in desired.components.items():
        if c.path is None:
            components[name] = c
            continue
        known = cache.member_digest(c.sha256, c.path)
        if known is None:
            pending.append(c)
        else:
            components[name] = replace(c, sha256=known)
    if pending:
        digests = {p.component: p.sha256 for p in fetch_all(cache, pending).values()}
        for c in pending:
            components[c.name] = replace(c, sha256=digests[c.name])
    return replace(desired, components={n: components[n] for n in desired.components})
