"""The documentation holds the contract the code implements (every field, every default)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from syncer.components import CATALOGUE
from syncer.fleet.model import Platform
from syncer.fleet.platforms import PLATFORMS

DOCS = Path(__file__).resolve().parents[2] / "docs"
CONTRACT = DOCS / "fleet-repository.md"
COMMANDS = DOCS / "commands.md"


def contract() -> str:
    text = CONTRACT.read_text()
    match = re.search(r"<!-- section:contract -->(.*)<!-- /section:contract -->", text, re.S)
    assert match, f"{CONTRACT} has no contract section"
    return match.group(1)


def section(title: str) -> str:
    text = contract()
    start = text.index(title)
    return text[start : start + 4000]


@pytest.mark.parametrize(
    "field",
    [
        "spec.platform",
        "spec.infrastructureID",
        "spec.namespace",
        "spec.version",
        "spec.components",
        "spec.rollout",
        "spec.nodes",
        "spec.prune",
        "spec.status",
        "maxUnavailable",
        "drainTimeout",
        "onFailure",
        "paused",
        "sshPort",
        "hostKeyPolicy",
        "userData",
        "apiServer",
        "enabled",
        "maxDeletions",
        "branch",
        "notes",
        "pullRequests",
        "spec.replicas",
        "spec.windowsServer",
        "spec.labels",
        "spec.providerSpec",
        "spec.hosts[].address",
        "spec.hosts[].username",
        "spec.hosts[].hostKey",
        "spec.hosts[].labels",
        "components.json",
        "nodes.json",
        "hosts.json",
    ],
)
def test_contract_documents_field(field: str) -> None:
    assert f"`{field}`" in contract()


@pytest.mark.parametrize("platform", sorted(PLATFORMS), ids=str)
def test_contract_documents_every_platform_field_and_default(platform: Platform) -> None:
    text = section(f"**{platform}**")
    for spec in PLATFORMS[platform].fields:
        assert f"| `{spec.name}` |" in text, (platform, spec.name)
        if spec.default is not None:
            assert f"`{spec.default}`" in text, (platform, spec.name, spec.default)


def test_contract_names_every_component() -> None:
    for name in CATALOGUE:
        assert f"`{name}`" in contract()


def test_commands_are_documented() -> None:
    text = COMMANDS.read_text()
    assert "`syncer validate [PATH] [--strict]`" in text
    assert "`syncer render [PATH] [-o yaml|json]`" in text
