"""The files syncer keeps current on every host, and what a change to each restarts.

A configuration file is managed like a component: the probe reads its SHA-256, the plan
compares it with what this round would write, and a file that differs is rewritten on
any host, new or old. Each :class:`ManagedFile` says which services must restart to
read it (a new ``kubelet.conf`` restarts the kubelet; a new ``kubelet-ca.crt`` restarts
nothing, the kubelet reloads its client CA file), so a file change that restarts nothing
is a *refresh* (no cordon, no drain) and one that restarts a service is an upgrade.

- per round (:func:`round_files`): ``kubelet.conf`` and ``containerd_conf.toml``
  (:mod:`syncer.nodes.windows.files`), the bootstrap kubeconfig and CA bundles
  (:mod:`syncer.nodes.kubeconfig`);
- per host (:func:`network_files`): ``cni.conf`` and ``kube-proxy.conf``, which depend on
  the overlay network hybrid-overlay made on that host;
- the cluster-wide settings WMCO carries to its nodes (:func:`cluster_files`): registry
  mirrors (a directory of ``hosts.toml`` files, :mod:`syncer.nodes.registries`, with a
  marker file that stands for the whole directory), the trusted CA bundle
  ``C:\\k\\ca-bundle.crt`` (imported into the machine's root store when written), and the
  cluster proxy (``C:\\k\\proxy.env``: the variables set machine-wide when written; the
  service control manager hands services the machine environment it read at boot, so a
  change takes a reboot, as WMCO's daemon asks for one).

:func:`write` writes one on an open session, with what its kind asks for.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum

from syncer.nodes.clusterinfo import ClusterFacts, ClusterSettings
from syncer.nodes.kubeconfig import BootstrapFiles
from syncer.nodes.ssh import HostSession
from syncer.nodes.windows import files, vocabulary
from syncer.nodes.windows.layout import (
    BOOTSTRAP_CA,
    BOOTSTRAP_KUBECONFIG,
    CNI_CONFIG,
    CONTAINERD_CONFIG,
    KUBE_PROXY_CONFIG,
    KUBELET_CA,
    KUBELET_CONFIG,
    REGISTRIES_DIR,
    ROOT,
)

TRUSTED_CA = ROOT + "\\ca-bundle.crt"
PROXY_ENV = ROOT + "\\proxy.env"
REGISTRIES_MARKER = REGISTRIES_DIR + "\\syncer.json"
PROXY_VARIABLES = ("HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY")


class Kind(StrEnum):
    FILE = "file"  # the file is all there is
    TRUST = "trust"  # its certificates are imported into LocalMachine\Root
    ENVIRONMENT = "environment"  # the variables it lists are set machine-wide (reboot)
    DIRECTORY = "directory"  # a marker: its directory is replaced by `tree` first


@dataclass(frozen=True)
class ManagedFile:
    path: str  # Windows path on the host
    content: bytes
    restarts: tuple[str, ...] = ()  # components whose services must restart to read it
    needs: str = "kubelet"  # the component whose presence in the Fleet calls for it
    secret: bool = False  # holds a credential: never shown, only its digest
    kind: Kind = Kind.FILE
    tree: Mapping[str, bytes] = field(default_factory=dict, hash=False)  # DIRECTORY
    environment: Mapping[str, str] = field(default_factory=dict, hash=False)  # ENVIRONMENT

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.content).hexdigest()

    def reboots(self, installed: str | None) -> bool:
        """Whether writing it over ``installed`` (a digest) takes a reboot: machine
        variables, unless there were none and there are none."""
        return self.kind is Kind.ENVIRONMENT and not (installed is None and not self.environment)


NETWORK_COMPONENTS = ("hybrid-overlay-node", "kube-proxy", "cni")


def round_files(facts: ClusterFacts, bootstrap: BootstrapFiles,
                components: Mapping[str, object],
                cluster: ClusterSettings | None = None) -> dict[str, ManagedFile]:
    """The files every host of this round should hold, by path (only those the Fleet's
    components call for)."""
    candidates = [*cluster_files(cluster or ClusterSettings()),
        ManagedFile(KUBELET_CONFIG, files.kubelet_config(facts.cluster_dns), ("kubelet",)),
        ManagedFile(CONTAINERD_CONFIG, files.containerd_config(), ("containerd",),
                    needs="containerd"),
        ManagedFile(KUBELET_CA, bootstrap.kubelet_ca),
        ManagedFile(BOOTSTRAP_CA, bootstrap.bootstrap_ca,
                    ("hybrid-overlay-node",) if "hybrid-overlay-node" in components else ()),
        ManagedFile(BOOTSTRAP_KUBECONFIG, bootstrap.kubeconfig, secret=True),
    ]
    return {f.path: f for f in candidates if f.needs in components}


def cluster_files(settings: ClusterSettings) -> list[ManagedFile]:
    marker = json.dumps({p: hashlib.sha256(c).hexdigest()
                         for p, c in sorted(settings.registries.items())}, indent=1)
    env = {k: v for k, v in settings.proxy.items() if v}
    return [
        ManagedFile(REGISTRIES_MARKER, marker.encode() + b"\n", needs="containerd",
                    kind=Kind.DIRECTORY, tree=dict(settings.registries)),
        ManagedFile(TRUSTED_CA, settings.trusted_ca, needs="containerd", kind=Kind.TRUST),
        ManagedFile(PROXY_ENV, (json.dumps(env, sort_keys=True) + "\n").encode(),
                    needs="containerd", kind=Kind.ENVIRONMENT, environment=env),
    ]


def write(session: HostSession, f: ManagedFile) -> None:
    """Write ``f`` on the host, with what its kind asks for."""
    if f.kind is Kind.DIRECTORY:
        directory = f.path.rsplit("\\", 1)[0]
        vocabulary.check_done(session.run(vocabulary.remove_path(directory)), "remove-path")
        vocabulary.check_done(session.run(vocabulary.make_directory(directory)),
                              "make-directory")
        for relative, content in sorted(f.tree.items()):
            target = f"{directory}\\{relative}"
            vocabulary.check_done(session.run(vocabulary.make_directory(
                target.rsplit("\\", 1)[0])), "make-directory")
            session.upload(content, target, hashlib.sha256(content).hexdigest())
    session.upload(f.content, f.path, f.sha256)
    if f.kind is Kind.TRUST and f.content.strip():
        vocabulary.parse_import_certificates(session.run(vocabulary.import_certificates(f.path)))
    if f.kind is Kind.ENVIRONMENT:
        values = [f.environment.get(name, "") for name in PROXY_VARIABLES]
        vocabulary.check_done(session.run(vocabulary.set_machine_environment(
            list(PROXY_VARIABLES), values)), "set-machine-environment")


def network_files(overlay: files.Overlay, facts: ClusterFacts, node_name: str
                  ) -> dict[str, ManagedFile]:
    """``cni.conf`` and ``kube-proxy.conf`` for a host whose overlay network is ``overlay``."""
    return {
        CNI_CONFIG: ManagedFile(CNI_CONFIG, files.cni_config(overlay, facts.service_network),
                                needs="cni"),
        KUBE_PROXY_CONFIG: ManagedFile(
            KUBE_PROXY_CONFIG, files.kube_proxy_config(overlay, node_name), ("kube-proxy",),
            needs="kube-proxy"),
    }


def runs_overlay(components: Mapping[str, object]) -> bool:
    """Whether the Fleet runs the hybrid overlay pod network (all three parts)."""
    return all(name in components for name in NETWORK_COMPONENTS)
