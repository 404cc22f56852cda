"""Hostile fleets: each is what a pull request could commit, run through ``syncer validate``.

Every case starts from a valid fleet (``examples/byoh``), breaks it one way, and runs the
real command in a child process with an address-space limit: the outcome must be exactly
the expected ``file:line: message`` lines and exit 1 (or exit 0 for legal-but-odd values,
which are accepted, not refused), never a traceback, within the time and memory bounds.
The same loader and checks gate the controller, so nothing from such a revision is
applied (``tests/cluster`` shows an invalid revision applies nothing).
"""

from __future__ import annotations

import os
import re
import resource
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "byoh"
MEMORY_LIMIT = 1 << 30  # address space of the child: a bomb must not need more
TIME_LIMIT = 15.0  # seconds, wall clock, for one validate of a hostile fleet
HOSTS = "hosts/lab.yaml"
FLEET = "fleet.yaml"
TIMINGS: list[tuple[str, float]] = []


@dataclass(frozen=True)
class Case:
    name: str
    make: Callable[[Path], None]  # breaks the fleet in this directory
    expect: tuple[str, ...]  # regexes, one per error line (in order); () = valid, exit 0


def write(path: Path, text: str | bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text)


def configmap(data: str) -> str:
    return ("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: hostile\n"
            f"  namespace: windows-apps\ndata:\n{data}")


def laughs(levels: int) -> str:
    lines = ['  a0: &a0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for i in range(1, levels + 1):
        lines.append(f"  a{i}: &a{i} [" + ",".join([f"*a{i - 1}"] * 10) + "]")
    return "\n".join(lines) + "\n"


def replace_in(file: str, old: str, new: str) -> Callable[[Path], None]:
    def make(root: Path) -> None:
        path = root / file
        text = path.read_text()
        assert old in text, (file, old)
        path.write_text(text.replace(old, new, 1))
    return make


def add(file: str, text: str | bytes) -> Callable[[Path], None]:
    return lambda root: write(root / file, text)


def host_entry(entry: str) -> Callable[[Path], None]:
    """Append one entry (YAML lines under ``- ``) to the BYOH host list."""
    return lambda root: (root / HOSTS).write_text((root / HOSTS).read_text() + entry)


def component_url(url: str) -> Callable[[Path], None]:
    return replace_in(FLEET, "url: https://dl.k8s.io/v1.34.4/kubernetes-node-windows-amd64"
                      ".tar.gz\n      path: kubernetes/node/bin/kubelet.exe",
                      f"url: {url}\n      path: kubernetes/node/bin/kubelet.exe")


def symlink(name: str, target: str) -> Callable[[Path], None]:
    return lambda root: os.symlink(target, root / name)


def sparse(file: str, size: int) -> Callable[[Path], None]:
    def make(root: Path) -> None:
        with (root / file).open("wb") as out:
            out.truncate(size)
    return make


def documents(count: int) -> Callable[[Path], None]:
    doc = "---\napiVersion: v1\nkind: Namespace\nmetadata:\n  name: ns{}\n"
    return add("workloads/many.yaml", "".join(doc.format(i) for i in range(count)))


def deep_block(depth: int) -> str:
    return "".join(f"{'  ' * (i + 1)}k{i}:\n" for i in range(depth)) + f"{'  ' * (depth + 1)}v\n"


W = "workloads/hostile.yaml"
CASES = [
    # --- YAML bombs: aliases are counted before anything is converted ---------------------
    Case("billion laughs, 5 levels", add(W, configmap(laughs(5))),
         (rf"{W}:1: YAML aliases expand this document to 1234573 values \(1234550 more than "
          r"written; at most 100000 allowed\)",)),
    Case("billion laughs, 7 levels", add(W, configmap(laughs(7))),
         (rf"{W}:1: YAML aliases expand this document to 123456795 values",)),
    Case("billion laughs, 9 levels (a 560-byte file)", add(W, configmap(laughs(9))),
         (rf"{W}:1: YAML aliases expand this document to 12345679017 values",)),
    Case("alias bomb inside the BYOH host list", replace_in(
        HOSTS, "  hosts:\n", "  x-bomb: &b0 [1,1,1,1,1,1,1,1,1,1]\n" + "".join(
            f"  x-b{i}: &b{i} [" + ",".join([f"*b{i - 1}"] * 10) + "]\n"
            for i in range(1, 7)) + "  hosts:\n"),
         (rf"{FLEET}:3: warning: this fleet defines no Windows hosts",
          rf"{HOSTS}:3: YAML aliases expand this document to 12345695 values",)),
    Case("merge keys repeated", add(W, configmap(
        "  base: &base {a: 1, b: 2}\n" + "".join(f"  k{i}:\n    <<: *base\n" for i in range(20)))),
         ()),  # legal: 20 small merges are far within the budget
    # --- nesting ---------------------------------------------------------------------------
    Case("300 nested flow sequences", add(W, configmap("  a: " + "[" * 300 + "]" * 300 + "\n")),
         (rf"{W}:7: nested more than 64 levels deep",)),
    Case("5000 nested flow sequences", add(W, configmap("  a: " + "[" * 5000 + "]" * 5000 + "\n")),
         (rf"{W}:7: nested more than 64 levels deep",)),
    Case("100 nested block mappings", add(W, configmap(deep_block(100))),
         (rf"{W}:\d+: nested more than 64 levels deep",)),
    Case("70 nested flow mappings",
         add(W, configmap("  a: " + "{b: " * 70 + "1" + "}" * 70 + "\n")),
         (rf"{W}:7: nested more than 64 levels deep",)),
    Case("40 nested levels are fine", add(W, configmap("  a: " + "[" * 40 + "]" * 40 + "\n")),
         ()),
    # --- tags --------------------------------------------------------------------------------
    Case("python object on a sequence", add(W, configmap(
        '  a: !!python/object/apply:os.system ["touch /tmp/pwned"]\n')),
         (rf"{W}:7: custom YAML tag !!python/object/apply:os.system is not supported",)),
    Case("custom tag on a mapping", add(W, configmap("  a: !foo {x: 1}\n")),
         (rf"{W}:7: custom YAML tag !foo is not supported",)),
    Case("python name on a scalar", add(W, configmap("  a: !!python/name:os.system x\n")),
         (rf"{W}:7: custom YAML tag !!python/name:os\.system is not supported",)),
    Case("binary scalar", add(W, configmap("  a: !!binary aGVsbG8=\n")),
         (rf"{W}:7: binary YAML values are not supported",)),
    Case("!!str is plain YAML", add(W, configmap("  a: !!str 5\n")), ()),
    # --- encodings ---------------------------------------------------------------------------
    Case("Latin-1 byte on line 7", add(W, configmap('  a: "caf\xe9"\n').encode("latin-1")),
         (rf"{W}:7: not valid UTF-8 \(byte 0xe9: invalid continuation byte\)",)),
    Case("UTF-16 with a byte order mark", add(W, configmap("  a: b\n").encode("utf-16")),
         (rf"{W}:1: not valid UTF-8 \(byte 0xff: invalid start byte\)",)),
    Case("UTF-8 with a byte order mark is fine", add(W, b"\xef\xbb\xbf" +
                                                       configmap("  a: b\n").encode()), ()),
    Case("a NUL byte", add(W, configmap("  a: b\x00c\n")),
         (rf"{W}:7: YAML syntax error: character #x0000: special characters are not "
          r"allowed",)),
    Case("CRLF line ends are fine", add(W, configmap("  a: b\n").replace("\n", "\r\n")), ()),
    # --- files and links ---------------------------------------------------------------------
    Case("a symbolic link to a directory", lambda root: (
        (root / "shared").mkdir(), write(root / "shared" / "ns.yaml", "apiVersion: v1\n"
                                         "kind: Namespace\nmetadata:\n  name: shared\n"),
        os.rename(root / "shared", root / ".shared"), os.symlink(".shared", root / "linked")),
         (r"linked: symbolic link to a directory: fleet files must be in the repository "
          r"itself",)),
    Case("a file linked to the service account token", symlink(
        "token.yaml", "/var/run/secrets/kubernetes.io/serviceaccount/token"),
         (r"token\.yaml: symbolic link points outside the fleet repository",)),
    Case("a file linked to /etc/passwd", symlink("passwd.yaml", "/etc/passwd"),
         (r"passwd\.yaml: symbolic link points outside the fleet repository",)),
    Case("a 40 MiB file", sparse("workloads/huge.yaml", 40 << 20),
         (r"workloads/huge\.yaml: file is 41943040 bytes; at most 33554432 allowed",)),
    Case("10,001 documents in one file", documents(10_001),
         (r"workloads/many\.yaml:\d+: more than 10000 YAML documents in one file",)),
    # --- syntax ------------------------------------------------------------------------------
    Case("a duplicate key", add(W, configmap("  a: b\n  a: c\n")),
         (rf"{W}:8: YAML: duplicate key \"a\"",)),
    Case("a tab as indentation", add(W, "apiVersion: v1\nkind: Namespace\nmetadata:\n"
                                     "\tname: x\n"),
         (rf"{W}:4: YAML syntax error: while scanning for the next token: found character "
          r"'\\t' that cannot start any token",)),
    Case("an unterminated quote", add(W, configmap('  a: "open\n')),
         (rf"{W}:8: YAML syntax error: while scanning a quoted scalar: found unexpected end "
          r"of stream",)),
    Case("a document that is a list", add(W, "- a\n- b\n"),
         (rf"{W}:1: a document must be a mapping \(a Kubernetes object\), got a list",)),
    # --- hostile names -----------------------------------------------------------------------
    Case("an object name with ../", add(W, configmap("  a: b\n").replace(
        "name: hostile", "name: ../../etc")),
         (rf"{W}:4: metadata\.name: '\.\./\.\./etc' must be a DNS subdomain name",)),
    Case("an object name of 300 characters", add(W, configmap("  a: b\n").replace(
        "name: hostile", "name: " + "a" * 300)),
         (rf"{W}:4: metadata\.name: 'a{{300}}' must be at most 253 characters",)),
    Case("a namespace with a newline", add(W, configmap("  a: b\n").replace(
        "namespace: windows-apps", 'namespace: "windows-apps\\nkube-system"')),
         (rf"{W}:5: metadata\.namespace: 'windows-apps\\nkube-system' must be an RFC 1123 "
          r"label",)),
    Case("a label value with a trailing newline", replace_in(
        HOSTS, "example.com/role: canary", 'example.com/role: "canary\\n"'),
         (rf"{HOSTS}:16: spec\.hosts\[2\]\.labels\.example\.com/role: value 'canary\\n' must "
          r"consist of letters",)),
    # --- hostile URLs ------------------------------------------------------------------------
    Case("a payload URL with credentials", component_url("https://user:s3cret@mirror.example.com/k.tgz"),
         (rf"{FLEET}:25: spec\.components\.kubelet\.url: 'https://\*\*\*@mirror\.example"
          r"\.com/k\.tgz' must not contain credentials \(they would be stored in Git\)$",)),
    Case("a gopher payload URL", component_url("gopher://mirror.example.com/k.tgz"),
         (rf"{FLEET}:25: spec\.components\.kubelet\.url: 'gopher://mirror\.example\.com/k"
          r"\.tgz' scheme gopher:// is not supported",)),
    Case("a payload URL with a header injection",
         component_url('"https://a.example.com/k\\r\\nX: y"'),
         (rf"{FLEET}:25: spec\.components\.kubelet\.url: 'https://a\.example\.com/k\\r\\nX: y'"
          r" must not contain whitespace",)),
    Case("a payload URL with a bad port", component_url("https://a.example.com:99999/k.tgz"),
         (rf"{FLEET}:25: spec\.components\.kubelet\.url: '.*' is not a valid URL \(Port out "
          r"of range 0-65535\)",)),
    Case("a payload digest that is not hex", replace_in(
        FLEET, 'sha256: "0000000000000000000000000000000000000000000000000000000000000000"',
        'sha256: "zz"'), (rf"{FLEET}:27: spec\.components\.kubelet\.sha256: 'zz' must be "
                          r"exactly 64 hexadecimal characters",)),
    Case("a member path escaping the archive", replace_in(
        FLEET, "path: kubernetes/node/bin/kubelet.exe", "path: ../../etc/passwd"),
         (rf"{FLEET}:26: spec\.components\.kubelet\.path: '\.\./\.\./etc/passwd' must be the "
          r"relative path of a file inside the archive",)),
    # --- hosts -------------------------------------------------------------------------------
    Case("an address with a shell command", host_entry(
        "    - address: 127.0.1.9;calc\n      username: Administrator\n"),
         (rf"{HOSTS}:17: spec\.hosts\[3\]\.address: '127\.0\.1\.9;calc' is neither an IPv4 "
          r"address nor a valid DNS name",)),
    Case("an address that is an ssh option", host_entry(
        "    - address: -oProxyCommand=calc\n      username: Administrator\n"),
         (rf"{HOSTS}:17: spec\.hosts\[3\]\.address: '-oProxyCommand=calc' is neither an IPv4 "
          r"address nor a valid DNS name",)),
    Case("a Windows user name with & is legal", host_entry(
        "    - address: 127.0.1.9\n      username: x&calc\n"), ()),
    Case("a Windows user name with a quote is legal", host_entry(
        "    - address: 127.0.1.9\n      username: \"O'Brien\"\n"), ()),
    Case("a user name with a newline", host_entry(
        "    - address: 127.0.1.9\n      username: \"a\\nb\"\n"),
         (rf"{HOSTS}:18: spec\.hosts\[3\]\.username: 'a\\nb' must not contain whitespace",)),
    Case("a host key that is not a key", host_entry(
        "    - address: 127.0.1.9\n      username: a\n      hostKey: ssh-ed25519 AAAA$(calc)\n"),
         (rf"{HOSTS}:19: spec\.hosts\[3\]\.hostKey: 'ssh-ed25519 AAAA\$\(calc\)' key data is "
          r"not valid base64",)),
    # --- what the fleet may write (syncer.fleet.admission) -----------------------------------
    Case("a Node", add(W, "apiVersion: v1\nkind: Node\nmetadata:\n  name: win-1\n"
                          "spec:\n  unschedulable: true\n"),
         (rf"{W}:1: Node win-1: Nodes are the node stage's; a fleet cannot write them",)),
    Case("syncer's own status ConfigMap", add(W, configmap("  hosts.json: '{}'\n").replace(
        "name: hostile", "name: syncer-node-status").replace(
        "namespace: windows-apps", "namespace: openshift-windows-machine-config-operator")),
         (rf"{W}:1: ConfigMap openshift-windows-machine-config-operator/syncer-node-status: "
          r"ConfigMap syncer-node-status is syncer's own state",)),
    Case("the SSH key Secret", add(W, "apiVersion: v1\nkind: Secret\nmetadata:\n"
                                      "  name: cloud-private-key\n  namespace: "
                                      "openshift-windows-machine-config-operator\n"
                                      "stringData:\n  private-key.pem: mine\n"),
         (rf"{W}:1: Secret openshift-windows-machine-config-operator/cloud-private-key: "
          r"Secret cloud-private-key is syncer's own state",)),
    Case("anything in syncer's namespace", add(W, configmap("  a: b\n").replace(
        "namespace: windows-apps", "namespace: syncer-system")),
         (rf"{W}:1: ConfigMap syncer-system/hostile: namespace syncer-system holds syncer "
          r"itself",)),
    Case("privileged Pod Security on kube-system", add(
        W, "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: kube-system\n  labels:\n"
           "    pod-security.kubernetes.io/enforce: privileged\n"),
         (rf"{W}:1: Namespace kube-system: namespace kube-system may not be written",)),
    Case("a ClusterRoleBinding to everyone", add(
        W, "apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRoleBinding\nmetadata:\n"
           "  name: everyone-admin\nroleRef:\n  apiGroup: rbac.authorization.k8s.io\n"
           "  kind: ClusterRole\n  name: cluster-admin\nsubjects:\n  - kind: Group\n"
           "    apiGroup: rbac.authorization.k8s.io\n    name: system:authenticated\n"),
         (rf"{W}:1: ClusterRoleBinding everyone-admin: kind "
          r"ClusterRoleBinding\.rbac\.authorization\.k8s\.io may not pass through",)),
    Case("a Linux worker MachineSet scaled to zero", add(
        W, "apiVersion: machine.openshift.io/v1beta1\nkind: MachineSet\nmetadata:\n"
           "  name: worker-a\n  namespace: openshift-machine-api\nspec:\n  replicas: 0\n"
           "  template:\n    metadata:\n      labels:\n"
           "        machine.openshift.io/os-id: Linux\n"),
         (rf"{W}:1: MachineSet openshift-machine-api/worker-a: only Windows MachineSets",)),
    Case("a Deployment in default", add(
        W, "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: x\n"
           "  namespace: default\nspec: {}\n"),
         (rf"{W}:1: Deployment default/x: namespace default may not be written",)),
    Case("a Deployment for Windows workloads is fine", add(
        W, "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\n"
           "  namespace: windows-apps\nspec: {}\n"), ()),
    # --- rollout and nodes settings ----------------------------------------------------------
    Case("maxUnavailable 0", replace_in(FLEET, "maxUnavailable: 1", "maxUnavailable: 0"),
         (rf"{FLEET}:59: spec\.rollout\.maxUnavailable: must be at least 1, got 0",)),
    Case("a negative drain timeout", replace_in(FLEET, "drainTimeout: 5m", "drainTimeout: -5s"),
         (rf"{FLEET}:60: spec\.rollout\.drainTimeout: '-5s' is not a positive duration",)),
    Case("an SSH port of 70000", replace_in(FLEET, "sshPort: 22", "sshPort: 70000"),
         (rf"{FLEET}:62: spec\.nodes\.sshPort: must be at most 65535, got 70000",)),
    Case("an unknown platform", replace_in(FLEET, "platform: none", "platform: mainframe"),
         (rf"{FLEET}:8: spec\.platform: must be one of aws, azure, gcp, vsphere, nutanix, none, "
          r"got 'mainframe'",)),
    Case("an unknown component", replace_in(FLEET, "  components:\n",
                                            "  components:\n    rootkit: {version: v1, url: "
                                            "https://a.example.com/r, sha256: \"" + "0" * 64 +
                                            "\"}\n"),
         (rf"{FLEET}:23: spec\.components\.rootkit: unknown component \(known: ",)),
    Case("a version of 10^400", replace_in(FLEET, 'version: "1.0.0"', "version: 1e400"),
         (rf"{FLEET}:9: spec\.version: must be a string, got a number",)),
]


@pytest.fixture
def fleet(tmp_path: Path) -> Path:
    root = tmp_path / "fleet"
    shutil.copytree(EXAMPLE, root)
    return root


def _limit() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_LIMIT, MEMORY_LIMIT))


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_a_hostile_fleet(case: Case, fleet: Path) -> None:
    case.make(fleet)
    started = time.monotonic()
    done = subprocess.run([sys.executable, "-m", "syncer", "validate", str(fleet)],
                          capture_output=True, text=True, timeout=60, preexec_fn=_limit,
                          cwd=fleet.parent, check=False)
    elapsed = time.monotonic() - started
    TIMINGS.append((case.name, elapsed))
    output = done.stdout + done.stderr
    assert "Traceback" not in output, output
    assert elapsed < TIME_LIMIT, (elapsed, output)
    assert done.returncode == (1 if case.expect else 0), output
    if not case.expect:
        assert "valid" in done.stdout, output
        return
    lines = [line.removeprefix(f"{fleet}/") for line in done.stderr.splitlines()
             if not line.startswith("fleet ")]
    assert len(lines) == len(case.expect), output
    for line, expected in zip(lines, case.expect, strict=True):
        assert re.match(expected, line), (expected, line)

