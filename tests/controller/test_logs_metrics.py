"""Structured logs (logfmt and JSON) and the Prometheus exposition."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest
from controller_helpers import restored_logging
from prometheus_client.parser import text_string_to_metric_families

from syncer.controller import logs
from syncer.controller.metrics import Metrics


@pytest.fixture
def stream() -> Iterator[io.StringIO]:
    out = io.StringIO()
    with restored_logging():
        yield out


def test_text_logs_are_logfmt(stream: io.StringIO) -> None:
    logs.setup("text", "info", stream)
    logging.getLogger("syncer.controller").info(
        "reconcile finished", extra={"revision": "ab12", "duration": 1.5, "detail": "a b"})
    line = stream.getvalue().strip()
    assert line.startswith("ts=") and " level=info logger=syncer.controller " in line
    assert 'msg="reconcile finished" revision=ab12 duration=1.5 detail="a b"' in line


def test_json_logs_one_object_per_line(stream: io.StringIO) -> None:
    logs.setup("json", "debug", stream)
    log = logging.getLogger("x")
    log.debug("one", extra={"n": 1})
    try:
        raise ValueError("boom")
    except ValueError:
        log.exception("two")
    first, second = (json.loads(line) for line in stream.getvalue().splitlines() if line)
    assert first["msg"] == "one" and first["n"] == 1 and first["level"] == "debug"
    assert second["level"] == "error" and "ValueError: boom" in second["error"]


def test_redaction_of_registered_secrets(stream: io.StringIO) -> None:
    logs.setup("text", "info", stream)
    logs.REDACTOR.add("hunter2-long-token\n")
    logging.getLogger("x").info("auth with %s", "hunter2-long-token",
                                extra={"url": "https://u:hunter2-long-token@h"})
    out = stream.getvalue()
    assert "hunter2" not in out and out.count("***") == 2


def samples(metrics: Metrics) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    found = {}
    for family in text_string_to_metric_families(metrics.exposition().decode()):
        for s in family.samples:
            found[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return found


def test_exposition_has_every_series() -> None:
    m = Metrics()
    f = m.fleet("")
    f.observe_duration(0.3)
    f.count("success")
    f.set_revision("a" * 40)
    f.set_objects({"created": 3, "unchanged": 2})
    f.set_hosts({"up-to-date": 2, "draining": 1})
    f.set_rollout(2, 3)
    f.set_writeback_pending(1)
    f.git_errors.inc()
    f.ssh_errors.inc(2)
    f.leader.set(1)
    s = samples(m)
    none = (("fleet", ""),)
    assert s[("syncer_reconcile_duration_seconds_count", none)] == 1
    assert s[("syncer_reconciles_total", (("fleet", ""), ("result", "success")))] == 1
    assert s[("syncer_reconciles_total", (("fleet", ""), ("result", "failed")))] == 0
    assert s[("syncer_last_applied_revision_info",
              (("fleet", ""), ("revision", "a" * 40)))] == 1
    assert s[("syncer_objects", (("fleet", ""), ("result", "created")))] == 3
    assert s[("syncer_hosts", (("fleet", ""), ("phase", "draining")))] == 1
    assert s[("syncer_rollout_hosts_done", none)] == 2
    assert s[("syncer_rollout_hosts_total", none)] == 3
    assert s[("syncer_writeback_pending", none)] == 1
    assert s[("syncer_suspended", none)] == 0
    assert s[("syncer_git_errors_total", ())] == 1
    assert s[("syncer_ssh_errors_total", ())] == 2
    assert s[("syncer_leader", ())] == 1
    assert ("process_cpu_seconds_total", ()) in s


def test_gauges_of_the_last_reconcile_are_replaced() -> None:
    f = (m := Metrics()).fleet("")
    f.set_revision("a" * 40)
    f.set_revision("b" * 40)
    f.set_hosts({"draining": 1, "up-to-date": 1})
    f.set_hosts({"up-to-date": 2})
    s = samples(m)
    assert ("syncer_last_applied_revision_info", (("fleet", ""), ("revision", "a" * 40))) not in s
    assert s[("syncer_last_applied_revision_info", (("fleet", ""), ("revision", "b" * 40)))] == 1
    assert ("syncer_hosts", (("fleet", ""), ("phase", "draining"))) not in s


def test_each_fleet_has_its_own_series_until_it_is_forgotten() -> None:
    """With ``--fleet-object '*'`` two fleets reconcile side by side: one's hosts and
    revision never overwrite the other's, and a deleted fleet's series go away."""
    m = Metrics()
    east, west = m.fleet("east"), m.fleet("west")
    east.set_hosts({"up-to-date": 3})
    west.set_hosts({"draining": 1, "up-to-date": 1})
    east.set_revision("a" * 40)
    west.set_revision("b" * 40)
    east.set_hosts({"up-to-date": 2, "failed": 1})  # replaces east's only
    s = samples(m)
    assert s[("syncer_hosts", (("fleet", "east"), ("phase", "up-to-date")))] == 2
    assert s[("syncer_hosts", (("fleet", "west"), ("phase", "draining")))] == 1
    assert s[("syncer_last_applied_revision_info", (("fleet", "east"), ("revision", "a" * 40)))]
    west.count("success")
    west.forget()
    s = samples(m)
    assert not [k for k in s if ("fleet", "west") in k[1]]
    assert s[("syncer_hosts", (("fleet", "east"), ("phase", "failed")))] == 1
