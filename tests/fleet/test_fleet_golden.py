"""Golden tests: ``syncer render`` output of every example, pinned byte for byte.

When a change to rendering is intended, regenerate the files and review the diff:

    UPDATE_GOLDEN=1 .venv/bin/pytest tests/fleet/test_fleet_golden.py
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from click.testing import CliRunner

from syncer.cli.main import cli
from syncer.fleet import load_fleet

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"
GOLDEN = Path(__file__).parent / "golden"
EXAMPLE_NAMES = ["aws", "azure", "gcp", "vsphere", "nutanix", "byoh"]


def test_every_example_has_a_golden_file() -> None:
    assert sorted(p.name for p in EXAMPLES.iterdir() if p.is_dir()) == sorted(EXAMPLE_NAMES)
    assert sorted(p.stem for p in GOLDEN.glob("*.yaml")) == sorted(EXAMPLE_NAMES)


@pytest.mark.parametrize("example", EXAMPLE_NAMES)
def test_example_validates_without_problems(example: str) -> None:
    result = CliRunner().invoke(cli, ["validate", "--strict", str(EXAMPLES / example)])
    assert result.exit_code == 0, result.output
    assert result.stderr == ""
    assert result.stdout.endswith("— valid\n")


@pytest.mark.parametrize("example", EXAMPLE_NAMES)
def test_render_matches_golden(example: str) -> None:
    result = CliRunner().invoke(cli, ["render", str(EXAMPLES / example)])
    assert result.exit_code == 0, result.output
    golden = GOLDEN / f"{example}.yaml"
    if os.environ.get("UPDATE_GOLDEN"):
        golden.write_text(result.stdout)
    assert result.stdout == golden.read_text(), (
        f"render of examples/{example} changed; if intended, regenerate with "
        "UPDATE_GOLDEN=1 .venv/bin/pytest tests/fleet/test_fleet_golden.py"
    )


@pytest.mark.parametrize("example", EXAMPLE_NAMES)
def test_examples_are_real_repositories(example: str) -> None:
    """Each example is split across files like a real repository, with comments."""
    files = sorted((EXAMPLES / example).rglob("*.yaml"))
    assert len(files) >= 3
    assert (EXAMPLES / example / "fleet.yaml").is_file()
    assert any("#" in f.read_text() for f in files)


def test_byoh_example_is_the_demo_fleet() -> None:
    """The local demo runs examples/byoh against simulated hosts on 127.0.1.1-3."""
    model = load_fleet(EXAMPLES / "byoh")
    assert model.fleet.platform == "none"
    assert model.machine_sets == []
    assert [(h.address, h.username) for h in model.byoh_hosts] == [
        ("127.0.1.1", "Administrator"),
        ("127.0.1.2", "Administrator"),
        ("127.0.1.3", "Administrator"),
    ]


@pytest.mark.parametrize(
    ("example", "platform"),
    [(name, name) for name in EXAMPLE_NAMES if name != "byoh"],
)
def test_platform_examples_have_machine_sets(example: str, platform: str) -> None:
    model = load_fleet(EXAMPLES / example)
    assert model.fleet.platform == platform
    assert model.machine_sets
