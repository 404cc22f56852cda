"""The demo's fleet repository: ``examples/byoh`` made runnable on this machine.

``examples/byoh`` stays a realistic example (``https://artifacts.example.com/…`` payloads,
hosts on 127.0.1.1-3, port 22). The demo copies it and changes only what must differ
here, with ruamel.yaml's round trip so every comment of the example survives:

- each component's ``url`` becomes the URL of a payload the demo generated for that
  version and serves on the loopback interface (:mod:`syncer_lab.payloadserver`), in the
  layout of the upstream artifact the example names (the Kubernetes node tarball with
  its ``path``, containerd's tarball with ``bin/``, see
  :func:`syncer_lab.nodelab.payload_files`; binaries are small text files that state
  their version, which is what the simulated kubelet reads) — and its ``sha256`` the
  payload's real digest;
- the BYOH host list becomes the addresses the simulated hosts actually got (another lab
  may hold 127.0.1.1), one per host, keeping the example's labels (the canary);
- ``spec.nodes.sshPort`` becomes the lab's port (22 as root, 2222 otherwise).

:func:`bump` derives the release the demo's pull request commits: the next fleet minor
version with the next kubelet and kube-proxy patch version.
"""

from __future__ import annotations

import hashlib
import io
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML

import syncer
from syncer.problems import UserError
from syncer_lab.nodelab import NODE_TARBALL, payload_files
from syncer_lab.payloadserver import PayloadServer

FLEET_FILE = "fleet.yaml"
HOSTS_FILE = "hosts/lab.yaml"
BUMPED = NODE_TARBALL  # what the demo's version bump changes: the node tarball's


def example_dir() -> Path:
    """``examples/byoh`` of the source tree syncer runs from."""
    path = Path(syncer.__file__).resolve().parent.parent / "examples" / "byoh"
    if not (path / FLEET_FILE).is_file():
        raise UserError(f"{path}: not found; syncer demo runs from a source checkout "
                        "(git clone, then make demo)")
    return path


def crd_file() -> Path:
    """The WindowsFleet CRD of the source tree (``manifests/base/crd``)."""
    return example_dir().parents[1] / "manifests" / "base" / "crd" / "windowsfleets.yaml"


@dataclass(frozen=True)
class Release:
    """A fleet version and the version of each component."""

    version: str
    components: dict[str, str]

    def changed(self, other: Release) -> dict[str, tuple[str, str]]:
        """Component -> (old, new) for every component ``other`` changes."""
        return {name: (v, other.components[name]) for name, v in self.components.items()
                if other.components.get(name, v) != v}


def _yaml() -> YAML:
    yaml = YAML()  # round trip: comments, order and quoting stay
    yaml.preserve_quotes = True
    yaml.indent(mapping=2, sequence=4, offset=2)  # the example's style
    yaml.width = 4096
    return yaml


def _load(path: Path) -> Any:
    return _yaml().load(path.read_text())


def _dump(doc: Any) -> str:
    out = io.StringIO()
    _yaml().dump(doc, out)
    return out.getvalue()


def example_release() -> Release:
    spec = _load(example_dir() / FLEET_FILE)["spec"]
    return Release(str(spec["version"]),
                   {name: str(c["version"]) for name, c in spec["components"].items()})


def _next_patch(version: str) -> str:
    match = re.fullmatch(r"(v?\d+\.\d+\.)(\d+)", version)
    if not match:
        raise ValueError(f"cannot bump {version!r}")
    return f"{match.group(1)}{int(match.group(2)) + 1}"


def bump(release: Release) -> Release:
    """The demo's pull request: fleet 1.0.0 -> 1.1.0, kubelet and kube-proxy next patch."""
    major, minor, *_ = [*release.version.split("."), "0", "0"]
    components = dict(release.components)
    for name in BUMPED:
        if name in components:
            components[name] = _next_patch(components[name])
    return Release(f"{major}.{int(minor) + 1}.0", components)


@dataclass(frozen=True)
class Payload:
    url: str
    sha256: str
    path: str | None  # the member of a tarball, for a file component


def write_payloads(server: PayloadServer, release: Release) -> dict[str, Payload]:
    """Generate every component payload of ``release`` into the server's directory;
    name -> its URL and digest."""
    directory = server.directory
    out = {}
    for name, version in release.components.items():
        data, member = payload_files(name, version)
        file = directory / name / version / ("payload.tar.gz" if data[:2] == b"\x1f\x8b"
                                             else "payload.exe")
        file.parent.mkdir(parents=True, exist_ok=True)
        file.write_bytes(data)
        out[name] = Payload(server.url_of(file), hashlib.sha256(data).hexdigest(), member)
    return out


def fleet_yaml(release: Release, payloads: dict[str, Payload], ssh_port: int) -> str:
    """``fleet.yaml`` of the example, at ``release``, with the generated payloads."""
    doc = _load(example_dir() / FLEET_FILE)
    spec = doc["spec"]
    spec["version"] = type(spec["version"])(release.version)  # keeps the quotes
    for name, component in spec["components"].items():
        component["version"] = release.components[name]
        component["url"] = payloads[name].url
        component["sha256"] = payloads[name].sha256
        if payloads[name].path:
            component["path"] = payloads[name].path
    spec["nodes"]["sshPort"] = ssh_port
    return _dump(doc)


def hosts_yaml(addresses: list[str]) -> str:
    """``hosts/lab.yaml`` of the example with one entry per simulated host."""
    doc = _load(example_dir() / HOSTS_FILE)
    template = list(doc["spec"]["hosts"])
    hosts = doc["spec"]["hosts"]
    del hosts[:]
    for i, address in enumerate(addresses):
        entry = template[min(i, len(template) - 1)]
        if i >= len(template):  # extra hosts: like the last, without its labels
            entry = {k: v for k, v in entry.items() if k != "labels"}
        entry["address"] = address
        hosts.append(entry)
    return _dump(doc)


def seed(directory: Path, release: Release, payloads: dict[str, Payload], ssh_port: int,
         addresses: list[str]) -> None:
    """Copy ``examples/byoh`` into ``directory`` and make it runnable here."""
    shutil.copytree(example_dir(), directory, dirs_exist_ok=True)
    (directory / FLEET_FILE).write_text(fleet_yaml(release, payloads, ssh_port))
    (directory / HOSTS_FILE).write_text(hosts_yaml(addresses))
