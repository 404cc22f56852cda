"""The syncer-fleet ConfigMap is one contract: what the renderer writes from each example
fleet, the node stage reads back to the same values, with no problem reported."""

from __future__ import annotations

from pathlib import Path

import pytest

from syncer import names
from syncer.desired import DesiredState, HostKeyPolicy, OnFailure, Platform
from syncer.fleet import load_fleet, render
from syncer.problems import Problem

EXAMPLES = sorted(p for p in (Path(__file__).resolve().parents[2] / "examples").iterdir()
                  if p.is_dir())


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda p: p.name)
def test_render_and_read_back_agree(example: Path) -> None:
    model = load_fleet(example)
    data = next(o for o in render(model) if o["kind"] == "ConfigMap"
                and o["metadata"]["name"] == names.FLEET_CONFIGMAP)["data"]
    problems: list[Problem] = []
    state = DesiredState.from_data(data, problems=problems)
    assert problems == []
    assert state.to_data() == data
    fleet = model.fleet
    assert state.version == fleet.version
    assert state.nodes.platform is Platform(fleet.platform)
    assert state.rollout.drain_seconds == fleet.rollout.drain_timeout_seconds
    assert {n: c.sha256 for n, c in state.components.items()} == {
        n: c.sha256 for n, c in fleet.components.items()}
    assert set(state.extras) <= {h.address for h in model.byoh_hosts}


def test_a_hand_edited_configmap_gives_problems_and_defaults_not_an_exception() -> None:
    problems: list[Problem] = []
    state = DesiredState.from_data({
        "version": "1.0.0",
        "nodes.json": '{"rollout": {"onFailure": "explode", "drainTimeout": "-5s"},'
                      ' "nodes": {"hostKeyPolicy": "PINNED", "sshPort": "x"}}',
        "components.json": "[1, 2]",
    }, problems=problems)
    assert state.rollout.on_failure is OnFailure.HALT
    assert state.rollout.drain_seconds == 600.0
    assert state.nodes.host_key_policy is HostKeyPolicy.PINNED
    assert state.nodes.ssh_port == 22
    assert [p.message for p in problems] == [
        "components.json: must be a JSON object",
        "nodes.json: rollout.onFailure: unknown value 'explode'",
    ]
