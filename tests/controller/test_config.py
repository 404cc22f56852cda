"""Configuration of `syncer run`: flags > environment > config file > defaults."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from syncer.cli.main import cli
from syncer.controller import app as controller_app
from syncer.controller.config import ControllerConfig
from syncer.durations import format_duration
from syncer.durations import parse_flag as parse_duration


@pytest.fixture
def captured(monkeypatch: pytest.MonkeyPatch) -> list[ControllerConfig]:
    """Run `syncer run` up to the point where the controller would start."""
    seen: list[ControllerConfig] = []

    def fake_run(config: ControllerConfig, stop: Any = None) -> int:
        seen.append(config)
        return 0

    monkeypatch.setattr(controller_app, "run_controller", fake_run)
    for var in ("SYNCER_REPO", "SYNCER_INTERVAL", "SYNCER_REF", "SYNCER_CONFIG"):
        monkeypatch.delenv(var, raising=False)
    return seen


def run(args: list[str], env: dict[str, str] | None = None) -> Any:
    return CliRunner().invoke(cli, ["run", *args], env=env, catch_exceptions=False)


def test_defaults(captured: list[ControllerConfig]) -> None:
    result = run(["--repo", "file:///srv/fleet.git"])
    assert result.exit_code == 0, result.output
    config = captured[0]
    assert config.interval == 60 and config.jitter == 0.1
    assert (config.lease_duration, config.renew_deadline, config.retry_period) == (15, 10, 2)
    assert config.leader_elect and config.source.ref == "main" and config.listen == "0.0.0.0:8080"


def test_precedence_flag_over_env_over_file(
    captured: list[ControllerConfig], tmp_path: Path
) -> None:
    cfg = tmp_path / "syncer.yaml"
    cfg.write_text("repo: file:///from-file.git\nref: file-branch\ninterval: 5m\n"
                   "lease-name: from-file\nlog_format: json\n")
    env = {"SYNCER_REF": "env-branch", "SYNCER_INTERVAL": "2m"}
    result = run(["--config", str(cfg), "--interval", "30s"], env=env)
    assert result.exit_code == 0, result.output
    config = captured[0]
    assert config.source.repo == "file:///from-file.git"  # only in the file
    assert config.source.ref == "env-branch"  # env beats file
    assert config.interval == 30  # flag beats env and file
    assert config.lease_name == "from-file"
    assert config.log_format == "json"  # snake_case keys work too
    assert config.lease_duration == 15  # default


def test_config_file_from_environment(captured: list[ControllerConfig], tmp_path: Path) -> None:
    cfg = tmp_path / "syncer.yaml"
    cfg.write_text("repo: file:///x.git\nleader-elect: false\n")
    result = run([], env={"SYNCER_CONFIG": str(cfg)})
    assert result.exit_code == 0, result.output
    assert captured[0].leader_elect is False


def test_unknown_key_and_bad_yaml_are_one_line_each(
    captured: list[ControllerConfig], tmp_path: Path
) -> None:
    cfg = tmp_path / "syncer.yaml"
    cfg.write_text("repo: file:///x.git\nintervall: 5m\nlease: {a: 1}\n")
    result = run(["--config", str(cfg)])
    assert result.exit_code == 1
    assert f"{cfg}:2: unknown key 'intervall'" in result.output
    assert f"{cfg}:3: unknown key 'lease'" in result.output
    assert "Traceback" not in result.output
    cfg.write_text("repo: [unclosed\n")
    result = run(["--config", str(cfg)])
    assert result.exit_code == 1
    assert result.output.startswith(f"{cfg}:") and "invalid YAML" in result.output


def test_validation_points_at_the_file_line(
    captured: list[ControllerConfig], tmp_path: Path
) -> None:
    cfg = tmp_path / "syncer.yaml"
    cfg.write_text("repo: file:///x.git\nlease-duration: 15s\nrenew-deadline: 20s\n")
    result = run(["--config", str(cfg)])
    assert result.exit_code == 1
    assert result.output.strip() == f"{cfg}:3: must be shorter than --lease-duration"
    assert not captured


def test_every_problem_reported_at_once(captured: list[ControllerConfig]) -> None:
    result = run(["--retry-period", "12s", "--listen", "nowhere",
                  "--webhook-secret-file", "/no/such/file"])
    assert result.exit_code == 1
    lines = result.output.strip().splitlines()
    assert ("--repo: the Git repository URL is required (--repo or SYNCER_REPO, or spec.url "
            "of the WindowsFleet --fleet-object names)") in lines
    assert "--renew-deadline: must be longer than --retry-period" in lines
    assert any(line.startswith("--listen: not a listen address") for line in lines)
    assert "--webhook-secret-file: no such file: /no/such/file" in lines


def test_environment_problems_name_the_variable(captured: list[ControllerConfig]) -> None:
    result = run([], env={"SYNCER_REPO": "file:///x.git", "SYNCER_INTERVAL": "0s"})
    assert result.exit_code == 1
    assert result.output.strip() == "SYNCER_INTERVAL: must be positive"


def test_type_errors_are_usage_errors(captured: list[ControllerConfig]) -> None:
    result = CliRunner().invoke(cli, ["run", "--repo", "x", "--interval", "soon"])
    assert result.exit_code == 2
    assert "not a duration" in result.output


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("90", 90), ("1m", 60), ("1h30m", 5400), ("250ms", 0.25), ("1m30s", 90), ("2.5s", 2.5)],
)
def test_durations(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds
    assert parse_duration(format_duration(seconds)) == seconds


@pytest.mark.parametrize("text", ["", "1x", "m", "1m 30s", "-1s"])
def test_bad_durations(text: str) -> None:
    with pytest.raises(ValueError):
        parse_duration(text)
