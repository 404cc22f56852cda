"""Configuration of ``syncer run``: flags, environment, an optional YAML file, defaults.

One :class:`ControllerConfig` dataclass holds everything the controller reads at start.
It is filled by click, with one option per field (:func:`run_options`); each option also
reads an environment variable ``SYNCER_<NAME>`` (``SYNCER_REPO``, ``SYNCER_INTERVAL``, ...)
and the file given by ``--config`` (or ``SYNCER_CONFIG``) supplies click's
``default_map``. Precedence is therefore click's own: flags > environment > file >
built-in defaults, and ``syncer run --help`` shows every variable.

The file is YAML, one mapping whose keys are the long option names (``git-ssh-key-file``;
``git_ssh_key_file`` is accepted too). Durations are written like Go's (``90s``, ``1m``,
``1h30m``, ``250ms``) or as plain seconds.

Mistakes are reported as :class:`~syncer.problems.Problem` lines (exit 1): a wrong key in
the file names ``file:line``; an impossible combination (a renew deadline longer than the
lease) names the option, or the file line when the value came from the file. Click's own
type errors (``--interval abc``) remain usage errors (exit 2). Credentials are never in
this object, only the paths of the files that hold them (see ``credentials.py``).
"""

from __future__ import annotations

import dataclasses
import socket
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click
from click.core import ParameterSource

from syncer.durations import format_duration, parse_flag
from syncer.fleet.admission import DEFAULT_DENIED_NAMESPACES, PassThroughPolicy
from syncer.names import INVENTORY_CONFIGMAP
from syncer.nodes.downloads import parse_networks
from syncer.pipeline import settings
from syncer.pipeline.settings import ENV_PREFIX, SourceSettings, WriteBackOptions
from syncer.problems import Problem, UserError

F = TypeVar("F", bound=Callable[..., Any])

# --- durations -------------------------------------------------------------------------


if TYPE_CHECKING:  # click >= 8.2 types ParamType as a generic; older releases do not
    _ParamType = click.ParamType[float, Any]
else:
    _ParamType = click.ParamType


class Duration(_ParamType):
    name = "duration"

    def convert(
        self, value: Any, param: click.Parameter | None, ctx: click.Context | None
    ) -> float:
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
        try:
            return parse_flag(str(value))
        except ValueError as err:
            self.fail(str(err), param, ctx)


DURATION = Duration()


# --- the configuration -----------------------------------------------------------------


@dataclass(frozen=True)
class ControllerConfig:
    """Everything ``syncer run`` needs; built from options, validated by :meth:`problems`."""

    # The Git source and the write-back: the sections ``syncer sync --once`` shares.
    source: SourceSettings = field(default_factory=SourceSettings)
    writeback: WriteBackOptions = field(default_factory=WriteBackOptions)
    workdir: Path = Path(tempfile.gettempdir()) / "syncer"
    # Credential files (mounted Secrets); read through CredentialFiles, never stored here.
    ssh_private_key_file: Path | None = None
    webhook_secret_file: Path | None = None
    # Internal networks payload URLs may resolve to (an internal mirror); comma-separated.
    payload_allow_networks: str = ""
    # What the fleet may pass through (syncer.fleet.admission); empty kinds: the defaults.
    passthrough_kinds: str = ""
    passthrough_denied_namespaces: str = ",".join(DEFAULT_DENIED_NAMESPACES)
    # A WindowsFleet to follow ("*": every one in the namespace, each with its own loop):
    # its spec overrides the source flags, its status is written.
    fleet_object: str | None = None
    # The inventory ConfigMap (in --namespace); one per fleet when following all of them.
    inventory_name: str = INVENTORY_CONFIGMAP
    # Cluster access.
    kubeconfig: Path | None = None
    context: str | None = None
    namespace: str = "syncer-system"
    # The loop.
    interval: float = 60.0
    jitter: float = 0.1
    control_poll_interval: float = 5.0
    shutdown_grace: float = 270.0
    stuck_timeout: float = 1800.0
    # HTTP servers: webhooks (exposed to the forge), probes and metrics (not exposed).
    listen: str = "0.0.0.0:8080"
    probe_listen: str = "0.0.0.0:8081"
    webhook_max_body: int = 1024 * 1024
    # Leader election (client-go's defaults).
    leader_elect: bool = True
    lease_name: str = "syncer-leader"
    lease_namespace: str | None = None
    lease_duration: float = 15.0
    renew_deadline: float = 10.0
    retry_period: float = 2.0
    identity: str | None = None
    # Logs.
    log_format: str = "text"
    log_level: str = "info"
    # Where the values came from, for messages: option name -> "file:line" or "--flag".
    origins: dict[str, str] = field(default_factory=dict, compare=False, repr=False)

    @property
    def listen_address(self) -> tuple[str, int]:
        return parse_listen(self.listen)

    @property
    def passthrough(self) -> PassThroughPolicy:
        return PassThroughPolicy.parse(self.passthrough_kinds,
                                       self.passthrough_denied_namespaces)

    @property
    def probe_address(self) -> tuple[str, int]:
        return parse_listen(self.probe_listen)

    @property
    def effective_lease_namespace(self) -> str:
        return self.lease_namespace or self.namespace

    def problems(self) -> list[Problem]:
        """Everything wrong with this configuration, one problem per mistake."""
        found: list[Problem] = []

        def bad(field: str, message: str) -> None:
            where = self.origins.get(field, "--" + field.replace("_", "-"))
            file, _, line = where.rpartition(":")
            if file and line.isdigit():
                found.append(Problem(file, int(line), message))
            else:
                found.append(Problem(where, 0, message))

        source, writeback = self.source, self.writeback
        if not source.repo and not self.fleet_object:
            bad("repo", "the Git repository URL is required (--repo or SYNCER_REPO, or "
                        "spec.url of the WindowsFleet --fleet-object names)")
        if not source.ref:
            bad("ref", "must not be empty")
        if self.interval <= 0:
            bad("interval", "must be positive")
        if not 0 <= self.jitter < 1:
            bad("jitter", "must be a fraction in [0, 1), e.g. 0.1 for ±10%")
        if self.control_poll_interval <= 0:
            bad("control_poll_interval", "must be positive")
        if self.webhook_max_body < 1024:
            bad("webhook_max_body", "must be at least 1024 bytes")
        for name in ("listen", "probe_listen"):
            try:
                parse_listen(getattr(self, name))
            except ValueError as err:
                bad(name, str(err))
        if self.listen == self.probe_listen and not self.listen.endswith(":0"):
            bad("probe_listen", "must differ from --listen: probes and metrics get a port "
                                "of their own")
        try:
            parse_networks(self.payload_allow_networks)
        except ValueError as err:
            bad("payload_allow_networks", str(err))
        if self.leader_elect:
            if self.retry_period <= 0:
                bad("retry_period", "must be positive")
            if self.renew_deadline <= self.retry_period:
                bad("renew_deadline", "must be longer than --retry-period")
            if self.lease_duration <= self.renew_deadline:
                bad("renew_deadline", "must be shorter than --lease-duration")
        files = {
            "git_ssh_key_file": source.git_ssh_key_file,
            "git_known_hosts_file": source.git_known_hosts_file,
            "git_token_file": source.git_token_file,
            "git_ca_file": source.git_ca_file,
            "allowed_signers": source.allowed_signers,
            "ssh_private_key_file": self.ssh_private_key_file,
            "forge_token_file": writeback.forge_token_file,
            "forge_ca_file": writeback.forge_ca_file,
            "webhook_secret_file": self.webhook_secret_file,
            "kubeconfig": self.kubeconfig,
        }
        for name, value in files.items():
            if value is not None and not Path(value).is_file():
                bad(name, f"no such file: {value}")
        if source.git_ssh_key_file and source.git_token_file:
            bad("git_token_file", "give either --git-ssh-key-file or --git-token-file, not both")
        if source.verify and not (source.allowed_signers or source.gpg_keyring):
            bad("verify", "--verify needs --allowed-signers or --gpg-keyring")
        if writeback.previews and not (writeback.forge_token_file or writeback.forge_token_env):
            bad("forge_token_file", f"--forge {writeback.forge} needs a token file")
        return found

    def check(self) -> ControllerConfig:
        """Raise :class:`UserError` with every problem, or return self."""
        problems = self.problems()
        if problems:
            raise UserError(problems)
        return self


def parse_listen(text: str) -> tuple[str, int]:
    """``host:port``, ``:port`` (all interfaces) or ``[::1]:port``."""
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError(f"not a listen address: {text!r} (expected host:port or :port)")
    host = host.strip("[]") or "0.0.0.0"
    return host, int(port)


def default_identity() -> str:
    """Pod name (``POD_NAME`` from the downward API, else the hostname) + random suffix, so
    a restarted container never mistakes its predecessor's Lease for its own."""
    import os
    import secrets

    base = os.environ.get("POD_NAME") or socket.gethostname()
    return f"{base}_{secrets.token_hex(4)}"


# --- click options -----------------------------------------------------------------------


@dataclass(frozen=True)
class _Opt:
    field: str
    help: str
    type: Any = None
    flag: str | None = None  # a "--x/--no-x" boolean switch
    default: Any = None

    @property
    def name(self) -> str:
        return self.field.replace("_", "-")

    @property
    def envvar(self) -> str:
        return ENV_PREFIX + self.field.upper()


_D = ControllerConfig.__dataclass_fields__
_PATH = click.Path(dir_okay=False, path_type=Path)


def _default(field: str) -> Any:
    value = _D[field].default
    return None if value is dataclasses.MISSING else value


OPTIONS: list[_Opt] = [
    _Opt("workdir", "Working directory for clones (an emptyDir in the cluster).",
         click.Path(file_okay=False, path_type=Path)),
    _Opt("ssh_private_key_file",
         "SSH key for Windows hosts; default: the cloud-private-key Secret.", _PATH),
    _Opt("webhook_secret_file",
         "Shared secret of the forge webhooks; webhooks are refused without it.", _PATH),
    _Opt("payload_allow_networks",
         "Networks payload URLs may resolve to although internal (loopback, link-local, "
         "the Service network), e.g. an internal mirror; comma-separated CIDRs.", str),
    _Opt("passthrough_kinds",
         "Kinds the fleet may pass through (Kind or Kind.group, comma-separated); "
         "default: what Windows workloads need.", str),
    _Opt("passthrough_denied_namespaces",
         "Namespaces (shell patterns, comma-separated) the fleet may not write.", str),
    _Opt("fleet_object",
         "Follow this WindowsFleet (in --namespace), or '*' for every one, each with its "
         "own loop: its spec overrides --repo, --ref, --path, --interval; suspend and "
         "reconcile-now are read from it; its status and Events are written.", str),
    _Opt("kubeconfig", "kubeconfig file; default: in-cluster, else $KUBECONFIG.", _PATH),
    _Opt("context", "kubeconfig context.", str),
    _Opt("namespace", "Namespace of the controller (Lease, syncer-control, Events).", str),
    _Opt("interval", "Poll interval.", DURATION),
    _Opt("jitter", "Random fraction added to or taken from each interval.",
         click.FloatRange(0, 1, max_open=True)),
    _Opt("control_poll_interval",
         "How often the leader reads syncer-control (suspend, reconcile now).", DURATION),
    _Opt("shutdown_grace",
         "On SIGTERM, how long the current host step may take to finish or park.",
         DURATION),
    _Opt("stuck_timeout",
         "A reconcile without progress for this long makes /readyz fail.", DURATION),
    _Opt("listen", "Address of the webhook server (exposed to the forge).", str),
    _Opt("probe_listen", "Address of /healthz, /readyz and /metrics (not exposed).", str),
    _Opt("webhook_max_body", "Largest webhook body accepted, in bytes.",
         click.IntRange(min=0)),
    _Opt("leader_elect", "Elect one leader among replicas with a Lease.", flag="leader-elect"),
    _Opt("lease_name", "Name of the leader election Lease.", str),
    _Opt("lease_namespace", "Namespace of the Lease; default: --namespace.", str),
    _Opt("lease_duration", "How long followers wait before taking an unrenewed Lease.",
         DURATION),
    _Opt("renew_deadline", "How long the leader retries renewing before it steps down.",
         DURATION),
    _Opt("retry_period", "Time between election attempts.", DURATION),
    _Opt("identity", "Leader election identity; default: pod name + random suffix.", str),
    _Opt("log_format", "Log format.", click.Choice(["text", "json"])),
    _Opt("log_level", "Log level.",
         click.Choice(["debug", "info", "warning", "error"], case_sensitive=False)),
]
FIELDS = {o.field for o in OPTIONS}
KNOWN = FIELDS | {s.field for s in settings.SETTINGS}


def run_options(func: F) -> F:
    """Decorate a click command with every ``syncer run`` option: the shared source and
    write-back settings (:mod:`syncer.pipeline.settings`), the controller's own, and
    ``--config``."""
    func = settings.bind()(func)
    for opt in reversed(OPTIONS):
        kwargs: dict[str, Any] = {
            "help": opt.help,
            "envvar": opt.envvar,
            "show_envvar": True,
        }
        if opt.flag:
            decls = [f"--{opt.flag}/--no-{opt.flag}"]
            kwargs["default"] = _default(opt.field)
            kwargs["show_default"] = True
        else:
            decls = ["--" + opt.name]
            kwargs["type"] = opt.type
            default = _default(opt.field)
            if opt.type is DURATION and default is not None:
                default = format_duration(default)
            kwargs["default"] = default
            kwargs["show_default"] = default is not None
        func = click.option(*decls, opt.field, **kwargs)(func)
    return settings.config_option(KNOWN)(func)


def config_from_context(ctx: click.Context, values: dict[str, Any]) -> ControllerConfig:
    """Build the config from the command's parameter values, remembering where each value
    came from so problems point at the flag or the config file line."""
    file_origins: dict[str, str] = ctx.meta.get("syncer.config.origins", {})
    origins: dict[str, str] = {}
    for name in KNOWN:
        given = ctx.get_parameter_source(name)
        if given is ParameterSource.DEFAULT_MAP and name in file_origins:
            origins[name] = file_origins[name]
        elif given is ParameterSource.ENVIRONMENT:
            origins[name] = ENV_PREFIX + name.upper()
    kwargs = {k: v for k, v in values.items() if k in FIELDS and v is not None}
    if isinstance(kwargs.get("log_level"), str):
        kwargs["log_level"] = kwargs["log_level"].lower()
    source, writeback = settings.sections(values)
    return ControllerConfig(source=source, writeback=writeback, **kwargs, origins=origins)
