"""Component payloads: fetched once, verified before anything reaches a host, cached.

Every component in ``syncer-fleet``'s ``components.json`` names a ``url`` (``https://``,
``http://`` or ``file://``) and the ``sha256`` its bytes must have. :class:`PayloadCache`
keeps a local content-addressed cache, ``<cache>/<sha256>``:

- a payload is downloaded to a temporary file in the cache directory while its SHA-256 is
  computed, and only renamed to ``<sha256>`` when the digest matches — a file named by its
  digest in the cache is therefore always intact (a half-written download never is);
- a mismatch raises :class:`PayloadError` (``payload kubelet: sha256 mismatch: expected …,
  got …``) and :func:`fetch_all` fetches **every** payload a rollout needs before the
  first host is touched, so a bad checksum in Git stops the rollout before any host is
  cordoned;
- a payload already cached is not downloaded again (a previous version, needed for a
  rollback, is found by its digest alone).

``.tar.gz`` components (``PayloadKind.ARCHIVE`` in :mod:`syncer.components`) are cached
like files; the host expands them with ``tar -xzf`` after upload.
"""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
import threading
import urllib.parse
import urllib.request
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import requests

CHUNK = 1 << 20
_SHA256 = re.compile(r"^[0-9a-f]{64}$")


class PayloadError(Exception):
    """A payload could not be fetched or did not have the committed digest."""


@dataclass(frozen=True)
class Payload:
    component: str
    version: str
    sha256: str
    path: Path  # the verified file in the cache
    size: int


def default_cache_dir() -> Path:
    """``$SYNCER_CACHE_DIR/payloads``, else ``~/.cache/syncer/payloads``."""
    base = os.environ.get("SYNCER_CACHE_DIR")
    root = Path(base) if base else Path.home() / ".cache" / "syncer"
    return root / "payloads"


class PayloadCache:
    """The local content-addressed cache (see the module docstring). Thread-safe."""

    def __init__(self, directory: Path | None = None, *, timeout: float = 60.0) -> None:
        self.directory = directory or default_cache_dir()
        self.timeout = timeout
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
                    f"payload {component}: sha256 mismatch: expected {want}, got {got} "
                    f"(from {_display(url)})"
                )
            final = self.path(want)
            os.replace(tmp, final)
            self.downloads += 1
            return final
        finally:
            tmp.unlink(missing_ok=True)

    def _chunks(self, component: str, url: str) -> _Stream:
        parsed = urllib.parse.urlsplit(url)
        if parsed.scheme == "file":
            path = Path(urllib.request.url2pathname(parsed.path))
            if not path.is_file():
                raise PayloadError(f"payload {component}: {path}: no such file")
            return _FileStream(path)
        if parsed.scheme in ("http", "https"):
            return _HttpStream(component, url, self.timeout)
        raise PayloadError(
            f"payload {component}: unsupported URL scheme {parsed.scheme!r} "
            "(use https://, http:// or file://)"
        )


class _Stream:
    def __iter__(self) -> _Stream:
        return self

    def __next__(self) -> bytes:
        raise StopIteration


class _FileStream(_Stream):
    def __init__(self, path: Path) -> None:
        self._file = path.open("rb")

    def __next__(self) -> bytes:
        chunk = self._file.read(CHUNK)
        if not chunk:
            self._file.close()
            raise StopIteration
        return chunk


class _HttpStream(_Stream):
    def __init__(self, component: str, url: str, timeout: float) -> None:
        try:
            self._response = requests.get(url, stream=True, timeout=timeout)
        except requests.RequestException as err:
            raise PayloadError(
                f"payload {component}: cannot fetch {_display(url)}: {_request_error(err)}"
            ) from None
        if self._response.status_code != 200:
            status = self._response.status_code
            self._response.close()
            raise PayloadError(f"payload {component}: {_display(url)}: HTTP {status}")
        self._chunks = self._response.iter_content(CHUNK)
        self._component = component
        self._url = url

    def __next__(self) -> bytes:
        try:
            return bytes(next(self._chunks))
        except StopIteration:
            self._response.close()
            raise
        except requests.RequestException as err:
            self._response.close()
            raise PayloadError(
                f"payload {self._component}: download of {_display(self._url)} failed: "
                f"{_request_error(err)}"
            ) from None


def _request_error(err: requests.RequestException) -> str:
    """The kind of failure, without the URL (its query or user info may hold secrets)."""
    kinds = (
        (requests.ConnectTimeout, "connection timed out"),
        (requests.ConnectionError, "connection failed"),
        (requests.Timeout, "timed out"),
        (requests.TooManyRedirects, "too many redirects"),
    )
    for kind, text in kinds:
        if isinstance(err, kind):
            return text
    return type(err).__name__


def _display(url: str) -> str:
    """The URL without credentials or query (which may carry tokens)."""
    parts = urllib.parse.urlsplit(url)
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return urllib.parse.urlunsplit((parts.scheme, host, parts.path, "", ""))


@dataclass(frozen=True)
class Wanted:
    """One payload to fetch: component, version, url and digest."""

    component: str
    version: str
    url: str
    sha256: str


def fetch_all(
    cache: PayloadCache, wanted: Iterable[Wanted], *, workers: int = 4
) -> dict[str, Payload]:
    """Fetch every payload (concurrently); raise one PayloadError naming every failure.

    Keys of the result are the digests. Called before any host is touched."""
    unique = {w.sha256.lower(): w for w in wanted}
    results: dict[str, Payload] = {}
    failures: list[str] = []
    with ThreadPoolExecutor(max_workers=max(1, min(workers, len(unique) or 1))) as pool:
        futures = {
            sha: pool.submit(cache.fetch, w.component, w.version, w.url, w.sha256)
            for sha, w in unique.items()
        }
        for sha, future in sorted(futures.items(), key=lambda kv: unique[kv[0]].component):
            try:
                results[sha] = future.result()
            except PayloadError as err:
                failures.append(str(err))
    if failures:
        raise PayloadError("; ".join(failures))
    return results
