"""The phase writer against a real API server: a step that lasts is written with the
moment it began, a step that ends sooner costs no write, and nothing it writes late
overtakes the host's own write."""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

import pytest
from nodehelpers import create_node, unique

from syncer import names
from syncer.cluster.client import KubeClient
from syncer.cluster.objects import now
from syncer.nodes.annotations import patch_node_metadata, read_node
from syncer.nodes.phases import PhaseWriter


def _count_patches(api: KubeClient, monkeypatch: pytest.MonkeyPatch,
                   hold: threading.Event | None = None) -> list[str]:
    """The Node PATCHes sent through ``api``, in order (held until ``hold`` is set)."""
    sent: list[str] = []
    request = api.request

    def counting(method: str, path: str, **kw: Any) -> Any:
        if method == "PATCH":
            if hold is not None:
                hold.wait(10)
            sent.append(path)
        return request(method, path, **kw)

    monkeypatch.setattr(api, "request", counting)
    return sent


def _phase(api: KubeClient, name: str) -> tuple[str | None, str | None]:
    node = read_node(api, name)
    assert node is not None
    return node.phase, node.since


def _await_phase(api: KubeClient, name: str, phase: str) -> tuple[str | None, str | None]:
    """The Node's phase and since, once the phase is ``phase`` (or after 10 s)."""
    deadline = time.monotonic() + 10
    while (seen := _phase(api, name))[0] != phase and time.monotonic() < deadline:
        time.sleep(0.05)
    return seen


def test_only_the_step_that_lasts_is_written_with_its_start(
        api: KubeClient, scope: str, monkeypatch: pytest.MonkeyPatch) -> None:
    name = unique("phase")
    create_node(api, name, labels={"syncer-test": scope})
    sent = _count_patches(api, monkeypatch)
    writer = PhaseWriter(api, delay=0.3)
    try:
        writer.post(name, "transfer", now())
        writer.post(name, "replace", now())  # transfer ended at once: never written
        began = now()
        writer.post(name, "start", began)
        assert _await_phase(api, name, "start") == ("start", began)
        time.sleep(0.5)
        assert len(sent) == 1
    finally:
        writer.close()


def test_settle_drops_the_pending_step(
        api: KubeClient, scope: str, monkeypatch: pytest.MonkeyPatch) -> None:
    name = unique("phase")
    create_node(api, name, labels={"syncer-test": scope})
    sent = _count_patches(api, monkeypatch)
    writer = PhaseWriter(api, delay=0.2)
    try:
        writer.post(name, "verify", now())
        writer.settle(name)  # the host writes "configured" itself now
        patch_node_metadata(api, name, annotations={names.ANNOTATION_PHASE: "configured"})
        time.sleep(0.6)
        assert _phase(api, name)[0] == "configured"
        assert len(sent) == 1
    finally:
        writer.close()


def test_settle_waits_for_a_write_in_flight(
        api: KubeClient, scope: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """A slow API server: the writer's PATCH of "verify" is under way when the host
    settles; the host's "configured" must land after it, not before."""
    name = unique("phase")
    create_node(api, name, labels={"syncer-test": scope})
    hold = threading.Event()
    sent = _count_patches(api, monkeypatch, hold)
    writer = PhaseWriter(api, delay=0.0)
    try:
        writer.post(name, "verify", now())
        time.sleep(0.3)  # the writer is inside its PATCH, held
        settled = threading.Event()

        def settle() -> None:
            writer.settle(name)
            settled.set()

        threading.Thread(target=settle, daemon=True).start()
        assert not settled.wait(0.3)  # waits for the write in flight
        hold.set()
        assert settled.wait(10)
        patch_node_metadata(api, name, annotations={names.ANNOTATION_PHASE: "configured"})
        assert _phase(api, name)[0] == "configured"
        assert len(sent) == 2
    finally:
        hold.set()
        writer.close()


def test_a_failed_write_does_not_stop_the_writer(
        api: KubeClient, scope: str, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="syncer.nodes.phases")
    name = unique("phase")
    create_node(api, name, labels={"syncer-test": scope})
    writer = PhaseWriter(api, delay=0.0)
    try:
        writer.post(unique("gone"), "drain", now())  # no such Node: 404
        writer.post(name, "drain", now())
        assert _await_phase(api, name, "drain")[0] == "drain"
        assert "phase drain not written" in caplog.text
    finally:
        writer.close()
