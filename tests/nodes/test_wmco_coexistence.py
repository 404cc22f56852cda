"""While WMCO manages the Windows nodes, syncer's node stage touches nothing.

WMCO's Deployment as OLM creates it from WMCO's ClusterServiceVersion
(``windows-machine-config-operator`` in the fleet namespace) is created in the test
control plane; no controller runs it, which is all the check needs.
"""

from __future__ import annotations

from syncer import names
from syncer.cluster.client import ApiError
from syncer.nodes.status import Phase, read_status
from syncer_lab.nodelab import NodeLab, entries


def _wmco_deployment(node_lab: NodeLab, replicas: int) -> None:
    labels = {"name": "windows-machine-config-operator"}
    body = {
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "windows-machine-config-operator", "namespace": node_lab.namespace},
        "spec": {"replicas": replicas, "selector": {"matchLabels": labels}, "template": {
            "metadata": {"labels": labels},
            "spec": {"containers": [{"name": "manager", "image": "registry.example/wmco:11"}]}}},
    }
    path = f"/apis/apps/v1/namespaces/{node_lab.namespace}/deployments"
    try:
        node_lab.api.request("PUT", f"{path}/windows-machine-config-operator", body=body)
    except ApiError as err:
        if not err.not_found:
            raise
        node_lab.api.request("POST", path, body=body)


def test_an_active_wmco_keeps_syncer_off_the_hosts(node_lab: NodeLab) -> None:
    hosts = node_lab.add_hosts(2)
    node_lab.set_fleet("1.0.0")
    node_lab.write_instances()
    _wmco_deployment(node_lab, replicas=1)
    result = node_lab.run()
    assert result.blocked is not None and "WMCO is active" in result.blocked
    assert {r.phase for r in result.rows} == {Phase.BLOCKED}
    assert {r.detail for r in result.rows} == {"WMCOActive"}
    assert all(entries(h) == [] for h in hosts)  # not one SSH command
    assert node_lab.nodes() == {}
    secret = f"/api/v1/namespaces/{node_lab.namespace}/secrets/{names.USER_DATA_SECRET}"
    assert not _exists(node_lab, secret)  # WMCO's user data is WMCO's
    assert "WMCO is active" in (read_status(node_lab.api, node_lab.namespace)
                                .rollout.get("blocked") or "")

    _wmco_deployment(node_lab, replicas=0)  # handed over: syncer takes the hosts
    joined = node_lab.run()
    assert joined.ok, (joined.summary(), joined.rows)
    assert {r.phase for r in joined.rows} == {Phase.UP_TO_DATE}


def _exists(node_lab: NodeLab, path: str) -> bool:
    try:
        node_lab.api.request("GET", path)
    except ApiError as err:
        if err.not_found:
            return False
        raise
    return True
