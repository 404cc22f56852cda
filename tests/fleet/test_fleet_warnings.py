"""Warnings: legal but suspicious fleets validate (no error) and say why they look odd.

Each warning has a case that draws it, at its file:line, and a case that does not.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from fleet_builders import (
    COMPONENTS,
    byoh,
    fleet,
    host,
    line_of,
    machine_set,
    problems_of,
    runtime_class,
)

HOSTS = byoh(host("10.0.0.1"), host("10.0.0.2"))
NAMESPACE = "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: a\n"
KUBE_PROXY = (
    "    kube-proxy:\n      version: {v}\n      url: https://artifacts.example.com/kube-proxy.exe\n"
    "      sha256: b02ca129de7a90d1e622098a34b9b11d7bc679aa0b142c26336103d82f0451f9\n"
    # kube-proxy runs on the hybrid overlay: its companions come with it.
    "    hybrid-overlay-node: {{version: v4.17.0, url: https://a.example.com/ho.exe, sha256: "
    "fb87fdf213e832496288df5203d6ec5483c83c4344ca1cb0fb216fe08f26c0af}}\n"
    "    hns: {{version: v1, url: https://a.example.com/hns.psm1, sha256: "
    "3e5a2f1c0d9b8a7f6e5d4c3b2a1f0e9d8c7b6a5f4e3d2c1b0a9f8e7d6c5b4a39}}\n"
)
RAW_MS = """\
apiVersion: machine.openshift.io/v1beta1
kind: MachineSet
metadata:
  name: winraw
  namespace: openshift-machine-api
  labels: {{machine.openshift.io/cluster-api-cluster: {cluster}}}
spec:
  replicas: 1
  template:
    metadata:
      labels: {{machine.openshift.io/os-id: Windows}}
    spec:
      metadata:
        labels: {labels}
      providerSpec:
        value: {{userDataSecret: {{name: windows-user-data}}}}
"""

WARNINGS = [
    pytest.param(
        {
            "fleet.yaml": fleet(),
            "h.yaml": HOSTS,
            "rc.yaml": runtime_class("a") + "---\n" + runtime_class("b", "10.0.20348"),
        },
        (
            "rc.yaml",
            ("apiVersion", 2),
            "RuntimeClass b targets Windows build 10.0.20348 like RuntimeClass a at rc.yaml:1",
        ),
        {
            "fleet.yaml": fleet(),
            "h.yaml": HOSTS,
            "rc.yaml": runtime_class("a") + "---\n" + runtime_class("b", '"2019"'),
        },
        id="runtime-classes-same-build",
    ),
    pytest.param(
        {
            "fleet.yaml": fleet(
                components=COMPONENTS.replace("https://artifacts", "http://artifacts", 1)
            ),
            "h.yaml": HOSTS,
        },
        ("fleet.yaml", ("http://", 1), "payload is downloaded over plain http"),
        {"fleet.yaml": fleet(), "h.yaml": HOSTS},
        id="plain-http-payload",
    ),
    pytest.param(
        {"fleet.yaml": fleet(extra="  rollout:\n    paused: true\n"), "h.yaml": HOSTS},
        ("fleet.yaml", ("paused", 1), "rollout is paused"),
        {"fleet.yaml": fleet(extra="  rollout:\n    paused: false\n"), "h.yaml": HOSTS},
        id="rollout-paused",
    ),
    pytest.param(
        {"fleet.yaml": fleet(extra="  rollout:\n    maxUnavailable: 5\n"), "h.yaml": HOSTS},
        ("fleet.yaml", ("maxUnavailable", 1), "maxUnavailable: 5 is more than the 2 Windows hosts"),
        {"fleet.yaml": fleet(extra="  rollout:\n    maxUnavailable: 2\n"), "h.yaml": HOSTS},
        id="max-unavailable-above-fleet-size",
    ),
    pytest.param(
        {"fleet.yaml": fleet()},
        ("fleet.yaml", ("apiVersion", 1), "this fleet defines no Windows hosts"),
        {"fleet.yaml": fleet(), "m.yaml": machine_set()},
        id="no-windows-hosts",
    ),
    pytest.param(
        {
            "fleet.yaml": fleet(),
            "h.yaml": HOSTS,
            "e.yaml": byoh(name="empty").replace("hosts:\n", "hosts: []\n"),
        },
        ("e.yaml", ("hosts:", 1), "the host list is empty"),
        {"fleet.yaml": fleet(), "h.yaml": HOSTS},
        id="empty-host-list",
    ),
    pytest.param(
        {
            "fleet.yaml": fleet(components=COMPONENTS + KUBE_PROXY.format(v="v1.29.8")),
            "h.yaml": HOSTS,
        },
        (
            "fleet.yaml",
            ("v1.29.8", 1),
            "kube-proxy.version: v1.29.8 differs from the kubelet's v1.30.4",
        ),
        {
            "fleet.yaml": fleet(components=COMPONENTS + KUBE_PROXY.format(v="v1.30.4")),
            "h.yaml": HOSTS,
        },
        id="kube-proxy-version-differs",
    ),
    pytest.param(
        {
            "fleet.yaml": fleet(),
            "h.yaml": HOSTS,
            "r.yaml": NAMESPACE + "status:\n  phase: Active\n",
        },
        ("r.yaml", ("status:", 1), "status is ignored"),
        {
            "fleet.yaml": fleet(),
            "h.yaml": HOSTS,
            "r.yaml": "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: a\n",
        },
        id="raw-object-with-status",
    ),
    pytest.param(
        {
            "fleet.yaml": fleet(),
            "h.yaml": HOSTS,
            "r.yaml": NAMESPACE + "  resourceVersion: '42'\n",
        },
        ("r.yaml", ("resourceVersion", 1), "metadata.resourceVersion is set by the API server"),
        {
            "fleet.yaml": fleet(),
            "h.yaml": HOSTS,
            "r.yaml": "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: a\n",
        },
        id="raw-object-with-server-fields",
    ),
    pytest.param(
        {
            "fleet.yaml": fleet(),
            "r.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: windows-instances\n"
            "  namespace: openshift-windows-machine-config-operator\n"
            "data:\n  10.0.0.1: username=a\n",
        },
        ("r.yaml", ("apiVersion", 1), "ConfigMap windows-instances written by hand"),
        {"fleet.yaml": fleet(), "h.yaml": HOSTS},
        id="hand-written-windows-instances",
    ),
    pytest.param(
        {"fleet.yaml": fleet(), "r.yaml": RAW_MS.format(cluster="prod-x7k2p", labels="{}")},
        ("r.yaml", ("apiVersion", 1), "without node label node-role.kubernetes.io/worker"),
        {
            "fleet.yaml": fleet(),
            "r.yaml": RAW_MS.format(
                cluster="prod-x7k2p", labels='{node-role.kubernetes.io/worker: ""}'
            ),
        },
        id="raw-windows-machineset-without-worker-label",
    ),
    pytest.param(
        {
            "fleet.yaml": fleet(),
            "r.yaml": RAW_MS.format(
                cluster="other-1234", labels='{node-role.kubernetes.io/worker: ""}'
            ),
        },
        ("r.yaml", ("other-1234", 1), "but the Fleet's infrastructureID is 'prod-x7k2p'"),
        {
            "fleet.yaml": fleet(),
            "r.yaml": RAW_MS.format(
                cluster="prod-x7k2p", labels='{node-role.kubernetes.io/worker: ""}'
            ),
        },
        id="raw-machineset-cluster-label-mismatch",
    ),
    pytest.param(
        {"fleet.yaml": fleet(), "h.yaml": HOSTS, "rc.yaml": runtime_class("w", "10.0.19041")},
        ("rc.yaml", ("windowsServer", 1), "build 10.0.19041 is not a Windows Server LTSC release"),
        {"fleet.yaml": fleet(), "h.yaml": HOSTS, "rc.yaml": runtime_class("w", "10.0.26100")},
        id="runtime-class-unknown-build",
    ),
]


@pytest.mark.parametrize(("suspicious", "expect", "fine"), WARNINGS)
def test_warning(
    tmp_path: Path,
    suspicious: dict[str, str],
    expect: tuple[str, tuple[str, int], str],
    fine: dict[str, str],
) -> None:
    file, (snippet, occurrence), fragment = expect
    problems = problems_of(tmp_path / "suspicious", suspicious)
    assert [p for p in problems if p.is_error] == []
    line = line_of(suspicious[file], snippet, occurrence)
    warned = [p for p in problems if fragment in p.message]
    assert [(p.file, p.line, p.is_error) for p in warned] == [(file, line, False)], problems

    problems = problems_of(tmp_path / "fine", fine)
    assert problems == [], "\n".join(map(str, problems))
