"""Hand-written mutants of the node stage's safety functions, each run against its tests.

A mutant is one plausible bug (a line changed in a copy of the source). It is *killed*
when the tests named for it fail against the copy; a mutant that survives is a promise
no test holds. ``make mutants`` runs them all and prints the score; it exits 1 when any
survives. Each mutant must apply exactly (its original text appears once), so a refactor
that moves the code breaks this script loudly rather than silently testing nothing.

    .venv/bin/python tools/mutants.py [NAME ...]
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Mutant:
    name: str
    path: str
    original: str
    mutated: str
    tests: tuple[str, ...]


NODES = "tests/nodes"
MUTANTS = (
    Mutant("git pins ignored by the node stage", "syncer/nodes/context.py",
           "git_key=host.pinned_host_key,", "git_key=None,",
           (f"{NODES}/test_safety.py",)),
    Mutant("a first-use key may change within a session", "syncer/nodes/hostkeys.py",
           "            if self.verdict.presented != presented:",
           "            if False:",
           (f"{NODES}/test_safety.py",)),
    Mutant("an unreadable pin means no pin", "syncer/nodes/hostkeys.py",
           "        except ValueError as err:\n            return Verdict(",
           "        except ValueError as err:\n            return decide(address, key, None)\n"
           "            return Verdict(",
           (f"{NODES}/test_safety.py",)),
    Mutant("host key algorithms not restricted to the pin", "syncer/nodes/ssh.py",
           "t.get_security_options().key_types = key_types", "pass",
           (f"{NODES}/test_safety.py::test_a_git_pin_of_each_key_type_under_the_pinned_policy",
            f"{NODES}/test_wmco_parity.py::test_fresh_and_wmco_hosts_join_upgrade_and_one_leaves")),
    Mutant("kubelet --config names a file never written", "syncer/nodes/windows/layout.py",
           'f"--config={KUBELET_CONFIG}",', 'f"--config={ROOT}\\\\kubelet-config.yaml",',
           (f"{NODES}/test_wmco_parity.py::test_pods_start_on_a_new_node",)),
    Mutant("the critical section starts at start", "syncer/nodes/configure.py",
           'CRITICAL_FROM, CRITICAL_UNTIL = "stop-services", "verify"',
           'CRITICAL_FROM, CRITICAL_UNTIL = "start", "verify"',
           (f"{NODES}/test_safety.py::test_a_shutdown_waits_until_the_services_run_again",)),
    Mutant("one host too many out", "syncer/nodes/slots.py",
           "len(others) >= self.max_unavailable", "len(others) > self.max_unavailable",
           (f"{NODES}/test_rollout_slots.py",)),
    Mutant("no resolvConf in kubelet.conf", "syncer/nodes/windows/files.py",
           '        "resolvConf": "",\n', "",
           (f"{NODES}/test_wmco_parity.py::test_pods_start_on_a_new_node",)),
    Mutant("the kubelet without kube-log-runner", "syncer/nodes/windows/layout.py",
           "    if c.log_runner:", "    if False:",
           (f"{NODES}/test_wmco_parity.py::test_pods_start_on_a_new_node",)),
    Mutant("kube-proxy without a source VIP", "syncer/nodes/windows/files.py",
           '"sourceVip": overlay.source_vip,', "",
           (f"{NODES}/test_wmco_parity.py::test_pods_start_on_a_new_node",)),
    Mutant("the username annotation in the clear", "syncer/nodes/configure.py",
           "username=usernames.seal(host.username, ctx.private_key.secret),",
           "username=host.username,",
           (f"{NODES}/test_rollout_e2e.py::test_fresh_byoh_hosts_join_and_a_second_pass_changes_nothing",)),
    Mutant("containerd shims left running", "syncer/nodes/configure.py",
           "            services.end_processes(SHIM_PROCESS)", "            pass",
           (f"{NODES}/test_wmco_parity.py::test_upgrading_containerd_ends_the_shims_of_daemonset_pods",)),
    Mutant("CSRs approved only while a host joins", "syncer/nodes/stage.py",
           "    _approve_csrs(ctx, inputs.hosts, probes)\n", "",
           (f"{NODES}/test_wmco_parity.py::test_serving_csrs_are_approved_in_every_round",)),
    Mutant("reboot-required read by value", "syncer/nodes/hostplan.py",
           "names.ANNOTATION_REBOOT_REQUIRED in node.annotations",
           'node.annotations.get(names.ANNOTATION_REBOOT_REQUIRED) == "true"',
           (f"{NODES}/test_hostplan.py",)),
    Mutant("the kubelet version compared exactly", "syncer/nodes/configure.py",
           'return reported == committed or reported.startswith(committed + "+")',
           "return reported == committed",
           (f"{NODES}/test_wmco_parity.py::test_kubelet_versions_with_build_metadata_match",)),
    Mutant("a failed payload digest ignored for file:// URLs", "syncer/nodes/payloads.py",
           "            if got != want:",
           "            if got != want and not url.startswith('file:'):",
           (f"{NODES}/test_payloads.py",)),
)


def run(mutant: Mutant, work: Path) -> tuple[bool, float]:
    """(killed, seconds)."""
    target = work / mutant.path
    original = (ROOT / mutant.path).read_text()
    if original.count(mutant.original) != 1:
        raise SystemExit(f"{mutant.name}: {mutant.path} does not hold the original text once")
    target.write_text(original.replace(mutant.original, mutant.mutated))
    env = {**os.environ, "PYTHONPATH": str(work)}
    start = time.monotonic()
    try:
        done = subprocess.run(
            [sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider",
             "--timeout", "300", *mutant.tests],
            cwd=work, env=env, capture_output=True, text=True, timeout=1200, check=False)
    finally:
        target.write_text(original)
    return done.returncode != 0, time.monotonic() - start


def main(argv: list[str]) -> int:
    chosen = [m for m in MUTANTS if not argv or m.name in argv]
    with tempfile.TemporaryDirectory(prefix="syncer-mutants-") as tmp:
        work = Path(tmp)
        for part in ("syncer", "syncer_lab", "tests", "examples", "docs", "manifests",
                     "tools", "pyproject.toml", "README.md", ".importlinter"):
            source = ROOT / part
            if source.is_dir():
                shutil.copytree(source, work / part, ignore=shutil.ignore_patterns(
                    "__pycache__", "*.pyc"))
            elif source.exists():
                shutil.copy2(source, work / part)
        killed = 0
        for mutant in chosen:
            dead, seconds = run(mutant, work)
            killed += dead
            print(f"{'killed  ' if dead else 'SURVIVED'}  {seconds:6.1f}s  {mutant.name}",
                  flush=True)
    print(f"mutation score: {killed}/{len(chosen)} killed")
    return 0 if killed == len(chosen) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
