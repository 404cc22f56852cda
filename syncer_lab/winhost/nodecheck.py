"""The real components judge what the simulated hosts run: a client of ``node-check``.

``node-check`` (``tools/kube/node-check``, built with the test control plane from
``k8s.io/kubernetes`` at the control plane's version) parses a kubelet, kube-proxy or
kube-log-runner command line with that program's own flag set, decodes its config file
with its own strict decoder and validates the result with its own validation. The
simulated programs (:mod:`syncer_lab.winhost.programs`) start only when it accepts, and
otherwise exit with its error text, as the real binaries would at start-up.

Verdicts are cached by (component, arguments, file contents): a lab starts the same
service definitions on many hosts, and a round that changes nothing checks nothing new.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

from syncer_lab.binaries import kube_binaries


@dataclass(frozen=True)
class Verdict:
    """What the component's own start-up code made of a command line."""

    ok: bool
    error: str = ""
    config: Mapping[str, Any] = field(default_factory=dict)  # effective, versioned
    flags: Mapping[str, str] = field(default_factory=dict)  # the flags given
    args: tuple[str, ...] = ()  # kube-log-runner: the command it runs
    warnings: tuple[str, ...] = ()  # logged by the component, e.g. lenient decoding
    gates: Mapping[str, bool] = field(default_factory=dict)  # kube-proxy: WinDSR, WinOverlay


class NodeCheck:
    """Runs ``node-check``; thread-safe, with a verdict cache."""

    def __init__(self, binary: Path | None = None) -> None:
        self.binary = binary or kube_binaries().node_check
        self._cache: dict[str, Verdict] = {}
        self._lock = threading.Lock()
        self.checked: list[tuple[str, tuple[str, ...]]] = []  # every distinct judgement

    def check(self, component: str, args: Sequence[str],
              files: Mapping[str, bytes] | None = None) -> Verdict:
        files = dict(files or {})
        key = hashlib.sha256(json.dumps(
            [component, list(args), sorted((k.lower(), v.hex()) for k, v in files.items())]
        ).encode()).hexdigest()
        with self._lock:
            known = self._cache.get(key)
        if known is not None:
            return known
        request = {"component": component, "args": list(args),
                   "files": {k: v.decode("utf-8", errors="replace") for k, v in files.items()}}
        done = subprocess.run([str(self.binary)], input=json.dumps(request), text=True,
                              capture_output=True, timeout=60, check=False)
        try:
            doc = json.loads(done.stdout.strip().splitlines()[-1])
        except (ValueError, IndexError):
            raise RuntimeError(f"node-check failed: {done.stderr.strip()[:500]}") from None
        verdict = Verdict(
            ok=bool(doc.get("ok")), error=str(doc.get("error", "")),
            config=doc.get("config") or {}, flags=doc.get("flags") or {},
            args=tuple(doc.get("args") or ()),
            warnings=tuple(doc.get("warnings") or ()),
            gates=doc.get("gates") or {},
        )
        with self._lock:
            self._cache[key] = verdict
            self.checked.append((component, tuple(args)))
        return verdict


@cache
def shared() -> NodeCheck:
    """One checker per process (the cache is shared by every lab)."""
    return NodeCheck()
