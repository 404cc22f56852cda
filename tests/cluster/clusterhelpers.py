"""Helpers of the apply engine's cluster tests (imported by tests/cluster/*)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

COMPONENTS = """\
  components:
    kubelet:
      version: v1.30.4
      url: https://artifacts.example.com/kubelet.exe
      sha256: 1db51f6f55c9ad4721a316393bc8ef061984cb558bda84f8dd10925bb1ffe37e
    containerd:
      version: v1.7.20
      url: https://artifacts.example.com/containerd.tar.gz
      sha256: babc204f1d1f9fe16c974577f976843603c7122471b88bd85318befda4b2ce53
    kube-log-runner:
      version: v1.30.4
      url: https://artifacts.example.com/kube-log-runner.exe
      sha256: 7b1d7c9bbf2b4bd1e4a6d3a8c1a6a7e0f9e2c3b4d5e6f7a8091a2b3c4d5e6f70
    cni:
      version: v1.5.1
      url: https://artifacts.example.com/cni-plugins.tar.gz
      sha256: ce4230da0cb3d1b01d2d8517ed274a3ab6a304e316497598d7765c98a937240c
"""


@dataclass
class Recorder:
    """(method, path) of every request sent through the wrapped ApiClient."""

    calls: list[tuple[str, str]] = field(default_factory=list)

    def writes(self, *, except_path: str = "") -> list[tuple[str, str]]:
        return [
            (m, p) for m, p in self.calls
            if m in ("POST", "PUT", "PATCH", "DELETE") and not (except_path and except_path in p)
        ]

    def clear(self) -> None:
        self.calls.clear()


@dataclass
class FleetDir:
    """A fleet repository on disk (a plain directory) for one test."""

    root: Path
    name: str
    namespace: str
    prune: str = ""

    def fleet_yaml(self, namespace: str | None = None) -> str:
        prune = f"  prune:\n{self.prune}" if self.prune else ""
        return (
            "apiVersion: syncer.io/v1alpha1\nkind: Fleet\n"
            f"metadata:\n  name: {self.name}\n"
            "spec:\n  platform: none\n"
            f"  namespace: {namespace or self.namespace}\n"
            '  version: "1.0.0"\n' + COMPONENTS + prune
        )

    def write(self, name: str, text: str) -> None:
        path = self.root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)

    def remove(self, name: str) -> None:
        (self.root / name).unlink()

    def configmap(self, name: str, data: dict[str, str], namespace: str | None = None,
                  annotations: dict[str, str] | None = None) -> str:
        lines = ["apiVersion: v1", "kind: ConfigMap", "metadata:", f"  name: {name}",
                 f"  namespace: {namespace or self.namespace}"]
        if annotations:
            lines.append("  annotations:")
            lines += [f'    {k}: "{v}"' for k, v in annotations.items()]
        lines.append("data:")
        lines += [f'  {k}: "{v}"' for k, v in data.items()]
        return "\n".join(lines) + "\n"
