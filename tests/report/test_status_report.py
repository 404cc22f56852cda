"""StatusReport: status.yaml, STATUS.md, the commit summary, and the state key."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

from syncer.writeback.status.model import (
    HostStatus,
    ObjectStatus,
    Outcome,
    SourceStatus,
    StatusReport,
    load_yaml,
)
from syncer.writeback.status.notes import ApplyNote, merge_notes

SHA = "3f2a9c1" + "0" * 33
T0 = datetime(2026, 5, 4, 10, 0, 0, tzinfo=UTC)


def fleet_report(time: datetime = T0, updated: int = 5, failed: int = 1,
                 outcome: Outcome = Outcome.APPLIED, error: str = "") -> StatusReport:
    hosts = []
    for i in range(8):
        at = i < updated
        bad = not at and i >= 8 - failed
        hosts.append(HostStatus(
            address=f"10.0.0.{i + 1}", node=f"win-{i + 1}",
            current_version="1.4.0" if at else "1.3.0", desired_version="1.4.0",
            phase="Ready" if at else ("Failed" if bad else "Upgrading"),
            error="kubelet did not start" if bad else "", since=time - timedelta(minutes=i),
        ))
    objects = [ObjectStatus("ConfigMap", "openshift-windows-machine-config-operator",
                            f"cm-{i:02d}", "configured") for i in range(12)]
    return StatusReport(
        source=SourceStatus("https://git.example.com/fleet.git", "main", SHA, SHA,
                            "Bump to 1.4.0", "Alice Admin <alice@example.com>"),
        time=time, outcome=outcome, error=error, objects=tuple(reversed(objects)),
        hosts=tuple(reversed(hosts)), controller="syncer-0",
    )


def test_summary_line_names_the_commit_and_the_rollout() -> None:
    assert fleet_report().summary_line() == (
        "Applied 3f2a9c1: 12 objects, hosts 5/8 at 1.4.0, 2 in progress, 1 failed"
    )
    assert fleet_report(updated=8, failed=0).summary_line() == (
        "Applied 3f2a9c1: 12 objects, hosts 8/8 at 1.4.0"
    )
    rejected = fleet_report(outcome=Outcome.REJECTED,
                            error="fleet/hosts.yaml:3: address is not an IP address")
    assert rejected.summary_line() == (
        "Rejected 3f2a9c1: fleet/hosts.yaml:3: address is not an IP address"
    )


def test_status_yaml_is_sorted_machine_readable_and_round_trips() -> None:
    report = fleet_report()
    text = report.to_yaml()
    data = load_yaml(text)
    assert data["apiVersion"] == "syncer.io/v1alpha1" and data["kind"] == "SyncStatus"
    assert data["source"]["revision"] == SHA and data["outcome"] == "Applied"
    assert data["time"] == "2026-05-04T10:00:00Z"
    assert [h["address"] for h in data["hosts"]] == [f"10.0.0.{i}" for i in range(1, 9)]
    assert [o["name"] for o in data["objects"]][:2] == ["cm-00", "cm-01"]
    assert data["hosts"][7] == {
        "address": "10.0.0.8", "node": "win-8", "currentVersion": "1.3.0",
        "desiredVersion": "1.4.0", "phase": "Failed", "error": "kubelet did not start",
        "since": "2026-05-04T09:53:00Z",
    }
    assert data["rollout"] == {"desiredVersion": "1.4.0", "total": 8, "updated": 5,
                               "inProgress": 2, "failed": 1, "paused": False}
    assert StatusReport.from_yaml(text) == report
    assert StatusReport.from_yaml(text).to_yaml() == text


def test_status_markdown_has_the_same_as_tables() -> None:
    md = fleet_report().to_markdown()
    assert md.startswith("# syncer status\n")
    assert "| Address | Node | Current | Desired | Phase | Since | Error |" in md
    assert "| 10.0.0.8 | win-8 | 1.3.0 | 1.4.0 | Failed | 2026-05-04T09:53:00Z | " \
           "kubelet did not start |" in md
    assert "| ConfigMap | openshift-windows-machine-config-operator | cm-00 | configured |  |" \
        in md
    assert "5 of 8 hosts at `1.4.0`; 2 in progress, 1 failed." in md
    assert "Alice Admin &lt;alice@example.com&gt;" in md  # no raw HTML in the table


def test_state_key_ignores_time_but_not_state() -> None:
    base = fleet_report()
    later = fleet_report(time=T0 + timedelta(minutes=5))
    assert later.to_yaml() != base.to_yaml()
    assert later.state_key() == base.state_key()
    assert fleet_report(updated=6).state_key() != base.state_key()
    assert fleet_report(error="new error", outcome=Outcome.FAILED).state_key() != base.state_key()


def test_note_from_report_and_merging_updates() -> None:
    note = ApplyNote.from_report(fleet_report(), controller="syncer-0").to_dict()
    assert note["commit"] == SHA and note["outcome"] == "Applied"
    assert note["appliedAt"] == "2026-05-04T10:00:00Z" and note["controller"] == "syncer-0"
    assert "allHostsReachedAt" not in note  # 5 of 8
    assert len(note["hosts"]) == 8 and note["hosts"][0]["version"] == "1.4.0"

    done = ApplyNote(SHA, all_hosts_reached_at=T0 + timedelta(minutes=4)).to_dict()
    merged = merge_notes(note, done)
    assert merged["allHostsReachedAt"] == "2026-05-04T10:04:00Z"
    assert merged["hosts"] == note["hosts"]  # a partial update erases nothing
    # A second instance re-applying later does not move the first-applied time.
    again = ApplyNote.from_report(fleet_report(time=T0 + timedelta(hours=1)), "syncer-1")
    merged2 = merge_notes(merged, again.to_dict())
    assert merged2["appliedAt"] == "2026-05-04T10:00:00Z"
    assert merged2["controller"] == "syncer-1"
    assert list(merged2)[:3] == ["commit", "outcome", "appliedAt"]


def test_status_yaml_reads_what_ruamel_wrote_and_round_trips_awkward_text() -> None:
    """status.yaml and the notes are emitted and read by libyaml now. What ruamel's safe
    dumper wrote before (the status branch's history) reads back the same, ``yes``/``no``
    and ``on``/``off`` as strings included; every awkward text round-trips; an ordinary
    report is the same bytes as before."""
    from io import StringIO

    from ruamel.yaml import YAML

    awkward = ["", "yes", "no", "on", "off", "y", "null", "1.10", "0755", "- dash", "a: b",
               "#hash", "'quote'", 'say "hi"', "tab\there", "line one\nline two\n", "  lead",
               "trail  ", "Grüße, ÉTAT, 日本", "\u00a0nbsp", "C:\\k\\kubelet.exe", "*", "&a",
               "!x", "x" * 300, "@at", "`tick`", "%p", "{a}", "[b]", "~", "true"]
    report = replace(fleet_report(), error=awkward[15], objects=tuple(
        ObjectStatus("ConfigMap", "ns", f"cm-{i}", "failed", text)
        for i, text in enumerate(awkward)))
    ruamel = YAML(typ="safe", pure=True)
    ruamel.default_flow_style = False
    ruamel.sort_base_mapping_type_on_output = False  # type: ignore[assignment]
    ruamel.width = 4096

    def old(data: object) -> str:
        out = StringIO()
        ruamel.dump(data, out)
        return out.getvalue()

    assert StatusReport.from_yaml(old(report.to_dict())) == report
    assert StatusReport.from_yaml(report.to_yaml()) == report
    assert ruamel.load(report.to_yaml()) == report.to_dict()
    assert fleet_report().to_yaml() == old(fleet_report().to_dict())


def test_reports_are_dumped_piecewise_as_the_same_text() -> None:
    """dump_yaml writes a mapping key by key and a list item by item (no node graph of the
    whole report): the text is what PyYAML dumps for the whole document at once."""
    from syncer.writeback.status.model import _dump, dump_yaml

    awkward = ["", "yes", "line one\nline two\n", "Grüße, 日本", "- dash", "a: b", "~"]
    report = replace(fleet_report(), error="multi\nline", objects=tuple(
        ObjectStatus("ConfigMap", "ns", f"cm-{i}", "failed", text)
        for i, text in enumerate(awkward)))
    note = ApplyNote.from_report(report).to_dict()
    nested = {"empty": [], "none": None, "scalars": ["a", 1, None, True, "1.10"],
              "lists": [[1, [2, 3]], {"k": [{"deep": ["x", {"y": "z"}]}]}], "tail": "end"}
    for data in (report.to_dict(), note, nested, [{"a": [1, 2]}, "b"], "plain"):
        assert dump_yaml(data) == _dump(data)
