"""How ``syncer run`` gets its reconcile: a factory that builds a :data:`Reconciler`.

The loop (``loop.py``) only knows ``Reconciler = Callable[[ReconcileRequest,
threading.Event], ReconcileOutcome]``. A *factory* builds one at start from a
:class:`ReconcilerContext` (configuration, API client, credential files, identity):

- :func:`builtin` (the default) wraps :func:`syncer.reconcile.reconcile_once` — the same
  one-shot reconcile as ``syncer sync --once`` — around one long-lived
  :class:`~syncer.source.GitSource` in the work directory, and maps its
  :class:`~syncer.reconcile.ReconcileResult` to a :class:`ReconcileOutcome` (metrics,
  Events). The node rollout (issue #8) is appended here when it lands: it receives the
  park token and ``request.progress`` for host phases, rollout counts and SSH errors.
- ``--reconciler module:function`` (hidden) names another factory; tests use it to run
  ``syncer run`` against scripted reconciles.

Credentials: the Git source is rebuilt when the Git key or token file changes (git reads
the key file at every run, but the token is put into git's environment when the source
is built), and ``ssh`` gets a private mode-0600 copy of the key (Secret volumes are
group-readable when an ``fsGroup`` is set, and ssh refuses such keys).
"""

from __future__ import annotations

import importlib
import threading
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from syncer.controller import credentials as cred
from syncer.controller import events as ev
from syncer.controller.config import ControllerConfig
from syncer.controller.credentials import CredentialFiles
from syncer.controller.loop import (
    FAILED,
    SUCCESS,
    ReconcileOutcome,
    Reconciler,
    ReconcileRequest,
)
from syncer.problems import UserError


@dataclass(frozen=True)
class ReconcilerContext:
    config: ControllerConfig
    api_client: Any  # kubernetes.client.ApiClient
    credentials: CredentialFiles
    identity: str


ReconcilerFactory = Callable[[ReconcilerContext], Reconciler]


def load_factory(spec: str | None) -> ReconcilerFactory:
    """The factory named ``module:function``, or :func:`builtin`."""
    if not spec:
        return builtin
    module_name, _, attr = spec.partition(":")
    try:
        module = importlib.import_module(module_name)
        factory = getattr(module, attr or "make_reconciler")
    except (ImportError, AttributeError) as err:
        raise UserError(f"--reconciler {spec}: {err}") from None
    if not callable(factory):
        raise UserError(f"--reconciler {spec}: not callable")
    return factory  # type: ignore[no-any-return]


def builtin(ctx: ReconcilerContext) -> Reconciler:
    """The real reconcile: Git source -> validate -> render -> apply -> prune."""
    from syncer.cluster.client import KubeClient
    from syncer.reconcile import ReconcileOptions, reconcile_once
    from syncer.source import GitSource, SourceConfig, SourceError

    config = ctx.config
    files = ctx.credentials
    client = KubeClient(ctx.api_client)
    options = ReconcileOptions(inventory_namespace=config.namespace)
    lock = threading.Lock()
    state: dict[str, Any] = {"source": None, "generations": None}

    def source() -> Any:
        generations = (files.generation(cred.GIT_SSH_KEY), files.generation(cred.GIT_TOKEN),
                       files.generation(cred.GIT_KNOWN_HOSTS))
        if state["source"] is None or generations != state["generations"]:
            source_config = SourceConfig(
                url=config.repo,
                ref=config.ref,
                path="" if config.path in (".", "./") else config.path,
                workdir=config.workdir / "source",
                ssh_key_file=files.private_copy(cred.GIT_SSH_KEY),
                known_hosts_file=config.git_known_hosts_file,
                token_file=config.git_token_file,
            )
            try:
                state["source"] = GitSource(source_config)
            except SourceError as err:
                raise UserError(err.message) from None
            state["generations"] = generations
        return state["source"]

    def reconcile(request: ReconcileRequest, park: threading.Event) -> ReconcileOutcome:
        with lock:
            result = reconcile_once(source(), client, options)
        return outcome_of(result, request, config.ref)

    source()  # configuration mistakes (no known_hosts for ssh://, ...) fail at start
    return reconcile


def outcome_of(result: Any, request: ReconcileRequest, ref: str) -> ReconcileOutcome:
    """Map a :class:`syncer.reconcile.ReconcileResult` to the loop's outcome, reporting
    the Events and error counters it implies through ``request.progress``."""
    progress = request.progress
    objects: dict[str, int] | None = None
    if result.applied is not None:
        objects = dict(Counter(str(r.outcome) for r in result.applied.results))
    if result.ok and result.stage == "done":
        return ReconcileOutcome(SUCCESS, revision=result.revision or None, objects=objects,
                                message=result.summary(), ref=ref)
    message = "; ".join(result.errors) or result.summary()
    short = message[:1000]
    reported = False
    if result.stage == "source":
        progress.git_error()
    elif result.stage == "validate":
        progress.event(ev.VALIDATION_FAILED, f"revision {result.revision}: {short}", ev.WARNING)
        reported = True
    elif result.stage == "guard":
        progress.event(ev.PRUNE_REFUSED, f"revision {result.revision}: {short}", ev.WARNING)
        reported = True
    return ReconcileOutcome(FAILED, message=message, objects=objects, ref=ref,
                            reported=reported)
