"""node-check is the kubelet's and kube-proxy's own start-up code: it accepts what the real
programs accept and rejects what they reject, with their error text."""

from __future__ import annotations

import json

from syncer_lab.winhost.nodecheck import shared

KUBELET_CONF = json.dumps({
    "kind": "KubeletConfiguration", "apiVersion": "kubelet.config.k8s.io/v1beta1",
    "cgroupsPerQOS": False, "enforceNodeAllocatable": ["none"], "resolvConf": "",
    "clusterDNS": ["172.30.0.10"], "clusterDomain": "cluster.local",
    "registerWithTaints": [{"key": "os", "value": "Windows", "effect": "NoSchedule"}],
}).encode()
# WMCO's kubelet command line (pkg/services/services.go, generateKubeletArgs), after
# kube-log-runner has taken its own flags.
WMCO_KUBELET = [
    "--config=C:\\k\\kubelet.conf", "--bootstrap-kubeconfig=C:\\k\\bootstrap-kubeconfig",
    "--kubeconfig=C:\\k\\kubeconfig", "--cert-dir=c:\\var\\lib\\kubelet\\pki\\",
    "--windows-service", "--node-labels=node.openshift.io/os_id=Windows",
    "--windows-priorityclass=ABOVE_NORMAL_PRIORITY_CLASS", "--v=2", "--node-ip=10.0.0.5",
]


def test_wmco_kubelet_command_line_is_accepted_with_its_effective_config() -> None:
    verdict = shared().check("kubelet", WMCO_KUBELET, {"C:\\k\\kubelet.conf": KUBELET_CONF})
    assert verdict.ok, verdict.error
    assert verdict.config["resolvConf"] == ""
    assert verdict.config["clusterDNS"] == ["172.30.0.10"]
    assert verdict.config["registerWithTaints"][0]["key"] == "os"
    assert verdict.flags["node-ip"] == "10.0.0.5"


def test_klog_flags_removed_in_1_26_stop_the_kubelet_and_kube_proxy() -> None:
    kubelet = shared().check("kubelet", [*WMCO_KUBELET, "--logtostderr=false"],
                             {"C:\\k\\kubelet.conf": KUBELET_CONF})
    assert not kubelet.ok
    assert kubelet.error == "failed to parse kubelet flag: unknown flag: --logtostderr"
    proxy = shared().check("kube-proxy", ["--windows-service", "--log-file=C:\\x.log"])
    assert proxy.error == "unknown flag: --log-file"


def test_an_unknown_config_field_is_ignored_and_a_restricted_label_refused() -> None:
    bad = json.loads(KUBELET_CONF)
    del bad["resolvConf"]
    bad["resolveConf"] = ""  # a typo: the kubelet warns, decodes leniently, ignores it
    verdict = shared().check("kubelet", WMCO_KUBELET,
                             {"C:\\k\\kubelet.conf": json.dumps(bad).encode()})
    assert verdict.ok
    assert 'unknown field \"resolveConf\"' in verdict.warnings[0]
    assert verdict.config["resolvConf"] == "/etc/resolv.conf"  # the default stays
    label = shared().check("kubelet", [*WMCO_KUBELET, "--node-labels=kubernetes.io/role=x"],
                           {"C:\\k\\kubelet.conf": KUBELET_CONF})
    assert not label.ok and "--node-labels in the 'kubernetes.io' namespace" in label.error


def test_kube_proxy_takes_a_windows_config_and_refuses_a_linux_mode() -> None:
    config = ("apiVersion: kubeproxy.config.k8s.io/v1alpha1\nkind: KubeProxyConfiguration\n"
              "mode: kernelspace\nwinkernel:\n  networkName: OVNKubernetesHybridOverlayNetwork\n"
              "  sourceVip: 10.132.1.2\n  enableDSR: true\nclusterCIDR: 10.132.1.0/24\n"
              "featureGates:\n  WinDSR: true\n  WinOverlay: true\n")
    ok = shared().check("kube-proxy", ["--config", "C:\\k\\kube-proxy.conf", "--windows-service"],
                        {"C:\\k\\kube-proxy.conf": config.encode()})
    assert ok.ok, ok.error
    assert ok.config["winkernel"]["sourceVip"] == "10.132.1.2"
    linux = shared().check("kube-proxy", ["--config", "C:\\k\\kube-proxy.conf"],
                           {"C:\\k\\kube-proxy.conf": config.replace("kernelspace",
                                                                     "iptables").encode()})
    assert not linux.ok and "must be kernelspace or blank" in linux.error


def test_kube_log_runner_takes_its_own_flags_then_the_command() -> None:
    verdict = shared().check("kube-log-runner", [
        "-log-file=C:\\var\\log\\kubelet\\kubelet.log", "C:\\k\\kubelet.exe", "--v=2"])
    assert verdict.ok and verdict.args == ("C:\\k\\kubelet.exe", "--v=2")
    assert verdict.flags["log-file"] == "C:\\var\\log\\kubelet\\kubelet.log"
    assert shared().check("kube-log-runner", ["-log-file=x"]).error == (
        "not enough arguments to run")
    assert "flag provided but not defined: -logtostderr" in shared().check(
        "kube-log-runner", ["-logtostderr", "C:\\k\\kubelet.exe"]).error
