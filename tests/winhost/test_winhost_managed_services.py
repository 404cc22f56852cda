"""The ``managed-services`` vocabulary entry (added for deconfiguration):
builder, simulator and parser agree, and hostile prefixes stay data."""

from __future__ import annotations

from winhelpers import run

from syncer.nodes.windows import vocabulary as c
from syncer_lab.winhost import SimClient, SimHost


def test_lists_services_marked_managed(win_client: SimClient, win_host: SimHost) -> None:
    win_host.scm.create("kubelet", "C:\\k\\kubelet.exe", "auto")
    win_host.scm.describe("kubelet", "OpenShift managed (syncer) kubelet")
    win_host.scm.create("old-proxy", "C:\\k\\old.exe", "auto")
    win_host.scm.describe("old-proxy", "OpenShift managed old-proxy")
    win_host.scm.create("other", "C:\\other.exe", "auto")
    win_host.scm.describe("other", "not ours")
    names = c.parse_managed_services(run(win_client, c.managed_services("OpenShift managed")))
    assert sorted(names) == ["kubelet", "old-proxy"]
    assert c.parse_managed_services(run(win_client, c.managed_services("nothing"))) == []


def test_hostile_prefix_is_data(win_client: SimClient, win_host: SimHost) -> None:
    prefix = "x'; Remove-Item C:\\ -Recurse; '$(whoami)%PATH%\""
    win_host.scm.create("weird", "C:\\k\\w.exe", "auto")
    win_host.scm.describe("weird", prefix + " tail")
    assert c.parse_managed_services(run(win_client, c.managed_services(prefix))) == ["weird"]
