"""Hostile hosts: what a broken or compromised Windows host can answer, and what it gets.

A host's answers are data, never a reason for the round to stop: every malformed
inventory below is that host's error (``parse_inventory`` raises ValueError and nothing
else), and through a real round one such host is blocked while its neighbour is
configured. Trickling, flooding and silent SSH servers are in
``tests/nodes/test_ssh_bounds.py``; the fault matrix runs them through rollouts.
"""

from __future__ import annotations

import json
import time

import pytest

from syncer.nodes.status import Phase
from syncer.nodes.windows.vocabulary import CommandResult, parse_inventory
from syncer_lab.nodelab import NodeLab

MALFORMED = {
    "an empty answer": "",
    "a list": "[]",
    "null": "null",
    "a string": '"inventory"',
    "half a document": '{"hostname": "WIN-1", ',
    "services as a string": '{"hostname": "WIN-1", "services": "kubelet"}',
    "free bytes as null": '{"hostname": "WIN-1", "freeBytes": null}',
    "free bytes as text": '{"hostname": "WIN-1", "freeBytes": "lots"}',
    "a service entry that is a number": '{"hostname": "WIN-1", "services": [7]}',
    "100,000 nested lists": "[" * 100_000 + "]" * 100_000,
    "a NUL in the host name": '{"hostname": "WIN\\u0000-1"}',
    "a banner before the JSON":
        'Windows PowerShell\r\nCopyright (C) Microsoft Corporation.\r\n{"hostname": "W"}',
    "non-UTF-8 bytes (decoded as replacement characters)": '{"hostname": "\ufffd\ufffd"}',
}


@pytest.mark.parametrize("stdout", MALFORMED.values(), ids=list(MALFORMED))
def test_a_malformed_inventory_is_that_hosts_error(stdout: str) -> None:
    started = time.monotonic()
    with pytest.raises(ValueError):
        parse_inventory(CommandResult(0, stdout))
    assert time.monotonic() - started < 2


@pytest.mark.parametrize("name", ["WIN-1 --hostname-override=other", "WIN-1\"", "-v=10",
                                  "WIN_1", ""])
def test_a_host_name_that_is_not_a_dns_name_is_refused(name: str) -> None:
    """The name a host reports goes into its Node name and its own services' arguments;
    a space, a quote or a leading dash would add or change an argument there."""
    doc = {"hostname": name, "osBuild": "10.0.20348.2340", "freeBytes": 1 << 30}
    with pytest.raises(ValueError, match="host reports"):
        parse_inventory(CommandResult(0, json.dumps(doc)))
    doc["hostname"] = "WIN-1"
    assert parse_inventory(CommandResult(0, json.dumps(doc))).hostname == "WIN-1"


def test_one_host_answering_garbage_does_not_stop_the_others(node_lab: NodeLab) -> None:
    bad, good = sorted(node_lab.add_hosts(2), key=lambda h: h.address)
    bad.faults.answer(r"^inventory", json.dumps([{"not": "an inventory"}]),  # type: ignore[attr-defined]
                      times=None)
    node_lab.set_fleet("1.0.0")
    node_lab.write_instances()
    result = node_lab.run()
    rows = {r.address: r for r in result.rows}
    assert rows[bad.address].phase is Phase.BLOCKED
    assert "inventory" in (rows[bad.address].last_error or "")
    assert rows[good.address].phase is Phase.UP_TO_DATE, result.rows
