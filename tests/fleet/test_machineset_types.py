"""Rendered MachineSets decode strictly into openshift/api's Go types, providerSpec included,
on all five platforms: the real types (tools/openshift, openshift-check) refuse any field
the machine API would drop or reject (a wrong type, an unknown field)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from syncer.cli.main import cli
from syncer_lab.openshift import strict_decode

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
PLATFORMS = ["aws", "azure", "gcp", "vsphere", "nutanix"]


@pytest.mark.parametrize("platform", PLATFORMS)
def test_rendered_machinesets_decode_strictly(platform: str) -> None:
    result = CliRunner().invoke(cli, ["render", str(EXAMPLES / platform)])
    assert result.exit_code == 0, result.output
    machinesets = [d for d in yaml.safe_load_all(result.stdout)
                   if d and d.get("kind") == "MachineSet"]
    assert machinesets, f"examples/{platform} renders no MachineSet"
    errors = strict_decode(machinesets)
    assert errors == [None] * len(machinesets), errors


def test_the_checker_refuses_an_unknown_field() -> None:
    """The check can fail: a field the AWS type lacks is named."""
    result = CliRunner().invoke(cli, ["render", str(EXAMPLES / "aws")])
    machineset = next(d for d in yaml.safe_load_all(result.stdout)
                      if d and d.get("kind") == "MachineSet")
    value = machineset["spec"]["template"]["spec"]["providerSpec"]["value"]
    value["instanceTyp"] = value["instanceType"]
    (error,) = strict_decode([machineset])
    assert error is not None and 'unknown field "instanceTyp"' in error
