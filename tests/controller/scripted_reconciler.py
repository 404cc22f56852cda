"""Scripted reconciles for `syncer run --reconciler scripted_reconciler:<factory>` tests.

``rollout`` simulates the node stage's contract without SSH: hosts are upgraded one at a
time (maxUnavailable 1); each host step takes ``STEP_SECONDS``; the state of the rollout
lives in the cluster (a ConfigMap), written with resourceVersion preconditions, so a new
leader resumes a host that a killed leader left in progress before it starts another. The
step log (who, host, start, end) lets the test check that steps never overlapped.

``keyprint`` records the fingerprint of the SSH private key credential it reads on each
reconcile, so the test can see a rotated key used without a restart.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
import time
from typing import Any

from syncer.cluster.client import MERGE_PATCH, ApiError
from syncer.controller.credentials import SSH_PRIVATE_KEY
from syncer.controller.loop import PARKED, ReconcileOutcome, ReconcileRequest
from syncer.controller.wiring import ReconcilerContext

STEP_SECONDS = float(os.environ.get("SCRIPTED_STEP_SECONDS", "1.0"))
HOSTS = [f"127.0.1.{i}" for i in range(1, int(os.environ.get("SCRIPTED_HOSTS", "4")) + 1)]
STATE = "scripted-rollout"


def _path(namespace: str) -> str:
    return f"/api/v1/namespaces/{namespace}/configmaps/{STATE}"


def rollout(ctx: ReconcilerContext) -> Any:
    kube = ctx.client
    namespace = ctx.config.namespace

    def load() -> dict[str, Any]:
        try:
            cm = kube.request("GET", _path(namespace))
        except ApiError as err:
            if not err.not_found:
                raise
            cm = kube.request("POST", f"/api/v1/namespaces/{namespace}/configmaps", body={
                "apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": STATE},
                "data": {"state": json.dumps({"done": [], "in_progress": None, "log": []})}})
        cm["state"] = json.loads(cm["data"]["state"])
        return cm

    def save(cm: dict[str, Any]) -> None:
        body = {k: v for k, v in cm.items() if k != "state"}
        body["data"] = {"state": json.dumps(cm["state"])}
        kube.request("PUT", _path(namespace), body=body)  # 409 if someone else wrote meanwhile

    def reconcile(request: ReconcileRequest, park: threading.Event) -> ReconcileOutcome:
        progress = request.progress
        while True:
            cm = load()
            state = cm["state"]
            done = state["done"]
            progress.rollout(len(done), len(HOSTS))
            progress.hosts({"up-to-date": len(done), "pending": len(HOSTS) - len(done)
                            - (1 if state["in_progress"] else 0),
                            **({"upgrading": 1} if state["in_progress"] else {})})
            host = state["in_progress"] or next((h for h in HOSTS if h not in done), None)
            if host is None:
                return ReconcileOutcome(revision="f" * 40, rollout=(len(HOSTS), len(HOSTS)),
                                        hosts={"up-to-date": len(HOSTS)})
            if park.is_set() and not state["in_progress"]:
                return ReconcileOutcome(PARKED, message=f"parked before {host}")
            # take (or resume) the host: at most one in progress (maxUnavailable 1)
            state["in_progress"] = host
            state["log"].append([ctx.identity, host, "start", time.time()])
            save(cm)
            time.sleep(STEP_SECONDS)  # the host step itself is never interrupted
            cm = load()
            state = cm["state"]
            state["done"].append(host)
            state["in_progress"] = None
            state["log"].append([ctx.identity, host, "end", time.time()])
            save(cm)

    return reconcile


def keyprint(ctx: ReconcilerContext) -> Any:
    kube = ctx.client
    namespace = ctx.config.namespace

    def reconcile(request: ReconcileRequest, park: threading.Event) -> ReconcileOutcome:
        key = ctx.credentials.get_bytes(SSH_PRIVATE_KEY) or b""
        fingerprint = hashlib.sha256(key).hexdigest()[:16]
        body = {"apiVersion": "v1", "kind": "ConfigMap",
                "metadata": {"name": "scripted-keyprint"},
                "data": {"fingerprint": fingerprint,
                         "reasons": ",".join(request.reasons)}}
        try:
            kube.request("POST", f"/api/v1/namespaces/{namespace}/configmaps", body=body)
        except ApiError as err:
            if not err.conflict:
                raise
            kube.request("PATCH", f"/api/v1/namespaces/{namespace}/configmaps/scripted-keyprint",
                         body={"data": body["data"]}, content_type=MERGE_PATCH)
        return ReconcileOutcome(revision=fingerprint.ljust(40, "0"))

    return reconcile
