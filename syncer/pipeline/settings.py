"""The settings ``syncer run`` and ``syncer sync --once`` share: one table, bound to both.

Every option about the Git source (remote, credentials, signature verification) and the
write-back (status branch, notes, pull-request previews, forge) is declared once here, as
a :class:`Setting`, and reaches both commands the same three ways, with click's precedence
(flag > environment > config file > default):

- the flag ``--<name>`` (older spellings stay as hidden aliases, e.g. ``--ssh-key``);
- the environment variable ``SYNCER_<NAME>``;
- the key ``<name>`` in the YAML file given by ``--config`` (``SYNCER_CONFIG``).

The values arrive as two typed sections, :class:`SourceSettings` and
:class:`WriteBackOptions`, which :mod:`syncer.pipeline.run` turns into the Git source and
the write-back, the same way for both commands. Like kustomize-controller's option groups
(``BindFlags``), each section binds its own flags (:func:`bind`), so a new option cannot
exist on one command and not the other; ``tests/cli/test_option_parity.py`` checks that.

Credentials are referenced, never held: files (mounted Secrets) or the name of an
environment variable.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, fields
from enum import Enum
from pathlib import Path
from typing import Any, TypeVar

import click
from ruamel.yaml import YAML
from ruamel.yaml.error import YAMLError

from syncer.names import STATUS_BRANCH
from syncer.problems import Problem, UserError
from syncer.source import SourceConfig, VerifyConfig

ENV_PREFIX = "SYNCER_"
F = TypeVar("F", bound=Callable[..., Any])


class Kind(Enum):
    TEXT = "text"
    PATH = "path"  # a file
    SWITCH = "switch"  # --x/--no-x
    CHOICE = "choice"


@dataclass(frozen=True)
class Setting:
    """One option: its field, its help, and how it is spelled on each channel."""

    field: str
    help: str
    kind: Kind = Kind.TEXT
    choices: tuple[str, ...] = ()
    aliases: tuple[str, ...] = ()  # older flag spellings, accepted and not shown
    metavar: str | None = None

    @property
    def flag(self) -> str:
        return "--" + self.field.replace("_", "-")

    @property
    def envvar(self) -> str:
        return ENV_PREFIX + self.field.upper()

    @property
    def key(self) -> str:
        """The config-file key (``git_ssh_key_file`` is accepted too)."""
        return self.field.replace("_", "-")


@dataclass(frozen=True)
class SourceSettings:
    """The tracked Git source and how to trust it."""

    repo: str = ""
    ref: str = "main"
    path: str = ""
    git_ssh_key_file: Path | None = None
    git_known_hosts_file: Path | None = None
    git_token_file: Path | None = None
    git_token_env: str | None = None
    git_token_scheme: str = "basic"
    git_token_username: str = ""
    git_ca_file: Path | None = None
    verify: str | None = None
    allowed_signers: Path | None = None
    gpg_keyring: Path | None = None

    def source_config(self, workdir: Path, *, ssh_key_file: Path | None = None
                      ) -> SourceConfig:
        """The :class:`SourceConfig` of this source; ``ssh_key_file`` replaces the
        configured key file (``syncer run`` passes a private mode-0600 copy)."""
        verify = None
        if self.verify:
            verify = VerifyConfig(
                mode=self.verify,  # type: ignore[arg-type]  # VerifyConfig.check() names bad modes
                allowed_signers_file=self.allowed_signers,
                gpg_keyring=self.gpg_keyring,
            )
        return SourceConfig(
            url=self.repo,
            ref=self.ref,
            path="" if self.path in (".", "./") else self.path,
            workdir=workdir,
            ssh_key_file=ssh_key_file or self.git_ssh_key_file,
            known_hosts_file=self.git_known_hosts_file,
            token_file=self.git_token_file,
            token_env=self.git_token_env,
            token_scheme=self.git_token_scheme,  # type: ignore[arg-type]  # a click Choice
            token_username=self.git_token_username,
            ca_file=self.git_ca_file,
            verify=verify,
        )


@dataclass(frozen=True)
class WriteBackOptions:
    """What is written back after a reconcile: status commits and notes, previews."""

    status_write: bool = True
    status_branch: str | None = None  # None: the Fleet's spec.status.branch
    status_repo: str | None = None  # None: the source repository, same credentials
    forge: str = "none"
    forge_url: str | None = None
    forge_repo: str | None = None
    forge_token_file: Path | None = None
    forge_token_env: str | None = None
    forge_ca_file: Path | None = None
    previews_from_forks: bool = False

    @property
    def previews(self) -> bool:
        return self.forge != "none"


SOURCE = (
    Setting("repo", "Git repository URL of the fleet (ssh://, https://, file://).",
            metavar="URL"),
    Setting("ref", "Branch to follow."),
    Setting("path", "Directory of the fleet inside the repository.", metavar="DIR"),
    Setting("git_ssh_key_file", "Private key for ssh:// Git remotes.", Kind.PATH,
            aliases=("--ssh-key",)),
    Setting("git_known_hosts_file", "known_hosts for ssh:// Git remotes (required: no "
            "accept-any-key mode).", Kind.PATH, aliases=("--known-hosts",)),
    Setting("git_token_file", "Token for https:// Git remotes, from a file.", Kind.PATH,
            aliases=("--token-file",)),
    Setting("git_token_env", "Token for https:// Git remotes, from this environment "
            "variable.", aliases=("--token-env",), metavar="VAR"),
    Setting("git_token_scheme", "How the token is sent: basic (as the password of "
            "--git-token-username, what GitHub, GitLab and Gitea document) or bearer.",
            Kind.CHOICE, choices=("basic", "bearer")),
    Setting("git_token_username", "User name sent with the token under the basic scheme "
            "(default: oauth2 on a GitLab host, x-access-token elsewhere)."),
    Setting("git_ca_file", "CA bundle that signs the https:// Git server's certificate.",
            Kind.PATH, aliases=("--ca-file",)),
    Setting("verify", "Apply only signed commits: head (the tracked commit), tag, or "
            "tag-and-head.", Kind.CHOICE, choices=("head", "tag", "tag-and-head")),
    Setting("allowed_signers", "OpenSSH allowed-signers file trusted by --verify.",
            Kind.PATH),
    Setting("gpg_keyring", "GPG public keys (a file or a GnuPG home) trusted by --verify.",
            Kind.PATH),
)
WRITEBACK = (
    Setting("status_write", "Write status commits and git notes back to Git.", Kind.SWITCH,
            aliases=("--no-status",)),
    Setting("status_branch", "Branch that receives one status commit per change of state "
            f"(default: the Fleet's spec.status.branch, {STATUS_BRANCH}).",
            metavar="BRANCH"),
    Setting("status_repo", "Repository of the status branch and notes (default: --repo, "
            "with the same credentials).", metavar="URL"),
    Setting("forge", "Forge API for pull-request previews and commit statuses.",
            Kind.CHOICE, choices=("none", "github", "gitlab", "gitea")),
    Setting("forge_url", "Forge API base URL (default: the public service, or derived "
            "from --repo for a self-hosted forge).", metavar="URL"),
    Setting("forge_repo", "Repository on the forge (owner/name, GitLab project path; "
            "default: derived from --repo).", metavar="OWNER/NAME"),
    Setting("forge_token_file", "Forge API token, from a file.", Kind.PATH),
    Setting("forge_token_env", "Forge API token, from this environment variable.",
            metavar="VAR"),
    Setting("forge_ca_file", "CA bundle that signs the forge API's certificate.",
            Kind.PATH),
    Setting("previews_from_forks", "Preview pull requests from forks too (their authors "
            "read the preview).", Kind.SWITCH),
)
SETTINGS = SOURCE + WRITEBACK
_SOURCE_FIELDS = {f.name for f in fields(SourceSettings)}
_WRITEBACK_FIELDS = {f.name for f in fields(WriteBackOptions)}
assert {s.field for s in SOURCE} == _SOURCE_FIELDS
assert {s.field for s in WRITEBACK} == _WRITEBACK_FIELDS


def _default(setting: Setting) -> Any:
    cls = SourceSettings if setting.field in _SOURCE_FIELDS else WriteBackOptions
    return cls.__dataclass_fields__[setting.field].default


def option(setting: Setting, *, default: Any = None) -> Callable[[F], F]:
    """The click option of ``setting`` (``default`` overrides the section's)."""
    value = _default(setting) if default is None else default
    kwargs: dict[str, Any] = {"help": setting.help, "envvar": setting.envvar,
                              "show_envvar": True, "default": value,
                              "show_default": value not in (None, "")}
    if setting.kind is Kind.SWITCH:
        off = " ".join(setting.aliases)
        decls = [f"{setting.flag}/--no-{setting.flag[2:]}"] + ([f" /{off}"] if off else [])
        return click.option(*decls, setting.field, **kwargs)
    decls = [setting.flag, *setting.aliases]
    if setting.kind is Kind.PATH:
        kwargs["type"] = click.Path(dir_okay=setting.field == "gpg_keyring", path_type=Path)
    elif setting.kind is Kind.CHOICE:
        kwargs["type"] = click.Choice(setting.choices)
    if setting.metavar:
        kwargs["metavar"] = setting.metavar
    return click.option(*decls, setting.field, **kwargs)


def bind(*, defaults: Mapping[str, Any] | None = None) -> Callable[[F], F]:
    """Decorate a command with every shared setting (source, then write-back)."""

    def decorate(func: F) -> F:
        for setting in reversed(SETTINGS):
            func = option(setting, default=(defaults or {}).get(setting.field))(func)
        return func

    return decorate


def sections(values: Mapping[str, Any]) -> tuple[SourceSettings, WriteBackOptions]:
    """The two sections from a command's parameter values (others are ignored)."""
    source = {k: v for k, v in values.items() if k in _SOURCE_FIELDS and v is not None}
    writeback = {k: v for k, v in values.items() if k in _WRITEBACK_FIELDS and v is not None}
    return SourceSettings(**source), WriteBackOptions(**writeback)


# --- the config file (--config) ------------------------------------------------------


def config_option(known: Iterable[str]) -> Callable[[F], F]:
    """``--config FILE``: YAML ``option: value`` pairs as click's defaults, so flags and
    the environment still win. Keys are the long option names of ``known`` fields."""
    allowed = frozenset(known)

    def load(ctx: click.Context, _param: click.Parameter, value: Path | None) -> None:
        if value is None:
            return
        defaults, origins = read_config_file(value, allowed)
        ctx.default_map = {**(ctx.default_map or {}), **defaults}
        ctx.meta["syncer.config.origins"] = origins

    return click.option(
        "--config", "config_file",
        type=click.Path(dir_okay=False, exists=True, path_type=Path),
        envvar=ENV_PREFIX + "CONFIG", show_envvar=True, is_eager=True, expose_value=False,
        callback=load, help="YAML file with option values (keys: the long option names).",
    )


def read_config_file(path: Path, known: frozenset[str]) -> tuple[dict[str, Any], dict[str, str]]:
    """The option values in a YAML config file and the ``file:line`` of each."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as err:
        problem = Problem(str(path), 0, f"cannot read config file: {err.strerror}")
        raise UserError([problem]) from err
    try:
        data = YAML(typ="rt").load(text)
    except YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        line = mark.line + 1 if mark is not None else 0
        what = getattr(err, "problem", None) or str(err).splitlines()[0]
        raise UserError([Problem(str(path), line, f"invalid YAML: {what}")]) from err
    if data is None:
        return {}, {}
    if not isinstance(data, dict):
        raise UserError([Problem(str(path), 1, "a config file is a mapping of option: value")])
    values: dict[str, Any] = {}
    origins: dict[str, str] = {}
    problems: list[Problem] = []
    for key, value in data.items():
        line = data.lc.key(key)[0] + 1 if hasattr(data, "lc") else 0
        field = str(key).replace("-", "_")
        if field not in known:
            problems.append(Problem(str(path), line, f"unknown key {key!r}"))
            continue
        if isinstance(value, dict | list):
            problems.append(Problem(str(path), line, f"{key}: expected a single value"))
            continue
        values[field] = value
        origins[field] = f"{path}:{line}"
    if problems:
        raise UserError(problems)
    return values, origins
