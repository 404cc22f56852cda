"""Benchmark: ``syncer validate`` on a large fleet vs. merely parsing its YAML.

Generates a fleet of 50,000 BYOH hosts, 200 WindowsMachineSets and 50
WindowsRuntimeClasses (plus the Fleet and a few pass-through objects) spread over many
files in a temporary directory, then times, in the same process and run:

- ``load_fleet(path)``: what ``syncer validate`` does (find files, parse with ruamel.yaml's
  round-trip loader, check every document and the rules across them);
- the baseline: reading the same files and parsing them with ruamel.yaml's default
  ``YAML()`` (round-trip) loader, nothing else.

The two alternate, repeated, and the best time of each is kept. Times are the process's
CPU time (``time.process_time``), so other work on a busy machine does not skew them.
Prints both and their ratio; exits 1 when the ratio exceeds the target (1.5): checking
every document and the rules across them may cost at most half of what parsing costs.

    .venv/bin/python benchmarks/fleet_validate.py [--hosts N] [--repeat N] [--target 1.5]
"""

from __future__ import annotations

import argparse
import gc
import hashlib
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from ruamel.yaml import YAML

from syncer.fleet import load_fleet
from syncer.fleet.loading import find_yaml_files

HOSTS = 50_000
MACHINE_SETS = 200
RUNTIME_CLASSES = 50
HOSTS_PER_FILE = 100
MACHINE_SETS_PER_FILE = 10
HOST_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHM/n46gcDa2fv/RsKRLMwsu/N3/DWNSV5idQWBORTQT"


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def generate(root: Path, hosts: int = HOSTS) -> None:
    """Write the benchmark fleet under ``root``."""
    components = "\n".join(
        f"    {name}:\n"
        f"      version: {version}\n"
        f"      url: https://artifacts.example.com/windows/{name}/{version}/{name}.bin\n"
        f"      sha256: {_sha(name + version)}"
        for name, version in (
            ("kubelet", "v1.30.4"),
            ("kube-log-runner", "v1.30.4"),
            ("kube-proxy", "v1.30.4"),
            ("hns", "v1"),
            ("containerd", "v1.7.20"),
            ("hybrid-overlay-node", "v4.17.0"),
            ("cni", "v1.5.1"),
            ("windows_exporter", "v0.26.2"),
            ("csi-proxy", "v1.1.3"),
        )
    )
    (root / "fleet.yaml").write_text(
        "apiVersion: syncer.io/v1alpha1\nkind: Fleet\nmetadata:\n  name: bench\nspec:\n"
        '  platform: aws\n  infrastructureID: bench-x7k2p\n  version: "1.4.0"\n'
        f"  components:\n{components}\n  rollout:\n    maxUnavailable: 5\n"
    )

    hosts_dir = root / "hosts"
    hosts_dir.mkdir()
    for f in range(hosts // HOSTS_PER_FILE):
        lines = [
            "apiVersion: syncer.io/v1alpha1",
            "kind: BYOHHosts",
            "metadata:",
            f"  name: rack-{f:03d}",
            "spec:",
            "  hosts:",
        ]
        for h in range(HOSTS_PER_FILE):
            n = f * HOSTS_PER_FILE + h
            if n % 10 == 0:
                lines.append(f"    - address: win-{n:05d}.dc{f % 4}.example.com")
            else:
                ip = n + 256  # 10.0.1.0 onwards
                lines.append(f"    - address: 10.{ip >> 16}.{(ip >> 8) & 255}.{ip & 255}")
            lines.append("      username: Administrator")
            if n % 7 == 0:
                lines.append(f"      hostKey: {HOST_KEY}")
            if n % 5 == 0:
                lines.append("      labels:")
                lines.append(f"        example.com/rack: rack-{f:03d}")
        (hosts_dir / f"rack-{f:03d}.yaml").write_text("\n".join(lines) + "\n")

    ms_dir = root / "machinesets"
    ms_dir.mkdir()
    zones = ("us-east-1a", "us-east-1b", "us-east-1c")
    for f in range(MACHINE_SETS // MACHINE_SETS_PER_FILE):
        docs = []
        for m in range(MACHINE_SETS_PER_FILE):
            n = f * MACHINE_SETS_PER_FILE + m
            docs.append(
                "apiVersion: syncer.io/v1alpha1\nkind: WindowsMachineSet\n"
                f"metadata:\n  name: win-{n:03d}\n"
                f'spec:\n  replicas: {n % 4}\n  windowsServer: "{2019 if n % 2 else 2022}"\n'
                f"  zone: {zones[n % 3]}\n  image: ami-0{n:016x}\n  instanceType: m5a.large\n"
                f"  labels:\n    example.com/pool: pool-{n % 8}\n"
            )
        (ms_dir / f"group-{f:02d}.yaml").write_text("---\n".join(docs))

    docs = [
        "apiVersion: syncer.io/v1alpha1\nkind: WindowsRuntimeClass\n"
        f'metadata:\n  name: windows-{n:02d}\nspec:\n  windowsServer: "10.0.{20348 + n}"\n'
        for n in range(RUNTIME_CLASSES)
    ]
    (root / "runtimeclasses.yaml").write_text("---\n".join(docs))
    (root / "workloads.yaml").write_text(
        "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: windows-apps\n---\n"
        "apiVersion: v1\nkind: ResourceQuota\nmetadata:\n  name: quota\n"
        '  namespace: windows-apps\nspec:\n  hard:\n    requests.cpu: "64"\n'
    )


def parse_only(root: Path) -> int:
    """The baseline: read and parse every file with ruamel.yaml's default loader."""
    yaml = YAML()
    count = 0
    for rel in find_yaml_files(root):
        text = (root / rel).read_text(encoding="utf-8")
        count += sum(1 for _ in yaml.load_all(text))
    return count


def timed(fn: Callable[[Path], object], root: Path) -> float:
    gc.collect()  # start each run from the same heap, without disabling the collector
    start = time.process_time()
    fn(root)
    return time.process_time() - start


def measure(repeat: int, root: Path) -> tuple[float, float]:
    """Best (parse, validate) times over ``repeat`` rounds.

    The two runs alternate within each round, so a slow period of a busy machine hits
    both rather than one.
    """
    parse = validate = float("inf")
    for _ in range(repeat):
        parse = min(parse, timed(parse_only, root))
        validate = min(validate, timed(load_fleet, root))
    return parse, validate


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--target", type=float, default=1.5)
    parser.add_argument("--hosts", type=int, default=HOSTS)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="syncer-bench-") as tmp:
        root = Path(tmp)
        generate(root, args.hosts)
        model = load_fleet(root)  # also a warm-up; fails loudly if the fleet is invalid
        files = len(find_yaml_files(root))
        print(
            f"fleet: {len(model.byoh_hosts)} BYOH hosts, {len(model.machine_sets)} "
            f"WindowsMachineSets, {len(model.runtime_classes)} RuntimeClasses in {files} files"
        )
        parse, validate = measure(args.repeat, root)
    ratio = validate / parse
    print(f"parse only (ruamel.yaml YAML()): {parse:.3f}s CPU")
    print(f"syncer validate (load_fleet):   {validate:.3f}s CPU")
    print(f"ratio: {ratio:.2f} (target <= {args.target})")
    return 0 if ratio <= args.target else 1


if __name__ == "__main__":
    sys.exit(main())
