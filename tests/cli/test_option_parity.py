"""`syncer run` and `syncer sync --once` take the same Git, verification, write-back and
forge options, each as a flag, a SYNCER_* environment variable and a --config key.

The options are collected from the two click commands themselves (not from the shared
table), so an option added to one command only fails here."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import click
import pytest

from syncer.cli.apply import sync_command
from syncer.cli.controller import run

# What counts as a Git source, verification, write-back or forge option.
SHARED = re.compile(r"^--(repo|ref|path|git-|verify|allowed-signers|gpg-|status-|forge)")
COMMANDS = {"run": run, "sync": sync_command}


def _options(command: click.Command) -> dict[str, click.Option]:
    """Long flag -> option, for the shared kinds of option."""
    found = {}
    for param in command.params:
        if isinstance(param, click.Option):
            for flag in param.opts:
                if SHARED.match(flag):
                    found[flag] = param
    return found


def _parse(command: click.Command, args: list[str], env: dict[str, str] | None = None
           ) -> dict[str, Any]:
    """The parameter values click gives the command (parsing only, nothing runs)."""
    with pytest.MonkeyPatch.context() as mp:
        for key, value in (env or {}).items():
            mp.setenv(key, value)
        ctx = command.make_context(command.name or "", list(args), resilient_parsing=False)
        return dict(ctx.params)


def _sample(option: click.Option, tmp_path: Path) -> str:
    if isinstance(option.type, click.Choice):
        return str(option.type.choices[-1])
    if isinstance(option.type, click.Path):
        target = tmp_path / (option.name or "x")
        target.write_text("x")
        return str(target)
    return f"value-of-{option.name}"


def test_both_commands_have_the_same_shared_options() -> None:
    run_flags, sync_flags = set(_options(run)), set(_options(sync_command))
    assert run_flags - sync_flags == set(), "only on `syncer run`"
    assert sync_flags - run_flags == set(), "only on `syncer sync --once`"
    assert len(run_flags) >= 20  # the Git, verification, write-back and forge options


@pytest.mark.parametrize("flag", sorted(_options(run)))
def test_each_shared_option_reaches_both_commands_by_flag_env_and_file(
    flag: str, tmp_path: Path
) -> None:
    for name, command in COMMANDS.items():
        option = _options(command)[flag]
        assert option.name is not None
        assert option.envvar == f"SYNCER_{option.name.upper()}", (name, flag)
        if option.is_flag:
            off = f"--no-{option.name.replace('_', '-')}"
            assert _parse(command, ["--once", off] if name == "sync" else [off])[
                option.name] is False
            continue
        value = _sample(option, tmp_path)
        base = ["--once"] if name == "sync" else []
        by_flag = _parse(command, [*base, flag, value])[option.name]
        by_env = _parse(command, base, {option.envvar: value})[option.name]
        config = tmp_path / f"{name}.yaml"
        config.write_text(f"{option.name.replace('_', '-')}: {value!r}\n")
        by_file = _parse(command, [*base, "--config", str(config)])[option.name]
        assert str(by_flag) == str(by_env) == str(by_file) == value, (name, flag)
