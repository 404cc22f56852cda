"""Where the test control plane's binaries are.

No package registry ships kube-apiserver, so ``tools/kube/build.sh`` (run by
``make setup``) builds kube-apiserver, kubectl and etcd from Go modules, the way
controller-runtime's envtest does, and node-check (the kubelet's and kube-proxy's own flag
and config validation, for the simulated Windows hosts), and caches them per Kubernetes
version under ``~/.cache/syncer/kube/<version>/bin/``. This module only finds them; it never builds.

Overrides, for machines that keep the binaries elsewhere:

- ``SYNCER_KUBE_BIN_DIR``: a directory holding ``kube-apiserver``, ``kubectl``, ``etcd``;
- ``SYNCER_KUBE_CACHE``: the cache root (default ``$XDG_CACHE_HOME/syncer/kube`` or
  ``~/.cache/syncer/kube``), as ``build.sh`` reads it too.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

# The Kubernetes version tools/kube/go.mod pins (a test checks that they agree).
KUBE_VERSION = "v1.34.4"

BINARY_NAMES = ("kube-apiserver", "kubectl", "etcd", "node-check")


class BinariesMissing(RuntimeError):
    """The control plane binaries have not been built on this machine."""


@dataclass(frozen=True)
class KubeBinaries:
    """Paths of the control plane binaries of one Kubernetes version."""

    version: str
    bin_dir: Path
    kube_apiserver: Path
    kubectl: Path
    etcd: Path
    node_check: Path


def cache_root() -> Path:
    """The root of the per-version binary cache (same rule as tools/kube/build.sh)."""
    if root := os.environ.get("SYNCER_KUBE_CACHE"):
        return Path(root)
    xdg = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(xdg) / "syncer" / "kube"


def bin_dir(version: str = KUBE_VERSION) -> Path:
    """The directory that holds (or will hold) the binaries of ``version``."""
    if override := os.environ.get("SYNCER_KUBE_BIN_DIR"):
        return Path(override)
    return cache_root() / version / "bin"


def kube_binaries(version: str = KUBE_VERSION) -> KubeBinaries:
    """The binaries of ``version``; raises :class:`BinariesMissing` with what to do."""
    directory = bin_dir(version)
    missing = [n for n in BINARY_NAMES if not os.access(directory / n, os.X_OK)]
    if missing:
        raise BinariesMissing(
            f"test control plane binaries missing in {directory}: {', '.join(missing)}. "
            "Run `make setup` (it builds them once with tools/kube/build.sh; "
            "the first build takes several minutes) or point SYNCER_KUBE_BIN_DIR at a "
            "directory holding kube-apiserver, kubectl, etcd and node-check."
        )
    return KubeBinaries(
        version=version,
        bin_dir=directory,
        kube_apiserver=directory / "kube-apiserver",
        kubectl=directory / "kubectl",
        etcd=directory / "etcd",
        node_check=directory / "node-check",
    )
