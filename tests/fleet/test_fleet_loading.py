"""Finding and parsing files, and the public API around a loaded fleet."""

from __future__ import annotations

import gc
import os
import tracemalloc
from pathlib import Path

import pytest
from fleet_builders import byoh, errors_of, fleet, host, line_of, machine_set, runtime_class, write

from syncer.fleet import FleetModel, check_fleet, load_fleet, render
from syncer.fleet.loading import ParseCache, find_yaml_files, load_files
from syncer.fleet.yamlnodes import item_line, key_line, node_line, value_line
from syncer.problems import UserError

HOSTS = byoh(host("10.0.0.1"))


def test_finds_yaml_recursively_and_skips_hidden_and_other_files(tmp_path: Path) -> None:
    write(
        tmp_path,
        {
            "fleet.yaml": fleet(),
            "hosts/rack1/a.yml": HOSTS,
            "rc.yaml": runtime_class(),
            ".git/config.yaml": "not: [valid",
            ".github/workflows/ci.yml": "on: push\n",
            "hosts/.hidden.yaml": "broken: [",
            "README.md": "# docs",
            "notes.txt": "a: [",
            "hosts/data.json": "{}",
            "scripts/gen.yaml.bak": "a: [",
        },
    )
    assert find_yaml_files(tmp_path) == ["fleet.yaml", "hosts/rack1/a.yml", "rc.yaml"]
    model, problems = check_fleet(tmp_path)
    assert problems == []
    assert model is not None and model.files == ["fleet.yaml", "hosts/rack1/a.yml", "rc.yaml"]


def test_empty_documents_and_files_are_ignored(tmp_path: Path) -> None:
    write(
        tmp_path,
        {
            "fleet.yaml": "---\n# just a comment\n---\n" + fleet() + "---\n---\n",
            "empty.yaml": "",
            "comments.yaml": "# nothing here yet\n",
            "h.yaml": HOSTS,
        },
    )
    model, problems = check_fleet(tmp_path)
    assert problems == [] and model is not None


def test_syntax_errors_are_reported_per_file_with_lines(tmp_path: Path) -> None:
    files = {
        "fleet.yaml": fleet(),
        "a.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: a\n  labels: [x\n",
        "b.yaml": HOSTS + "---\nkey: 'unterminated\n",
        "c.yaml": "\tapiVersion: v1\n",
    }
    errors = errors_of(tmp_path, files)
    assert [(p.file, p.message.startswith("YAML syntax error")) for p in errors] == [
        ("a.yaml", True),
        ("b.yaml", True),
        ("c.yaml", True),
    ]
    assert errors[1].line > line_of(files["b.yaml"], "---")


def test_documents_before_a_syntax_error_are_still_checked(tmp_path: Path) -> None:
    files = {"fleet.yaml": fleet(), "h.yaml": byoh(host("10.0.0.300")) + "---\na: [\n"}
    messages = [p.message for p in errors_of(tmp_path, files)]
    assert any("not a valid IPv4 address" in m for m in messages)
    assert any("YAML syntax error" in m for m in messages)


def test_no_fleet_error_is_suppressed_when_a_file_did_not_parse(tmp_path: Path) -> None:
    errors = errors_of(tmp_path, {"fleet.yaml": fleet() + "  broken: [\n"})
    assert len(errors) == 1 and "YAML syntax error" in errors[0].message


def test_not_utf8(tmp_path: Path) -> None:
    write(tmp_path, {"fleet.yaml": fleet()})
    (tmp_path / "latin1.yaml").write_bytes(b"apiVersion: v1\nkind: ConfigMap\n# caf\xe9\n")
    errors = errors_of(tmp_path, {})
    assert [(p.file, "not valid UTF-8" in p.message) for p in errors] == [("latin1.yaml", True)]


def test_symlink_outside_the_repository_is_refused(tmp_path: Path) -> None:
    outside = tmp_path / "outside.yaml"
    outside.write_text("apiVersion: v1\nkind: Secret\nmetadata: {name: stolen}\n")
    repo = write(tmp_path / "repo", {"fleet.yaml": fleet(), "h.yaml": HOSTS})
    os.symlink(outside, repo / "link.yaml")
    os.symlink(repo / "h.yaml", repo / "inside.yaml")  # inside the repository: fine, read twice
    errors = errors_of(repo, {})
    messages = {(p.file, p.message) for p in errors}
    assert ("link.yaml", "symbolic link points outside the fleet repository") in messages
    assert any(p.file == "inside.yaml" and "duplicate" in p.message for p in errors)


def test_a_single_file_is_a_fleet(tmp_path: Path) -> None:
    write(tmp_path, {"all.yaml": fleet() + "---\n" + HOSTS, "other.yaml": "broken: ["})
    model = load_fleet(tmp_path / "all.yaml")
    assert [h.address for h in model.byoh_hosts] == ["10.0.0.1"]
    assert model.source_of(
        "ConfigMap", "openshift-windows-machine-config-operator", "windows-instances"
    ) == (
        "all.yaml",
        line_of(fleet() + "---\n" + HOSTS, "kind: BYOHHosts") - 1,
    )


def test_missing_path(tmp_path: Path) -> None:
    model, problems = check_fleet(tmp_path / "nope")
    assert model is None
    assert [p.message for p in problems] == ["no such file or directory"]
    with pytest.raises(UserError):
        load_fleet(tmp_path / "nope")


# --- API --------------------------------------------------------------------------------


def test_load_fleet_raises_every_error_and_keeps_warnings_out(tmp_path: Path) -> None:
    write(
        tmp_path,
        {
            "fleet.yaml": fleet(extra="  rollout: {paused: true}\n"),
            "h.yaml": byoh(host("10.0.0.300"), host("fd00::1")),
        },
    )
    with pytest.raises(UserError) as err:
        load_fleet(tmp_path)
    assert len(err.value.problems) == 2
    assert all(p.is_error for p in err.value.problems)
    model, problems = check_fleet(tmp_path)
    assert model is None
    assert len(problems) == 3  # the two errors and the paused warning


def test_model_contents_and_source_of(tmp_path: Path) -> None:
    files = {
        "fleet.yaml": fleet(
            extra="  rollout: {maxUnavailable: 2, drainTimeout: 1h30m}\n"
            "  prune: {maxDeletions: '10%'}\n  nodes: {sshPort: 2222}\n"
        ),
        "hosts/lab.yaml": byoh(
            host("10.0.0.1"), host("win-1.example.com", "core", "labels: {a: b}")
        ),
        "machinesets.yaml": machine_set("win")
        + "---\n"
        + machine_set("win2", windows_server='"2019"'),
        "rc.yaml": runtime_class("windows-2022"),
        "apps/ns.yaml": "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: apps\n",
    }
    model = load_fleet(write(tmp_path, files))
    assert isinstance(model, FleetModel)
    f = model.fleet
    assert (f.name, f.platform, f.infrastructure_id, f.version) == (
        "prod",
        "aws",
        "prod-x7k2p",
        "1.4.0",
    )
    assert f.namespace == "openshift-windows-machine-config-operator"
    assert sorted(f.components) == ["cni", "containerd", "kube-log-runner", "kubelet"]
    assert f.components["kubelet"].version == "v1.30.4"
    assert (f.rollout.max_unavailable, f.rollout.drain_timeout_seconds) == (2, 5400.0)
    assert f.rollout.on_failure == "halt" and not f.rollout.paused
    assert f.nodes.ssh_port == 2222 and f.nodes.host_key_policy == "tofu"
    assert f.prune.deletion_limit(50) == 5 and f.prune.enabled
    assert f.status.branch == "syncer/status" and f.status.notes and f.status.pull_requests
    assert [(h.address, h.username, h.labels, h.file, h.line) for h in model.byoh_hosts] == [
        ("10.0.0.1", "Administrator", {}, "hosts/lab.yaml", 7),
        ("win-1.example.com", "core", {"a": "b"}, "hosts/lab.yaml", 8),
    ]
    assert [(m.name, m.windows_server, m.fields["region"]) for m in model.machine_sets] == [
        ("win", "2022", "us-east-1"),
        ("win2", "2019", "us-east-1"),
    ]
    assert model.source_of("MachineSet", "openshift-machine-api", "win2") == (
        "machinesets.yaml",
        line_of(files["machinesets.yaml"], "apiVersion", 2),
    )
    assert model.source_of("RuntimeClass", None, "windows-2022") == ("rc.yaml", 1)
    assert model.source_of("RuntimeClass", "", "windows-2022") == ("rc.yaml", 1)
    assert model.source_of("Namespace", "", "apps") == ("apps/ns.yaml", 1)
    assert model.source_of("ConfigMap", f.namespace, "syncer-fleet") == ("fleet.yaml", 1)
    assert model.source_of("ConfigMap", f.namespace, "windows-instances") == ("hosts/lab.yaml", 1)
    with pytest.raises(KeyError):
        model.source_of("ConfigMap", f.namespace, "nope")
    # Every rendered object has a source.
    for obj in render(model):
        meta = obj["metadata"]
        file, line = model.source_of(obj["kind"], meta.get("namespace"), meta["name"])
        assert file in files and line >= 1


def test_warnings_are_kept_in_the_model(tmp_path: Path) -> None:
    write(tmp_path, {"fleet.yaml": fleet(extra="  rollout: {paused: true}\n"), "h.yaml": HOSTS})
    model = load_fleet(tmp_path)
    assert [p.message for p in model.warnings] == [
        "spec.rollout.paused: rollout is paused: no Windows host will be changed"
    ]


def test_a_parse_cache_reparses_only_changed_files_and_gives_the_same_fleet(
        tmp_path: Path) -> None:
    """The controller loads the fleet at every revision with one cache: the result is
    what a fresh load gives, errors included, and unchanged files are not parsed again."""
    files = {"fleet.yaml": fleet(), "hosts/a.yaml": HOSTS, "rc.yaml": runtime_class()}
    write(tmp_path, files)
    cache = ParseCache()
    first = load_fleet(tmp_path, cache=cache)
    assert cache.hits == 0
    assert render(load_fleet(tmp_path, cache=cache)) == render(first)
    assert cache.hits == 3

    write(tmp_path, {"hosts/a.yaml": byoh(host("10.0.0.1"), host("10.0.0.2"))})
    changed = load_fleet(tmp_path, cache=cache)
    assert cache.hits == 3 + 2  # fleet.yaml and rc.yaml
    assert render(changed) == render(load_fleet(tmp_path))
    assert [h.address for h in changed.byoh_hosts] == ["10.0.0.1", "10.0.0.2"]

    # A syntax error comes back from the cache as from a fresh parse; a deleted file is gone.
    write(tmp_path, {"rc.yaml": "kind: [broken\n"})
    broken = check_fleet(tmp_path, cache=cache)[1]
    assert broken == check_fleet(tmp_path, cache=cache)[1] == check_fleet(tmp_path)[1]
    assert broken and broken[0].file == "rc.yaml"
    (tmp_path / "rc.yaml").unlink()
    model, problems = check_fleet(tmp_path, cache=cache)
    assert problems == [] and model is not None and "rc.yaml" not in model.files


def test_a_cached_file_is_kept_in_a_quarter_of_the_memory_ruamel_takes(tmp_path: Path) -> None:
    """The controller keeps every parsed file of the last revision: 4,000 objects as
    ruamel's round-trip containers were about 30 MiB of its resident memory."""
    objects = "".join(
        f"---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cm-{i}\n"
        f"  namespace: windows-apps\n  labels:\n    app: bench\n    tier: t{i % 7}\n"
        f"data:\n  key: value-{i}\n  other: \"a longer value {i}\"\n"
        for i in range(1000))
    write(tmp_path, {"fleet.yaml": fleet(), "workloads/cms.yaml": objects})
    cache = ParseCache()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        load_fleet(tmp_path, cache=cache)
        gc.collect()
        kept = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert kept < 2000 * 1000, f"{kept / 1000:.0f} bytes kept per object"


def test_lines_of_keys_values_and_items_survive_the_compact_form(tmp_path: Path) -> None:
    many = "".join(f"  k{i}: v{i}\n" for i in range(40))
    text = ("base: &base\n  x: 1\n"
            "merged:\n  <<: *base\n  y: 2\n"
            "list:\n- a\n-\n  b\n"
            f"many:\n{many}")
    write(tmp_path, {"doc.yaml": text})
    [doc] = load_files(tmp_path, ["doc.yaml"]).documents
    data = doc.data
    assert (doc.line, node_line(data["merged"])) == (1, 4)
    assert key_line(data["merged"], "y") == value_line(data["merged"], "y") == 5
    assert key_line(data["merged"], "x") == 4  # merged in: the mapping's own line
    assert [item_line(data["list"], i) for i in range(2)] == [7, 9]
    assert [key_line(data["many"], f"k{i}") for i in (0, 15, 16, 39)] == [11, 26, 27, 50]
    assert key_line(data["many"], "absent") == 11
    assert data["merged"] == {"y": 2, "x": 1} and data["base"] is not data["merged"]
