"""The cyclic collector is paused while a reconcile validates, plans and applies, and always
comes back, also when reconciles of several fleets overlap in threads."""

from __future__ import annotations

import gc
import threading
from typing import Any

import pytest
from clusterhelpers import FleetDir

import syncer.reconcile as reconcile
from syncer.cluster import gcpause
from syncer.cluster.client import KubeClient
from syncer.reconcile import ReconcileOptions, Stage


def test_overlapping_pauses_restore_the_collector_after_the_last() -> None:
    assert gc.isenabled()
    first_in, second_in, first_out = threading.Event(), threading.Event(), threading.Event()
    seen: list[bool] = []

    def first() -> None:
        with gcpause.paused():
            first_in.set()
            second_in.wait(5)
        first_out.set()

    def second() -> None:
        first_in.wait(5)
        with gcpause.paused():
            second_in.set()
            first_out.wait(5)
            seen.append(gc.isenabled())  # the first pause ended: still paused here

    threads = [threading.Thread(target=first), threading.Thread(target=second)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert seen == [False]
    assert gc.isenabled()


def test_an_exception_inside_does_not_leave_it_off() -> None:
    with pytest.raises(RuntimeError), gcpause.paused():
        raise RuntimeError("plan failed")
    assert gc.isenabled()


def test_a_collector_switched_off_by_someone_else_stays_off() -> None:
    gc.disable()
    try:
        with gcpause.paused():
            pass
        assert not gc.isenabled()
    finally:
        gc.enable()


def test_no_collection_between_a_push_and_its_objects_applied(
    fleet: FleetDir, kc: KubeClient, options: ReconcileOptions, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A full collection walks everything alive (0.13-0.3 s each with 4,000 objects and a
    parse cache, once or twice a reconcile): none lands between fetching a revision and
    its objects applied. The collector is back on for what follows (the write-back, the
    node stage: hours of a rollout), and after a revision that failed validation."""
    fleet.write("app.yaml", fleet.configmap("app", {"value": "1"}))
    enabled: dict[str, bool] = {}

    def watching(name: str, real: Any) -> Any:
        def call(*args: Any, **kwargs: Any) -> Any:
            enabled[name] = gc.isenabled()
            return real(*args, **kwargs)
        return call

    for name in ("load_fleet", "render", "apply_plan"):
        monkeypatch.setattr(reconcile, name, watching(name, getattr(reconcile, name)))
    result = reconcile.reconcile_once(
        fleet.root, kc, options, on_applied=lambda _: enabled.update(written_back=gc.isenabled()))
    assert result.stage is Stage.DONE, result.errors
    assert enabled == {"load_fleet": False, "render": False, "apply_plan": False,
                       "written_back": True}
    assert gc.isenabled()

    fleet.write("broken.yaml", "kind: [\n")
    enabled.clear()
    result = reconcile.reconcile_once(fleet.root, kc, options)
    assert result.errors and enabled == {"load_fleet": False}
    assert gc.isenabled()
