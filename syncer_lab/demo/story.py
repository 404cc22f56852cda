"""The story ``syncer demo`` tells, one numbered step at a time.

1. **Setting the stage** — :class:`~syncer_lab.demo.lab.DemoLab` starts the cluster, the
   hosts, the Git remote, the forge and ``syncer run``.
2. **Initial sync** — the controller applies ``main`` and configures every host; the
   ``syncer status`` table is shown until all hosts run the committed version with a
   Ready Node.
3. **A pull request** — Alice bumps the components on a branch and opens a pull request;
   the forge's ``pull_request`` webhook makes the controller post its preview comment and
   the ``syncer/preview`` commit status, both printed as the forge shows them.
4. **Merge** — ``main`` moves; the forge's ``push`` webhook makes the controller apply it
   at once (the poll interval would take longer).
5. **Rollout** — the status table refreshes until every host runs the new version, and the
   hosts' own service logs prove that no more than ``maxUnavailable`` were out at once.
6. **Write-back** — the status branch (``git log syncer/status --oneline``), the git note
   on the merge, ``syncer history`` and the controller's ``/metrics``.

Each wait has a deadline; a missed one raises :class:`~syncer_lab.demo.lab.DemoFailed` naming
the step, which the command reports with the controller's last log lines.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable
from typing import TypeVar

from syncer import names
from syncer.nodes.status import Phase
from syncer_lab import webhooks
from syncer_lab.demo import fleet
from syncer_lab.demo.lab import WEBHOOK_SECRET, DemoFailed, DemoLab
from syncer_lab.demo.observe import most_out_at_once, outages, snapshot
from syncer_lab.demo.ui import Narrator

T = TypeVar("T")
PR_NUMBER = 1
MAX_UNAVAILABLE = 1  # examples/byoh's spec.rollout.maxUnavailable
PR_REFS = {"github": "refs/pull/{n}/head", "gitea": "refs/pull/{n}/head",
           "gitlab": "refs/merge-requests/{n}/head"}


def wait(what: str, predicate: Callable[[], T], timeout: float, every: float = 0.3) -> T:
    """``predicate()``'s first truthy value; :class:`DemoFailed` after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise DemoFailed(f"{what}: not within {timeout:.0f}s")
        time.sleep(every)


class Story:
    def __init__(self, lab: DemoLab, ui: Narrator) -> None:
        self.lab = lab
        self.ui = ui
        self.release = lab.release
        self.bumped = fleet.bump(lab.release)
        self.initial_sha = ""
        self.merge_sha = ""
        self.merged_at = 0.0

    @property
    def hosts(self) -> int:
        return len(self.lab.hosts)

    def run(self) -> None:
        self.ui.heading("Setting the stage: a cluster, Windows hosts, Git, a forge, syncer run")
        self.lab.start()
        self.initial_sync()
        self.pull_request()
        self.merge()
        self.rollout()
        self.write_back()

    # --- 2 -------------------------------------------------------------------------------------
    def initial_sync(self) -> None:
        lab, ui = self.lab, self.ui
        assert lab.author is not None and lab.controller is not None
        ui.heading("Initial sync: syncer applies main, the Windows hosts join")
        self.initial_sha = lab.author.head()
        wait("the controller applies main",
             lambda: lab.applied_revision() == self.initial_sha, timeout=90)
        ui.ok(f"applied {self.initial_sha[:7]}: {self._objects()}")
        ui.say("syncer now brings each host to the committed components over SSH, "
               f"{MAX_UNAVAILABLE} at a time: transfer, services, bootstrap, CSRs approved, "
               "Node Ready")
        self._watch(self.release.version, "hosts joining",
                    timeout=60 + 45 * self.hosts)
        ui.ok(f"{self.hosts}/{self.hosts} Nodes Ready, every host at {self.release.version} "
              f"(kubelet {self.release.components['kubelet']})")

    def _objects(self) -> str:
        from syncer.fleet import load_fleet, render

        assert self.lab.author is not None
        objects = render(load_fleet(self.lab.author.path))
        return ", ".join(f"{o['kind']} {o['metadata']['name']}" for o in objects)

    # --- 3 -------------------------------------------------------------------------------------
    def pull_request(self) -> None:
        lab, ui = self.lab, self.ui
        author, forge, controller = lab.author, lab.forge, lab.controller
        assert author is not None and forge is not None and controller is not None
        old, new = self.release, self.bumped
        ui.heading(f"A pull request: bump the Windows node components to {new.version}")
        branch = f"bump-{new.version}"
        title = f"Bump Windows node components to {new.version}"
        changes = ", ".join(f"{n} {a} -> {b}" for n, (a, b) in old.changed(new).items())
        author.git("checkout", "-q", "-b", branch)
        head = author.commit(f"{title}\n\n{changes}", lab.fleet_files(new))
        ref = PR_REFS[forge.flavour].format(n=PR_NUMBER)
        author.git("push", "-q", "origin", f"HEAD:refs/heads/{branch}", f"HEAD:{ref}")
        forge.add_pull_request(PR_NUMBER, head, base="main", head_ref=branch, title=title)
        ui.say(f"Alice pushes {branch} ({head[:7]}: {changes}) and opens "
               f"pull request #{PR_NUMBER}")
        self._hook(webhooks.pull_request_event(
            forge.flavour, WEBHOOK_SECRET, repository=forge.repository, number=PR_NUMBER,
            base="main", head_ref=branch, head_sha=head, title=title), "pull_request")

        def final_status() -> str | None:
            statuses = forge.statuses_of(head, "syncer/preview")
            done = [s for s in statuses if s.state not in ("pending", "running")]
            return f"{done[-1].state}: {done[-1].description}" if done else None

        comment = wait("the preview comment on the pull request",
                       lambda: forge.comments_on(PR_NUMBER), timeout=60)[-1]
        status = wait("the syncer/preview commit status", final_status, timeout=30)
        ui.markdown(comment.body, f"{forge.flavour}: comment by {comment.author} on "
                                  f"#{PR_NUMBER} ({title})")
        ui.ok(f"commit status syncer/preview on {head[:7]}: {status}")

    def _hook(self, delivery: webhooks.Delivery, event: str) -> None:
        controller = self.lab.controller
        assert controller is not None
        answer = webhooks.deliver(controller.url, delivery)
        if answer.status_code != 202:
            raise DemoFailed(f"the {event} webhook was answered {answer.status_code}: "
                             f"{answer.text}")
        try:
            reason = str(answer.json().get("reason", ""))
        except ValueError:
            reason = answer.text.strip()
        self.ui.ok(f"{delivery.provider} webhook {event} -> {answer.status_code}: {reason}")

    # --- 4 -------------------------------------------------------------------------------------
    def merge(self) -> None:
        lab, ui = self.lab, self.ui
        author, forge, controller = lab.author, lab.forge, lab.controller
        assert author is not None and forge is not None and controller is not None
        ui.heading(f"Merge: main moves to {self.bumped.version}, a push webhook wakes syncer")
        branch = f"bump-{self.bumped.version}"
        before = self.initial_sha
        author.git("checkout", "-q", "main")
        author.git("merge", "-q", "--no-ff", branch, "-m",
                   f"Merge pull request #{PR_NUMBER} from {forge.repository}/{branch}")
        self.merge_sha = author.head()
        self.merged_at = time.time()
        author.push("main")
        with forge.lock:
            forge.pull_requests[PR_NUMBER].state = "merged"
        ui.say(f"pull request #{PR_NUMBER} merged: main {before[:7]} -> {self.merge_sha[:7]}")
        pushed = time.monotonic()
        self._hook(webhooks.push_event(forge.flavour, WEBHOOK_SECRET,
                                       repository=forge.repository, branch="main",
                                       before=before, after=self.merge_sha), "push")
        wait("the controller applies the merge",
             lambda: lab.applied_revision() == self.merge_sha, timeout=60, every=0.1)
        ui.ok(f"applied {self.merge_sha[:7]} {time.monotonic() - pushed:.1f}s after the push "
              f"(the poll interval is {lab.options.interval})")

    # --- 5 -------------------------------------------------------------------------------------
    def rollout(self) -> None:
        lab, ui = self.lab, self.ui
        assert lab.control_plane is not None
        version = self.bumped.version
        ui.heading(f"Rollout: every host to {version}, at most {MAX_UNAVAILABLE} out at a time")
        ui.command(f"syncer status --kubeconfig {lab.control_plane.kubeconfig}")
        most_seen = self._watch(version, "rolling out", timeout=60 + 45 * self.hosts)
        spans = outages(lab.hosts, self.merged_at)
        most = most_out_at_once(spans)
        if most > MAX_UNAVAILABLE or most_seen > MAX_UNAVAILABLE:
            raise DemoFailed(f"{max(most, most_seen)} hosts were out at once, "
                             f"maxUnavailable is {MAX_UNAVAILABLE}")
        if len(spans) != self.hosts:
            raise DemoFailed(f"only {len(spans)} of {self.hosts} hosts restarted services")
        longest = max(end - start for start, end in spans.values())
        ui.ok(f"{self.hosts}/{self.hosts} hosts at {version} "
              f"(kubelet {self.bumped.components['kubelet']}), one after another: at most "
              f"{most} out at once by the hosts' own service logs, each out for at most "
              f"{longest:.1f}s")

    def _watch(self, version: str, what: str, timeout: float) -> int:
        """Show the status table until every host is at ``version``; return the most
        hosts seen labelled ``upgrading`` at once."""
        lab = self.lab
        assert lab.api is not None
        addresses = [h.address for h in lab.hosts]
        deadline = time.monotonic() + timeout
        most = 0
        with self.ui.live_status() as view:
            while True:
                snap = snapshot(lab.api, addresses, version)
                most = max(most, len(snap.upgrading))
                note = (f"Nodes Ready {snap.ready()}/{len(addresses)}; upgrading now "
                        f"{len(snap.upgrading)}, most at once {most} "
                        f"(maxUnavailable {MAX_UNAVAILABLE})\n")
                view.update(snap.rows, snap.rollout(version), note)
                if snap.at(version) == len(addresses):
                    return most
                failed = [r for r in snap.rows if r.phase is Phase.FAILED]
                if failed:
                    raise DemoFailed(f"{what}: {failed[0].address} {failed[0].text}: "
                                     f"{failed[0].last_error}")
                if time.monotonic() > deadline:
                    raise DemoFailed(f"{what}: not every host at {version} within "
                                     f"{timeout:.0f}s")
                if lab.controller is not None and not lab.controller.running():
                    raise DemoFailed("syncer run exited")
                time.sleep(1.0)

    # --- 6 -------------------------------------------------------------------------------------
    def write_back(self) -> None:
        lab, ui = self.lab, self.ui
        ui.heading("Write-back: the status branch, the git note, syncer history, /metrics")
        short, n, version = self.merge_sha[:7], self.hosts, self.bumped.version
        wanted = f"hosts {n}/{n} at {version}"

        def status_log() -> str | None:
            log = lab.git("log", "--oneline", names.STATUS_BRANCH)
            return log if f"Applied {short}" in log and wanted in log else None

        log = wait(f"a status commit for {short} with {wanted}", status_log, timeout=60)
        ui.command(f"git log {names.STATUS_BRANCH} --oneline")
        ui.block(log or "")
        note = lab.git("notes", "--ref=syncer", "show", self.merge_sha)
        if note:
            ui.command(f"git notes --ref=syncer show {short}")
            ui.block("\n".join(note.splitlines()[:12]) + "\n…", dim=True)
        ui.command(f"syncer history --repo {lab.remote.as_uri()} --limit 3")
        history = subprocess.run(
            [sys.executable, "-m", "syncer", "history", "--repo", lab.remote.as_uri(),
             "--limit", "3"],
            capture_output=True, text=True, timeout=60, check=False)
        if history.returncode != 0:
            raise DemoFailed(f"syncer history failed: {history.stderr.strip()}")
        ui.block(history.stdout)
        self._metrics()

        def fleet_table() -> str | None:
            table = lab.kubectl_get_fleet()
            return table if f" {self.merge_sha} " in table and f" {n}/{n} " in table else None

        table = wait(f"WindowsFleet status at {short} with {n}/{n} hosts", fleet_table,
                     timeout=60)
        ui.command(f"kubectl get {names.FLEET_RESOURCE_PLURAL} -n {names.SYSTEM_NAMESPACE}")
        ui.block(table or "")
        assert lab.controller is not None
        peak, cpu = lab.controller.usage()
        ui.say(f"syncer run used {peak:.0f} MiB at most (VmHWM) and {cpu:.1f} s of CPU "
                "for the whole story")

    def _metrics(self) -> None:
        controller = self.lab.controller
        assert controller is not None
        wanted = ("syncer_last_applied_revision_info", "syncer_hosts",
                  "syncer_rollout_hosts_done", "syncer_rollout_hosts_total",
                  "syncer_reconciles_total", "syncer_webhooks_total", "syncer_ssh_errors_total")
        lines = []
        for (name, labels), value in sorted(controller.metrics().items()):
            if name in wanted and (value or name != "syncer_reconciles_total"):
                label = ",".join(f'{k}="{v}"' for k, v in labels)
                lines.append(f"{name}{{{label}}} {value:g}" if label else f"{name} {value:g}")
        ui = self.ui
        ui.command(f"curl -s {controller.probe_url}/metrics | grep -E "
                   "'^syncer_(hosts|rollout|last_applied|reconciles|webhooks|ssh)'")
        ui.block("\n".join(lines))
