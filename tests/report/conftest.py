"""Fixtures for the forge clients: one strict simulator per forge flavour."""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator

import pytest

from syncer.writeback.forges import ForgeConfig, RestForge, RetryPolicy, TokenSource, make_forge
from syncer_lab.forge import ForgeSimulator

FLAVOURS = ("github", "gitlab", "gitea")
TOKEN_ENV = "SYNCER_TEST_FORGE_TOKEN"
FAST_RETRY = RetryPolicy(attempts=3, backoff_base=0.01, backoff_max=0.05, max_wait=5.0)

MakeClient = Callable[..., RestForge]


@pytest.fixture(params=FLAVOURS)
def flavour(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def sim(flavour: str) -> Iterator[ForgeSimulator]:
    """A simulator with pages of 2 items, so every list spans several pages."""
    with ForgeSimulator(flavour, max_page_size=2) as s:  # type: ignore[arg-type]
        yield s
        s.assert_clean()


@pytest.fixture
def sleeps() -> list[float]:
    """Every wait the client asked for (the client never really sleeps in these tests)."""
    return []


@pytest.fixture
def make_client(
    sim: ForgeSimulator, monkeypatch: pytest.MonkeyPatch, sleeps: list[float]
) -> Iterator[MakeClient]:
    monkeypatch.setenv(TOKEN_ENV, sim.token)
    clients: list[RestForge] = []

    def make(**overrides: object) -> RestForge:
        settings: dict[str, object] = {
            "provider": sim.flavour,
            "repository": sim.repository,
            "token": TokenSource(env=TOKEN_ENV),
            "api_url": sim.api_url,
            "timeout": 2.0,
            "retry": FAST_RETRY,
        }
        settings.update(overrides)
        config = ForgeConfig(**settings)  # type: ignore[arg-type]
        client = make_forge(config, sleep=sleeps.append, rng=random.Random(0))
        clients.append(client)
        return client

    yield make
    for c in clients:
        c.close()


@pytest.fixture
def client(make_client: MakeClient) -> RestForge:
    return make_client()
