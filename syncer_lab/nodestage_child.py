"""One node-stage round in a process of its own, for tests that kill the controller.

``python -m syncer_lab.nodestage_child CONFIG.json`` runs
:func:`syncer.nodes.stage.run_node_stage` with the options of a
:class:`~syncer_lab.nodelab.NodeLab` (:meth:`NodeLab.child_config`), as ``syncer run``
would: SIGTERM asks the round to stop at its next safe point. Each step a host enters is
printed (``STEP <address> <step>``) before the step runs. At the one step the config names
(``hold``: address and step) the host waits for a line on stdin after printing it, so a test
can signal the process while that step is about to run, however slowly the test reads the
line: without the wait, a loaded machine lets the round run several steps past it before the
signal lands. The round's outcome is printed last (``RESULT <json>``). The simulated hosts
stay in the test's process; only the controller dies.
"""

from __future__ import annotations

import json
import signal
import sys
import threading
from pathlib import Path

from syncer.cluster.client import connect
from syncer.nodes.stage import NodeStageOptions, run_node_stage


def main(argv: list[str]) -> int:
    config = json.loads(Path(argv[0]).read_text())
    from syncer_lab.nodelab import DRAIN, PAYLOADS, SSH, TIMEOUTS, _no_ptr

    api = connect(config["kubeconfig"])
    shutdown = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: shutdown.set())
    options = NodeStageOptions(
        namespace=config["namespace"], machine_namespace=config["namespace"],
        cache_dir=Path(config["cache_dir"]), payloads=PAYLOADS, ssh=SSH, timeouts=TIMEOUTS,
        drain=DRAIN,
        node_selector=config["node_selector"], reverse=_no_ptr,
        stale_after=float(config["stale_after"]), identity=config["identity"])

    hold = tuple(config.get("hold") or ())

    def on_step(address: str, step: str) -> None:
        print(f"STEP {address} {step}", flush=True)
        if (address, step) == hold:
            sys.stdin.readline()  # until the test has sent its signal

    result = run_node_stage(api, options, shutdown=shutdown, on_step=on_step)
    print("RESULT " + json.dumps(result.to_json()), flush=True)
    api.close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
