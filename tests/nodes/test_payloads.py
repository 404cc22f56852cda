"""Payload fetching: verified before use, content-addressed cache, clear errors."""

from __future__ import annotations

import hashlib
import http.server
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from syncer.desired import ComponentVersion, DesiredState
from syncer.nodes.downloads import FetchPolicy, parse_networks
from syncer.nodes.payloads import PayloadCache, PayloadError, fetch_all, host_view
from syncer_lab.nodelab import payload_files, tar_gz

# A workstation's `sync --once --allow-file-payloads`, with a mirror on this machine.
WORKSTATION = FetchPolicy(allow_file=True, allow_networks=parse_networks("127.0.0.0/8"))


@pytest.fixture
def http_root(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    root = tmp_path / "www"
    root.mkdir()

    class Handler(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args: object, **kwargs: object) -> None:
            super().__init__(*args, directory=str(root), **kwargs)  # type: ignore[arg-type]

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", root
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def test_file_url_is_verified_and_cached(tmp_path: Path) -> None:
    data = b"kubelet v1.30.4\n"
    src = tmp_path / "kubelet.exe"
    src.write_bytes(data)
    sha = hashlib.sha256(data).hexdigest()
    cache = PayloadCache(tmp_path / "cache", policy=WORKSTATION)
    payload = cache.fetch("kubelet", "v1.30.4", src.as_uri(), sha)
    assert payload.path == tmp_path / "cache" / sha
    assert payload.path.read_bytes() == data
    src.unlink()  # a cached payload is found by its digest alone
    assert cache.fetch("kubelet", "v1.30.4", src.as_uri(), sha.upper()).path == payload.path
    assert cache.downloads == 1
    src.write_bytes(b"a different kubelet\n")  # a local file is checked like any download
    with pytest.raises(PayloadError, match="sha256 mismatch"):
        cache.fetch("kubelet", "v1.30.5", src.as_uri(), "1" * 64)
    assert sorted(p.name for p in (tmp_path / "cache").iterdir()) == [sha]


def test_http_url_and_mismatch(tmp_path: Path, http_root: tuple[str, Path]) -> None:
    base, root = http_root
    (root / "kube-proxy.exe").write_bytes(b"kube-proxy v1.30.4\n")
    cache = PayloadCache(tmp_path / "cache", policy=WORKSTATION)
    good = hashlib.sha256(b"kube-proxy v1.30.4\n").hexdigest()
    assert cache.fetch("kube-proxy", "v1.30.4", f"{base}/kube-proxy.exe", good).size == 19
    wrong = "0" * 64
    with pytest.raises(PayloadError) as err:
        cache.fetch("kubelet", "v1", f"{base}/kube-proxy.exe", wrong)
    assert str(err.value) == (f"payload kubelet: sha256 mismatch: the bytes at "
                              f"{base}/kube-proxy.exe are not {wrong}")
    assert not (tmp_path / "cache" / wrong).exists()
    assert [p.name for p in (tmp_path / "cache").iterdir()] == [good]  # no partial files
    with pytest.raises(PayloadError, match="HTTP 404"):
        cache.fetch("kubelet", "v1", f"{base}/missing.exe", wrong)


def test_fetch_all_reports_every_failure(tmp_path: Path) -> None:
    cache = PayloadCache(tmp_path / "cache", policy=WORKSTATION)
    with pytest.raises(PayloadError) as err:
        fetch_all(cache, [
            ComponentVersion("kubelet", "v1", "ftp://example.com/kubelet.exe", "1" * 64),
            ComponentVersion("containerd", "v1", (tmp_path / "nope").as_uri(), "2" * 64),
            ComponentVersion("cni", "v1", "file:///x", "not-a-digest"),
        ])
    text = str(err.value)
    assert "unsupported URL scheme 'ftp'" in text
    assert "no such file" in text
    assert "is not 64 hex digits" in text


def test_credentials_in_urls_are_not_repeated(tmp_path: Path) -> None:
    cache = PayloadCache(tmp_path / "cache", policy=WORKSTATION)
    with pytest.raises(PayloadError) as err:
        cache.fetch("kubelet", "v1", "http://user:s3cret@127.0.0.1:1/k.exe?token=abc", "3" * 64)
    assert "s3cret" not in str(err.value) and "abc" not in str(err.value)


def _served(tmp_path: Path, name: str, data: bytes) -> tuple[str, str]:
    path = tmp_path / "src" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path.as_uri(), hashlib.sha256(data).hexdigest()


def test_a_file_component_comes_out_of_the_kubernetes_node_tarball(tmp_path: Path) -> None:
    """kubelet.exe is kubernetes/node/bin/kubelet.exe of the node tarball: the host gets
    that member, known by its own digest; the index remembers it for later rounds."""
    data, member = payload_files("kubelet", "v1.34.4")
    url, sha = _served(tmp_path, "kubernetes-node.tar.gz", data)
    cache = PayloadCache(tmp_path / "cache", policy=WORKSTATION)
    committed = ComponentVersion("kubelet", "v1.34.4", url, sha, member)
    payloads = fetch_all(cache, [committed])
    (got,) = payloads.values()
    assert got.path.read_bytes() == b"kubelet v1.34.4\n"
    assert got.sha256 == hashlib.sha256(b"kubelet v1.34.4\n").hexdigest() != sha
    state = DesiredState("f", "1", {"kubelet": committed})
    (tmp_path / "src" / "kubernetes-node.tar.gz").unlink()  # the index is enough now
    assert host_view(cache, state).components["kubelet"].sha256 == got.sha256
    missing = ComponentVersion("kubelet", "v1", url, sha, "kubernetes/node/bin/nope.exe")
    with pytest.raises(PayloadError, match=r"nope\.exe: no such file in the archive"):
        fetch_all(cache, [missing])  # the tarball itself is in the cache


@pytest.mark.parametrize(("members", "strip"), [
    (["bin/containerd.exe", "bin/ctr.exe"], 1),  # containerd's release tarball
    (["containerd.exe"], 0),
    (["./bin/containerd.exe"], 2),  # bsdtar counts "." as an element
])
def test_an_archive_is_stripped_to_its_binary(tmp_path: Path, members: list[str],
                                              strip: int) -> None:
    url, sha = _served(tmp_path, "c.tar.gz", tar_gz({m: b"x" for m in members}))
    (got,) = fetch_all(PayloadCache(tmp_path / "cache", policy=WORKSTATION),
                       [ComponentVersion("containerd", "v1", url, sha)]).values()
    assert got.strip == strip


def test_an_archive_without_its_binary_stops_before_any_host(tmp_path: Path) -> None:
    url, sha = _served(tmp_path, "c.tar.gz", tar_gz({"bin/ctr.exe": b"x"}))
    with pytest.raises(PayloadError, match=r"payload containerd: the archive has no "
                                            r"containerd\.exe"):
        fetch_all(PayloadCache(tmp_path / "cache", policy=WORKSTATION),
                  [ComponentVersion("containerd", "v1", url, sha)])
