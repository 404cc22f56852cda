"""``syncer run``: put the controller together, run it, shut it down gracefully.

Threads: the HTTP server (waitress), the leader elector, the reconcile loop, watchdog's
observer for the credential files; the main thread only waits for a signal.

Shutdown on SIGTERM (or SIGINT), in this order:

1. ``/readyz`` turns 503, so the Service stops sending webhooks here;
2. the loop stops taking work and sets the park token of the running reconcile;
3. the main thread waits up to ``--shutdown-grace`` for the reconcile to finish or park
   (``terminationGracePeriodSeconds`` in the Deployment is longer, so the kubelet does not
   kill a host step half done);
4. the Lease is released — only if the reconcile has returned: releasing earlier would let
   the other replica start while this one still works on a host — so the other replica
   takes over at its next retry instead of after the lease duration;
5. the HTTP server and the watchers stop; exit 0 (1 when the reconcile did not return in
   the grace period: the Lease is then left to expire).
"""

from __future__ import annotations

import logging
import signal
import threading
from types import FrameType

from syncer.controller import credentials as cred
from syncer.controller import heap, logs, runtimeuser
from syncer.controller.config import ControllerConfig, default_identity
from syncer.controller.control import Control, ControlSource
from syncer.controller.credentials import CredentialFiles
from syncer.controller.events import EventRecorder
from syncer.controller.fleets import ALL, FleetLoops, fleet_loop
from syncer.controller.leader import AlwaysLeader, LeaderElector, LeaseSettings
from syncer.controller.loop import WEBHOOK, Loop, Observer, Reconciler, Trigger
from syncer.controller.metrics import Metrics
from syncer.controller.server import App, CachedCheck, HTTPServer
from syncer.controller.webhooks import HookEvent
from syncer.controller.wiring import ReconcilerContext, builtin
from syncer.durations import format_duration

log = logging.getLogger("syncer.controller")


def run_controller(config: ControllerConfig, stop: threading.Event | None = None) -> int:
    """Run until SIGTERM/SIGINT (or ``stop`` is set); return the exit code."""
    from syncer.cluster.client import ApiError, connect

    config.check()
    heap.limit_arenas()  # before any thread starts
    logs.setup(config.log_format, config.log_level)
    identity = config.identity or default_identity()
    stop = stop or threading.Event()

    client = connect(str(config.kubeconfig) if config.kubeconfig else None, config.context)
    config.workdir.mkdir(parents=True, exist_ok=True)
    passwd = runtimeuser.provide(config.workdir / ".passwd")
    if passwd is not None:
        log.info(passwd)
    files = CredentialFiles.from_config(config, runtime_dir=config.workdir / ".credentials")
    files.start()
    metrics = Metrics()
    context = ReconcilerContext(config, client, files, identity)

    def make_loop(reconcile: Reconciler, *, events: EventRecorder, control: ControlSource,
                  observer: Observer | None = None, fleet: str = "") -> Loop:
        return Loop(
            reconcile,
            metrics=metrics.fleet(fleet),
            events=events,
            control=control,
            observer=observer,
            interval=config.interval,
            jitter=config.jitter,
            control_poll_interval=config.control_poll_interval,
            stuck_timeout=config.stuck_timeout,
            identity=identity,
            ref=config.source.ref,
        )

    loop: Loop | FleetLoops
    if config.fleet_object == ALL:
        loop = FleetLoops(context, make_loop)
    elif config.fleet_object:
        loop = fleet_loop(context, config.fleet_object, make_loop)
    else:
        loop = make_loop(builtin(context), events=EventRecorder(client, config.namespace,
                                                                identity),
                         control=Control(client, config.namespace))

    def started_leading() -> None:
        loop.leadership_changed(True)

    def stopped_leading() -> None:
        loop.leadership_changed(False)

    elector: LeaderElector | AlwaysLeader
    if config.leader_elect:
        settings = LeaseSettings(
            name=config.lease_name,
            namespace=config.effective_lease_namespace,
            identity=identity,
            lease_duration=config.lease_duration,
            renew_deadline=config.renew_deadline,
            retry_period=config.retry_period,
        )
        elector = LeaderElector(client, settings, started_leading, stopped_leading)
    else:
        elector = AlwaysLeader(identity, started_leading, stopped_leading)

    shutting_down = threading.Event()
    election_thread: list[threading.Thread] = []

    def api_reachable() -> tuple[bool, str]:
        try:
            client.request("GET", "/version", timeout=(3.0, 3.0))
        except ApiError as err:
            return False, f"API server unreachable: {err}"
        return True, ""

    api_check = CachedCheck(api_reachable, ttl=10.0)

    def healthy() -> tuple[bool, str]:
        if not shutting_down.is_set() and loop.finished.is_set():
            return False, "reconcile loop ended"
        if election_thread and not election_thread[0].is_alive() and not stop.is_set():
            return False, "leader election stopped"
        return True, "leader" if elector.is_leader else "follower"

    def ready() -> tuple[bool, str]:
        if shutting_down.is_set():
            return False, "shutting down"
        ok, detail = api_check()
        if not ok:
            return False, detail
        if elector.is_leader and loop.stuck():
            limit = format_duration(config.stuck_timeout)
            return False, f"reconcile without progress for over {limit}"
        role = "leader" if elector.is_leader else "follower"
        return True, role + (", suspended" if loop.suspended else "")

    def on_webhook(event: HookEvent) -> str:
        detail = f"{event.provider} {event.kind}"
        if event.pull_request is not None:
            detail += f" #{event.pull_request}"
        return loop.trigger(Trigger(WEBHOOK, detail, event=event))

    def app(*, hooks: bool) -> App:
        return App(
            metrics=metrics,
            healthy=healthy,
            ready=ready,
            on_webhook=on_webhook,
            webhook_secret=lambda: files.get_bytes(cred.WEBHOOK_SECRET),
            branch=config.source.ref,
            max_body=config.webhook_max_body,
            hooks=hooks,
            probes=not hooks,
        )

    host, port = config.listen_address
    server = HTTPServer(app(hooks=True), host, port, config.webhook_max_body)
    probe_host, probe_port = config.probe_address
    probes = HTTPServer(app(hooks=False), probe_host, probe_port, 64 * 1024, threads=2,
                        connection_limit=16)
    server.start()
    probes.start()

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        log.info("signal received, shutting down", extra={"signal": signal.Signals(signum).name})
        stop.set()

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, on_signal)
        signal.signal(signal.SIGINT, on_signal)

    log.info(
        "syncer run started",
        extra={
            "identity": identity,
            "repo": config.source.repo,
            "ref": config.source.ref,
            "listen": f"{server.host}:{server.port}",
            "probes": f"{probes.host}:{probes.port}",
            "leader_election": config.leader_elect,
            "interval": format_duration(config.interval),
        },
    )
    loop.start()
    started = elector.start()
    if isinstance(started, threading.Thread):
        election_thread.append(started)

    clean = True
    try:
        while not stop.wait(0.5):
            if loop.finished.is_set():
                log.error("reconcile loop ended unexpectedly")
                clean = False
                break
    finally:
        shutting_down.set()
        loop.shutdown()
        finished = loop.join(config.shutdown_grace)
        if not finished:
            log.error(
                "the running reconcile did not finish or park within the shutdown grace "
                "period; leaving the Lease to expire",
                extra={"grace": format_duration(config.shutdown_grace)},
            )
        elector.stop(release=finished)
        server.stop()
        probes.stop()
        files.stop()
        client.close()
        log.info("syncer run stopped", extra={"clean": finished and clean})
    return 0 if finished and clean else 1
