"""Small builders for fleet repositories in tests.

Each builder returns YAML text; :func:`write` puts a dict of ``path -> text`` under a
directory, and :func:`line_of` finds the 1-based line of a snippet so a test can assert
the exact ``file:line`` a problem points at.
"""

from __future__ import annotations

from pathlib import Path

from syncer.fleet import check_fleet
from syncer.problems import Problem

SHA_A = "1db51f6f55c9ad4721a316393bc8ef061984cb558bda84f8dd10925bb1ffe37e"
SHA_B = "babc204f1d1f9fe16c974577f976843603c7122471b88bd85318befda4b2ce53"
HOST_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHM/n46gcDa2fv/RsKRLMwsu/N3/DWNSV5idQWBORTQT"

COMPONENTS = f"""\
  components:
    kubelet:
      version: v1.30.4
      url: https://artifacts.example.com/kubelet.exe
      sha256: {SHA_A}
    containerd:
      version: v1.7.20
      url: https://artifacts.example.com/containerd.tar.gz
      sha256: {SHA_B}
    kube-log-runner:
      version: v1.30.4
      url: https://artifacts.example.com/kube-log-runner.exe
      sha256: 7b1d7c9bbf2b4bd1e4a6d3a8c1a6a7e0f9e2c3b4d5e6f7a8091a2b3c4d5e6f70
    cni:
      version: v1.5.1
      url: https://artifacts.example.com/cni-plugins.tar.gz
      sha256: ce4230da0cb3d1b01d2d8517ed274a3ab6a304e316497598d7765c98a937240c
"""


def fleet(
    platform: str = "aws",
    extra: str = "",
    *,
    name: str = "prod",
    infra: str | None = "prod-x7k2p",
    version: str | None = '"1.4.0"',
    components: str = COMPONENTS,
) -> str:
    """A Fleet document; ``extra`` is appended under ``spec`` (indent it by two).

    ``infra`` or ``version`` None leaves the field out.
    """
    infra_line = f"  infrastructureID: {infra}\n" if infra else ""
    version_line = f"  version: {version}\n" if version is not None else ""
    return (
        "apiVersion: syncer.io/v1alpha1\n"
        "kind: Fleet\n"
        "metadata:\n"
        f"  name: {name}\n"
        "spec:\n"
        f"  platform: {platform}\n"
        f"{infra_line}"
        f"{version_line}"
        f"{components}"
        f"{extra}"
    )


def byoh(*hosts: str, name: str = "lab") -> str:
    """A BYOHHosts document; each host is a flow mapping like ``{address: a, username: u}``."""
    items = "".join(f"    - {h}\n" for h in hosts)
    return (
        "apiVersion: syncer.io/v1alpha1\n"
        "kind: BYOHHosts\n"
        f"metadata:\n  name: {name}\n"
        f"spec:\n  hosts:\n{items}"
    )


def host(address: str, username: str = "Administrator", extra: str = "") -> str:
    more = f", {extra}" if extra else ""
    return f'{{address: "{address}", username: "{username}"{more}}}'


AWS_FIELDS = "zone: us-east-1a\n  image: ami-0a1b2c3d4e5f67890\n"
PLATFORM_FIELDS = {
    "aws": AWS_FIELDS,
    "azure": "location: centralus\n",
    "gcp": (
        "zone: us-central1-a\n  projectID: my-project\n"
        "  image: projects/windows-cloud/global/images/family/windows-2022-core\n"
    ),
    "vsphere": (
        "template: golden/windows-2022\n  server: vcenter.example.com\n  datacenter: dc1\n"
        "  datastore: ds1\n  network: vm-net\n"
    ),
    "nutanix": "image: windows-2022\n  cluster: pe-1\n  subnet: ocp-subnet\n",
}


def machine_set(
    name: str = "win",
    platform: str = "aws",
    windows_server: str = '"2022"',
    extra: str = "",
    *,
    fields: str | None = None,
) -> str:
    """A WindowsMachineSet document with the platform's required fields."""
    return (
        "apiVersion: syncer.io/v1alpha1\n"
        "kind: WindowsMachineSet\n"
        f"metadata:\n  name: {name}\n"
        "spec:\n"
        "  replicas: 1\n"
        f"  windowsServer: {windows_server}\n"
        f"  {fields if fields is not None else PLATFORM_FIELDS[platform]}"
        f"{extra}"
    )


def runtime_class(name: str = "windows-2022", windows_server: str = '"2022"') -> str:
    return (
        "apiVersion: syncer.io/v1alpha1\n"
        "kind: WindowsRuntimeClass\n"
        f"metadata:\n  name: {name}\n"
        f"spec:\n  windowsServer: {windows_server}\n"
    )


def write(root: Path, files: dict[str, str]) -> Path:
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


def line_of(text: str, snippet: str, occurrence: int = 1) -> int:
    """1-based line of the ``occurrence``-th line containing ``snippet``."""
    seen = 0
    for number, line in enumerate(text.splitlines(), 1):
        if snippet in line:
            seen += 1
            if seen == occurrence:
                return number
    raise AssertionError(f"{snippet!r} not in text")


def problems_of(root: Path, files: dict[str, str]) -> list[Problem]:
    write(root, files)
    return check_fleet(root)[1]


def errors_of(root: Path, files: dict[str, str]) -> list[Problem]:
    return [p for p in problems_of(root, files) if p.is_error]


def warnings_of(root: Path, files: dict[str, str]) -> list[Problem]:
    return [p for p in problems_of(root, files) if not p.is_error]
