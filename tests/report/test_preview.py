"""The preview comment and status text: pinned output, escaping, limits."""

from __future__ import annotations

from datetime import UTC, datetime

from syncer.problems import Problem, Severity
from syncer.writeback.forges import CommitState
from syncer.writeback.previews.comment import (
    Action,
    HostUpgrade,
    ObjectChange,
    Preview,
    render_comment,
    status_description,
    status_state,
)

WHEN = datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC)
HEAD = "c0ffee" + "0" * 34
BAD = "bad" + "1" * 37


def valid_preview() -> Preview:
    return Preview(
        head_sha=HEAD,
        evaluated_at=WHEN,
        objects=[
            ObjectChange(
                Action.UPDATE,
                "ConfigMap",
                "windows-instances",
                "openshift-windows-machine-config-operator",
                "v1",
                "@@ -1,2 +1,3 @@\n data:\n   10.0.0.5: username=Administrator\n"
                "+  10.0.0.6: username=Administrator",
            ),
            ObjectChange(
                Action.CREATE,
                "MachineSet",
                "win-b",
                "openshift-machine-api",
                "machine.openshift.io/v1beta1",
                "+kind: MachineSet\n+metadata:\n+  name: win-b",
            ),
            ObjectChange(Action.PRUNE, "RuntimeClass", "old-2019"),
            ObjectChange(Action.UNCHANGED, "RuntimeClass", "win-2022"),
        ],
        hosts=[
            HostUpgrade("10.0.0.6", "1.1.0"),
            HostUpgrade("10.0.0.5", "1.1.0", "1.0.0", "win-a"),
        ],
    )


VALID = """\
<!-- syncer:preview -->
## ✅ syncer preview: valid

### Objects

**1 to create, 1 to update, 1 to prune**, 1 unchanged

<details><summary>create <code>MachineSet openshift-machine-api/win-b</code> \
(machine.openshift.io/v1beta1)</summary>

```diff
+kind: MachineSet
+metadata:
+  name: win-b
```

</details>

<details><summary>update <code>ConfigMap openshift-windows-machine-config-operator/\
windows-instances</code> (v1)</summary>

```diff
@@ -1,2 +1,3 @@
 data:
   10.0.0.5: username=Administrator
+  10.0.0.6: username=Administrator
```

</details>

- prune <code>RuntimeClass old-2019</code>

### Hosts to upgrade (2)

- `10.0.0.5`/`win-a`: 1.0.0 → 1.1.0
- `10.0.0.6`: _not configured_ → 1.1.0

---
<sub>Evaluated `c0ffee0000000000000000000000000000000000` at 2024-05-01 12:00:00 UTC by \
syncer. This comment is updated when the pull request changes.</sub>
"""

INVALID = f"""\
<!-- syncer:preview -->
## ❌ syncer preview: invalid

This revision has 2 validation errors; syncer will not apply it until they are fixed \
(the cluster keeps the last valid revision).

### Validation errors

- [`fleet.yaml:12`](https://forge.example/acme/fleet/blob/{BAD}/fleet/fleet.yaml#L12): \
spec.version: required
- [`hosts.yaml:3`](https://forge.example/acme/fleet/blob/{BAD}/fleet/hosts.yaml#L3): \
address: \\`10.0.0.x\\` is not an IP address

### Warnings

- [`fleet.yaml:2`](https://forge.example/acme/fleet/blob/{BAD}/fleet/fleet.yaml#L2): \
unknown field 'foo'

---
<sub>Evaluated `{BAD}` at 2024-05-01 12:00:00 UTC by syncer. This comment is updated \
when the pull request changes.</sub>
"""


def invalid_preview() -> Preview:
    return Preview(
        head_sha=BAD,
        evaluated_at=WHEN,
        fleet_path="fleet",
        problems=[
            Problem("hosts.yaml", 3, "address: `10.0.0.x` is not an IP address"),
            Problem("fleet.yaml", 12, "spec.version: required"),
            Problem("fleet.yaml", 2, "unknown field 'foo'", Severity.WARNING),
        ],
    )


def link(path: str, line: int | None) -> str:
    return f"https://forge.example/acme/fleet/blob/{BAD}/{path}#L{line}"


def test_valid_preview_is_pinned() -> None:
    preview = valid_preview()
    assert render_comment(preview) == VALID
    assert status_state(preview) is CommitState.SUCCESS
    assert status_description(preview) == (
        "valid: 1 to create, 1 to update, 1 to prune, 2 hosts to upgrade"
    )


def test_output_does_not_depend_on_input_order() -> None:
    preview = valid_preview()
    shuffled = Preview(
        preview.head_sha,
        preview.evaluated_at,
        objects=list(reversed(preview.objects)),
        hosts=list(reversed(preview.hosts)),
    )
    assert render_comment(shuffled) == VALID


def test_invalid_preview_names_file_and_line_with_links() -> None:
    preview = invalid_preview()
    assert render_comment(preview, file_url=link) == INVALID
    assert status_state(preview) is CommitState.FAILURE
    assert (
        status_description(preview) == "invalid: 2 errors (fleet.yaml:12: spec.version: required)"
    )


def test_without_a_web_url_problems_are_plain() -> None:
    text = render_comment(invalid_preview())
    assert "- `fleet.yaml:12`: spec.version: required" in text


def test_descriptions_stay_within_140_characters() -> None:
    long = Preview(HEAD, WHEN, problems=[Problem("fleet.yaml", 12, "x" * 300)])
    text = status_description(long)
    assert len(text) == 140
    assert text.startswith("invalid: 1 error (fleet.yaml:12: xxx") and text.endswith("…)")
    failed = Preview(HEAD, WHEN, plan_error="cluster unreachable: " + "y" * 200)
    assert status_state(failed) is CommitState.ERROR
    assert len(status_description(failed)) == 140
    assert status_description(failed).startswith("error: the plan failed (cluster unreachable")


def test_plan_error_and_no_changes() -> None:
    failed = render_comment(Preview(HEAD, WHEN, plan_error="connection refused"))
    assert "## ⚠️ syncer preview: valid, but the plan could not be computed" in failed
    assert "The plan could not be computed: connection refused" in failed
    same = render_comment(
        Preview(HEAD, WHEN, objects=[ObjectChange(Action.UNCHANGED, "RuntimeClass", "win-2022")])
    )
    assert "No changes: the cluster already matches this revision." in same
    assert "**0 to create, 0 to update, 0 to prune**, 1 unchanged" in same


def test_user_text_cannot_break_the_markdown() -> None:
    preview = Preview(
        HEAD,
        datetime(2024, 5, 1, 14, 0, 0),  # naive: taken as UTC
        problems=[Problem("a|b.yaml", 1, "<!-- syncer:preview --> **bold** | pipe\nnext")],
        objects=[
            ObjectChange(Action.UPDATE, "ConfigMap", "x<y>", "ns", "", "```\ninner fence\n```")
        ],
    )
    text = render_comment(preview)
    assert text.count("<!-- syncer:preview -->") == 1
    assert "&lt;!-- syncer:preview --&gt; \\*\\*bold\\*\\* \\| pipe next" in text
    assert "<code>ConfigMap ns/x&lt;y&gt;</code>" in text
    assert "````diff\n```\ninner fence\n```\n````" in text
    assert "2024-05-01 14:00:00 UTC" in text


def test_marker_can_be_left_to_the_forge_client() -> None:
    assert not render_comment(valid_preview(), marker=None).startswith("<!--")
    assert render_comment(valid_preview(), marker="preview-prod").startswith(
        "<!-- syncer:preview-prod -->\n"
    )


def test_component_changes_are_a_table() -> None:
    from syncer.cluster.display import ComponentChange

    preview = Preview(head_sha=HEAD, evaluated_at=WHEN, components=[
        ComponentChange("cni", "v1.5.1", "v1.5.1", True),
        ComponentChange("kubelet", "v1.34.4", "v1.34.5", True),
        ComponentChange("csi-proxy", None, "v1.1.3", True),
    ])
    text = render_comment(preview)
    start = text.index("### Components (3)")
    assert text[start:].split("\n\n")[1].splitlines() == [
        "| component | version | payload |",
        "| --- | --- | --- |",
        "| `cni` | v1.5.1 | changed |",
        "| `kubelet` | v1.34.4 → v1.34.5 | changed |",
        "| `csi-proxy` | _new_ → v1.1.3 | changed |",
    ]


def test_a_removed_line_that_starts_with_dashes_stays_in_the_diff() -> None:
    from syncer.cluster.display import text_diff

    assert text_diff("a\n-- a SQL comment\nb\n", "a\nb\n") == [
        "@@ -1,3 +1,2 @@", " a", "--- a SQL comment", " b"]


def test_a_changed_script_reads_as_its_lines_and_the_live_text_stays_hidden() -> None:
    """A preview shows what the pull request writes: a text of several lines as its
    lines, not as one JSON string with escaped newlines; never the cluster's value, and
    never a Secret's text."""
    from syncer.cluster.diff import REDACTED, Change
    from syncer.cluster.display import patch_lines
    from syncer.cluster.objects import ObjectRef
    from syncer.cluster.plan import Action as PlanAction
    from syncer.cluster.plan import PlanEntry

    def entry(kind: str, *patch: dict[str, str]) -> PlanEntry:
        before = {"data": {"run.ps1": "Write-Host live-only\n"}}
        return PlanEntry(ObjectRef("", kind, "ns", "x"), PlanAction.UPDATE,
                         change=Change(before=before, after={}, patch=list(patch)))

    script = entry("ConfigMap",
                   {"op": "replace", "path": "/data/run.ps1", "value": "Write-Host a\n\nb\n"},
                   {"op": "add", "path": "/data/new.ps1", "value": "one\ntwo"})
    assert patch_lines(script, live_values=False) == [
        "~ /data/run.ps1: (live value) -> |",
        "+   Write-Host a",
        "+   ",
        "+   b",
        "+ /data/new.ps1: |",
        "+   one",
        "+   two",
    ]
    secret = entry("Secret", {"op": "add", "path": "/stringData/key", "value": "k1\nk2"},
                   {"op": "replace", "path": "/data/run.ps1", "value": "s1\ns2\n"})
    shown = patch_lines(secret, live_values=False)
    assert shown == [f"+ /stringData/key: {REDACTED}",
                     f"~ /data/run.ps1: (live value) -> {REDACTED}"]
