"""``syncer validate`` and ``syncer render`` as a user runs them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner
from fleet_builders import byoh, fleet, host, line_of, machine_set, write

from syncer.cli.main import cli
from syncer.fleet import check_fleet

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"


def run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, list(args), prog_name="syncer")
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exc_info
    return result.exit_code, result.stdout, result.stderr


def test_validate_prints_a_summary() -> None:
    code, out, err = run("validate", str(EXAMPLES / "byoh"))
    assert (code, err) == (0, "")
    assert out == (
        "fleet lab (none): 1 Fleet, 0 WindowsMachineSets, 3 BYOH hosts, 1 RuntimeClass, "
        "1 other object — valid\n"
    )
    code, out, _ = run("validate", str(EXAMPLES / "aws"))
    assert out == (
        "fleet prod (aws): 1 Fleet, 2 WindowsMachineSets, 2 BYOH hosts, 2 RuntimeClasses, "
        "2 other objects — valid\n"
    )


def test_validate_defaults_to_the_current_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    files = {"fleet.yaml": fleet(), "hosts/h.yaml": byoh(host("10.0.0.1"), host("10.0.0.300"))}
    write(tmp_path, files)
    monkeypatch.chdir(tmp_path)
    code, out, err = run("validate")
    assert code == 1 and out == ""
    line = line_of(files["hosts/h.yaml"], "10.0.0.300")
    assert err == (
        f"hosts/h.yaml:{line}: spec.hosts[1].address: '10.0.0.300' is not a valid IPv4 address\n"
    )


def test_validate_names_files_from_the_working_directory(tmp_path: Path) -> None:
    files = {
        "fleet.yaml": fleet(extra="  rollout: {paused: true}\n"),
        "a/h.yaml": byoh(host("10.0.0.1")),
        "b/h.yaml": byoh(host("10.0.0.1"), name="other"),
    }
    write(tmp_path / "repo", files)
    code, out, err = run("validate", str(tmp_path / "repo"))
    assert code == 1 and out == ""
    lines = err.splitlines()
    repo = tmp_path / "repo"
    paused = line_of(files["fleet.yaml"], "paused")
    assert lines[0] == (
        f"{repo}/fleet.yaml:{paused}: warning: spec.rollout.paused: "
        "rollout is paused: no Windows host will be changed"
    )
    assert (
        lines[1] == f"{repo}/b/h.yaml:7: duplicate BYOH address 10.0.0.1: also at {repo}/a/h.yaml:7"
    )
    assert len(lines) == 2


def test_validate_prints_every_error_once_per_line(tmp_path: Path) -> None:
    write(
        tmp_path,
        {
            "fleet.yaml": fleet(extra="  rollout: {maxUnavailable: 0}\n"),
            "h.yaml": byoh(host("fd00::1"), host("10.0.0.1", "a b")),
            "m.yaml": machine_set(windows_server='"2025"'),
            "broken.yaml": "a: [\n",
        },
    )
    code, out, err = run("validate", str(tmp_path))
    assert code == 1 and out == ""
    lines = err.splitlines()
    assert len(lines) == 5
    _, expected = check_fleet(tmp_path, display_prefix=str(tmp_path))
    assert lines == [str(p) for p in expected]
    for text in lines:
        location, _, message = text.partition(": ")
        file, _, number = location.rpartition(":")
        assert Path(file).is_file() and int(number) >= 1 and message


def test_validate_warnings_pass_unless_strict(tmp_path: Path) -> None:
    text = fleet(extra="  rollout: {paused: true}\n")
    write(tmp_path, {"fleet.yaml": text, "h.yaml": byoh(host("10.0.0.1"))})
    code, out, err = run("validate", str(tmp_path))
    assert code == 0
    assert err.startswith(f"{tmp_path}/fleet.yaml:{line_of(text, 'paused')}: warning: ")
    assert out.endswith("— valid\n")
    code, out, err = run("validate", "--strict", str(tmp_path))
    assert code == 1 and out == ""
    assert "1 warning(s) and --strict: not valid" in err


def test_missing_path_is_one_line(tmp_path: Path) -> None:
    code, out, err = run("validate", str(tmp_path / "nope"))
    assert (code, out, err) == (1, "", f"{tmp_path / 'nope'}: no such file or directory\n")
    code, out, err = run("render", str(tmp_path / "nope"))
    assert (code, out) == (1, "")


def test_render_yaml_and_json() -> None:
    code, out, err = run("render", str(EXAMPLES / "byoh"))
    assert code == 0 and err == ""
    assert out.startswith("---\napiVersion: v1\n")
    code, out_json, _ = run("render", "-o", "json", str(EXAMPLES / "byoh"))
    assert code == 0
    document = json.loads(out_json)
    assert (document["apiVersion"], document["kind"]) == ("v1", "List")
    assert [i["kind"] for i in document["items"]] == [
        "ConfigMap",
        "ConfigMap",
        "Namespace",
        "RuntimeClass",
    ]
    code, out_long, _ = run("render", "--output", "json", str(EXAMPLES / "byoh"))
    assert out_long == out_json


def test_render_nothing_when_invalid(tmp_path: Path) -> None:
    write(tmp_path, {"fleet.yaml": fleet(), "h.yaml": byoh(host("10.0.0.1", ""))})
    code, out, err = run("render", str(tmp_path))
    assert code == 1 and out == ""
    assert "must not be empty" in err


def test_render_warnings_go_to_stderr(tmp_path: Path) -> None:
    write(
        tmp_path,
        {
            "fleet.yaml": fleet(extra="  rollout: {paused: true}\n"),
            "h.yaml": byoh(host("10.0.0.1")),
        },
    )
    code, out, err = run("render", "-o", "json", str(tmp_path))
    assert code == 0
    json.loads(out)
    assert "warning: spec.rollout.paused" in err


@pytest.mark.parametrize(
    "args",
    [
        ["render", "-o", "xml", "."],
        ["render", "--bogus"],
        ["validate", "a", "b"],
        ["validate", "--strict=maybe"],
    ],
)
def test_usage_errors_exit_2(args: list[str]) -> None:
    code, out, err = run(*args)
    assert code == 2 and out == ""
    assert "Error:" in err and "Traceback" not in err


@pytest.mark.parametrize("command", ["validate", "render"])
def test_help(command: str) -> None:
    code, out, _ = run(command, "--help")
    assert code == 0
    assert f"Usage: syncer {command} [OPTIONS] [PATH]" in out
    code, short, _ = run(command, "-h")
    assert (code, short) == (0, out)


def test_top_level_help_lists_the_commands() -> None:
    code, out, _ = run("--help")
    assert code == 0 and "validate" in out and "render" in out


WEIRD_DOCUMENTS = [
    "apiVersion: 1\nkind: [a]\n",
    "apiVersion: syncer.io/v1alpha1\nkind: Fleet\nmetadata: x\nspec: 5\n",
    "apiVersion: syncer.io/v1alpha1\nkind: Fleet\nmetadata: {name: [a]}\nspec:\n  components: [a]\n"
    "  rollout: [1]\n  nodes: 3\n  platform: {a: b}\n  version: null\n",
    "apiVersion: syncer.io/v1alpha1\nkind: BYOHHosts\nmetadata: {name: b}\nspec: {hosts: abc}\n",
    "apiVersion: syncer.io/v1alpha1\nkind: BYOHHosts\nmetadata: {name: c}\nspec:\n  hosts:\n"
    "    - {address: [1], username: {a: b}, labels: [x], hostKey: 5}\n    - null\n    - 7\n",
    "apiVersion: syncer.io/v1alpha1\nkind: WindowsMachineSet\nmetadata: {name: w}\n"
    "spec: {windowsServer: [2022], replicas: x, providerSpec: 'a', labels: x, zone: 5}\n",
    "apiVersion: syncer.io/v1alpha1\nkind: WindowsRuntimeClass\nmetadata: {name: r}\nspec: []\n",
    "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: windows-instances\n  namespace: n\n"
    "data: [a]\n",
    "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: windows-instances\n  namespace: n\n"
    "data: {1: 2, ? [a] : b}\n",
    "apiVersion: machine.openshift.io/v1beta1\nkind: MachineSet\nmetadata: {name: m}\n"
    "spec: {template: {metadata: {labels: {machine.openshift.io/os-id: Windows}}, spec: 5}}\n",
    "base: &base {apiVersion: v1, kind: ConfigMap}\n",
    "<<: {apiVersion: v1, kind: ConfigMap}\n"
    "metadata: {name: merged, namespace: x, labels: {a: 1}}\n",
    "apiVersion: v1\nkind: Secret\nmetadata: {name: s, namespace: x}\n"
    "data: {a: !!binary aGVsbG8=}\n",
    "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: t, namespace: x}\n"
    "data: {when: 2024-01-01, at: 2024-01-01T10:00:00Z, n: .inf,"
    " big: 123456789012345678901234567890}\n",
    "!custom {apiVersion: v1}\n",
    "just a string\n",
    "12\n",
]


def test_odd_input_never_raises(tmp_path: Path) -> None:
    files = {f"odd/{n:02d}.yaml": text for n, text in enumerate(WEIRD_DOCUMENTS)}
    write(tmp_path, {"fleet.yaml": fleet(), **files})
    model, problems = check_fleet(tmp_path)
    assert model is None
    assert problems
    code, out, err = run("validate", str(tmp_path))
    assert code == 1 and out == "" and "Traceback" not in err


def test_real_process_never_prints_a_traceback(tmp_path: Path) -> None:
    """The installed command, run as a user would: errors are lines, not tracebacks."""
    write(tmp_path / "bad", {"fleet.yaml": fleet(version="1.4"), "h.yaml": byoh(host("fd00::1"))})
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
    cases = [  # each run costs an interpreter start: keep the list short
        (["validate", str(tmp_path / "bad")], 1, "is an IPv6 address"),
        (["render", "-o", "toml", str(tmp_path / "bad")], 2, "Invalid value for '-o'"),
    ]
    for args, expected_code, fragment in cases:
        proc = subprocess.run(
            [sys.executable, "-m", "syncer", *args],
            capture_output=True,
            text=True,
            env=env,
            cwd=ROOT,
            timeout=60,
        )
        assert proc.returncode == expected_code, (args, proc.stderr)
        assert "Traceback" not in proc.stderr
        assert fragment in proc.stderr
    proc = subprocess.run(
        [sys.executable, "-m", "syncer", "render", "examples/vsphere"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
    )
    assert proc.returncode == 0
    assert proc.stdout == (Path(__file__).parent / "golden" / "vsphere.yaml").read_text()


def test_validate_starts_without_the_cluster_and_ssh_stacks() -> None:
    """`syncer validate` runs in pre-commit hooks and CI on every push: it loads only the
    fleet code, not the Kubernetes client or paramiko (which cost most of a second)."""
    probe = (
        "import sys\n"
        "from click.testing import CliRunner\n"
        "from syncer.cli.main import cli\n"
        "result = CliRunner().invoke(cli, ['validate', 'examples/byoh'])\n"
        "assert result.exit_code == 0, result.output\n"
        "print(sorted(m for m in ('kubernetes', 'paramiko', 'git') if m in sys.modules))\n"
    )
    proc = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                          cwd=ROOT, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"
