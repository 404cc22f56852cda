"""A Windows node exactly as WMCO leaves it: the fixture for adopting and removing one.

Built from what WMCO itself does (``openshift/windows-machine-config-operator`` at the
commit ``../shared/reference/wmco-parity.md`` reads, release-5.0 line), never from
syncer's own code, so a test of syncer against it can fail:

- **files**: the payloads in ``C:\\k`` (the kubelet, kube-proxy and kube-log-runner,
  hybrid-overlay-node, containerd in ``C:\\k\\containerd``, the CNI plugins in
  ``C:\\k\\cni``, ``hns.psm1``, WICD), WMCO's ``kubelet.conf``
  (``pkg/nodeconfig/nodeconfig.go`` ``generateKubeletConfiguration``), its
  ``containerd_conf.toml`` (``pkg/internal/containerd_conf.toml``, the keys that matter),
  the bootstrap kubeconfig and CAs;
- **services**: WMCO's command lines (``pkg/services/services.go``; the reference's
  section A2 with the host's values filled in as WICD fills them), description
  ``OpenShift managed <name>``, start type manual (WICD's ``mgr.Config{}``), and
  WICD itself (``pkg/windows/windows.go`` ``ConfigureWICD``);
- **network**: what hybrid-overlay makes and WMCO's ``network-conf.ps1``
  (``pkg/nodeconfig/payload/payload.go``) writes: the VIP endpoint, ``cni.conf`` and
  ``kube-proxy.conf`` from its template;
- **the Node**: registered by the host's own kubelet, its CSRs approved as WMCO's CSR
  controller does, annotated as WMCO annotates it: ``version`` (WMCO's own version
  string), ``desired-version``, ``pub-key-hash`` (sha256 of the authorized key line),
  ``username`` encrypted with ``golang.org/x/crypto/openpgp`` (``openshift-check
  wmco-encrypt``, the library WMCO uses), the ECDSA host key pin (Go's SSH client
  prefers ECDSA), labels ``byoh=true`` and the worker role.
"""

from __future__ import annotations

import base64
import hashlib
import json
import subprocess
import tempfile
import time
from dataclasses import dataclass
from typing import Any

from cryptography import x509
from cryptography.x509.oid import NameOID
from kubernetes import client

from syncer_lab.binaries import kube_binaries
from syncer_lab.nodelab import payload_files
from syncer_lab.winhost.hns import OVERLAY_NETWORK
from syncer_lab.winhost.host import SimHost
from syncer_lab.winhost.service_manager import State

WMCO_VERSION = "10.19.0-0be4b9c"  # what a WMCO build writes as the version annotation
ANNOTATIONS = "windowsmachineconfig.openshift.io/"
WICD = "windows-instance-config-daemon"
K = "C:\\k"


def wmco_encrypt(plaintext: str, private_key: bytes) -> str:
    """The username annotation as WMCO's Go code writes it (openshift-check)."""
    return _openshift_check("wmco-encrypt", plaintext, private_key)


def wmco_decrypt(value: str, private_key: bytes) -> str:
    return _openshift_check("wmco-decrypt", value, private_key)


def _openshift_check(command: str, text: str, private_key: bytes) -> str:
    with tempfile.NamedTemporaryFile() as key:
        key.write(private_key)
        key.flush()
        done = subprocess.run(
            [str(kube_binaries().bin_dir / "openshift-check"), command, key.name],
            input=text.encode(), capture_output=True, check=True, timeout=30)
    return done.stdout.decode()


def kubelet_conf(cluster_dns: str) -> bytes:
    """WMCO's kubelet.conf (generateKubeletConfiguration, marshalled as JSON)."""
    doc = {
        "kind": "KubeletConfiguration", "apiVersion": "kubelet.config.k8s.io/v1beta1",
        "rotateCertificates": True, "serverTLSBootstrap": True,
        "authentication": {"x509": {"clientCAFile": K + "\\kubelet-ca.crt"},
                           "anonymous": {"enabled": False}},
        "clusterDomain": "cluster.local", "clusterDNS": [cluster_dns], "cgroupsPerQOS": False,
        "runtimeRequestTimeout": "10m0s", "maxPods": 250, "kubeAPIQPS": 50,
        "kubeAPIBurst": 100, "serializeImagePulls": False,
        "logging": {"flushFrequency": "5s"}, "enableSystemLogHandler": True,
        "enableSystemLogQuery": True,
        "featureGates": {"NodeLogQuery": True, "RotateKubeletServerCertificate": True},
        "containerLogMaxSize": "50Mi", "enforceNodeAllocatable": ["none"],
        "evictionHard": {"nodefs.available": "10%", "imagefs.available": "15%"},
        "systemReserved": {"cpu": "500m", "ephemeral-storage": "1Gi", "memory": "2Gi"},
        "containerRuntimeEndpoint": "npipe://./pipe/containerd-containerd",
        "registerNode": True,
        "registerWithTaints": [{"key": "os", "value": "Windows", "effect": "NoSchedule"}],
        "resolvConf": "",
    }
    return json.dumps(doc).encode()


CONTAINERD_CONF = b"""version = 2
root = "C:\\\\ProgramData\\\\containerd\\\\root"
state = "C:\\\\ProgramData\\\\containerd\\\\state"
[grpc]
  address = "\\\\\\\\.\\\\pipe\\\\containerd-containerd"
[plugins]
  [plugins."io.containerd.grpc.v1.cri"]
    sandbox_image = "mcr.microsoft.com/oss/kubernetes/pause:3.9"
    [plugins."io.containerd.grpc.v1.cri".cni]
      bin_dir = "C:\\\\k\\\\cni"
      conf_dir = "C:\\\\k\\\\cni\\\\config"
      max_conf_num = 1
    [plugins."io.containerd.grpc.v1.cri".containerd]
      default_runtime_name = "runhcs-wcow-process"
    [plugins."io.containerd.grpc.v1.cri".registry]
      config_path = "C:\\\\k\\\\containerd\\\\registries"
"""


def cni_conf(subnet: str, service_cidr: str, provider_address: str) -> bytes:
    """network-conf.ps1's CNI template with its placeholders replaced."""
    doc = {"cniVersion": "0.2.0", "name": OVERLAY_NETWORK, "type": "win-overlay",
           "apiVersion": 2, "capabilities": {"portMappings": True, "dns": True},
           "ipam": {"type": "host-local", "subnet": subnet},
           "policies": [
               {"name": "EndpointPolicy", "value": {"type": "OutBoundNAT", "settings": {
                   "exceptionList": [service_cidr], "destinationPrefix": "",
                   "needEncap": False}}},
               {"name": "EndpointPolicy", "value": {"type": "SDNRoute", "settings": {
                   "exceptionList": [], "destinationPrefix": service_cidr,
                   "needEncap": True}}},
               {"name": "EndpointPolicy", "value": {"type": "ProviderAddress", "settings": {
                   "providerAddress": provider_address}}}]}
    return json.dumps(doc, indent=4).encode()


def kube_proxy_conf(node: str, subnet: str, vip: str) -> bytes:
    """network-conf.ps1's kube-proxy configuration (the fields it sets)."""
    return f"""kind: KubeProxyConfiguration
apiVersion: kubeproxy.config.k8s.io/v1alpha1
featureGates:
  WinDSR: true
  WinOverlay: true
clientConnection:
  kubeconfig: C:\\k\\kubeconfig
logging:
  verbosity: 0
hostnameOverride: {node}
mode: kernelspace
winkernel:
  networkName: {OVERLAY_NETWORK}
  sourceVip: {vip}
  enableDSR: true
clusterCIDR: {subnet}
""".encode()


def service_lines(node: str, node_ip: str, api_server: str, vxlan_port: int | None
                  ) -> list[tuple[str, str, list[str]]]:
    """(name, command line, dependencies) of WMCO's services, as WICD fills them in."""
    ho = (f"{K}\\hybrid-overlay-node.exe --node {node} --bootstrap-kubeconfig={K}\\kubeconfig "
          f"--cert-dir={K}\\cni\\config --cert-duration=24h --windows-service --logfile "
          f"C:\\var\\log\\hybrid-overlay\\hybrid-overlay.log --k8s-apiserver={api_server} "
          f"--k8s-cacert {K}\\bootstrap-ca.crt")
    if vxlan_port is not None:
        ho += f" --hybrid-overlay-vxlan-port {vxlan_port}"
    return [
        ("containerd", f"{K}\\containerd\\containerd.exe --config {K}\\containerd\\"
                       "containerd_conf.toml --log-file C:\\var\\log\\containerd\\containerd.log"
                       " --run-service --log-level info", []),
        ("kubelet", f"{K}\\kube-log-runner.exe -log-file=C:\\var\\log\\kubelet\\kubelet.log "
                    f"{K}\\kubelet.exe --config={K}\\kubelet.conf --bootstrap-kubeconfig="
                    f"{K}\\bootstrap-kubeconfig --kubeconfig={K}\\kubeconfig "
                    "--cert-dir=c:\\var\\lib\\kubelet\\pki\\ --windows-service "
                    "--node-labels=node.openshift.io/os_id=Windows "
                    "--windows-priorityclass=ABOVE_NORMAL_PRIORITY_CLASS --v=2 "
                    f"--node-ip={node_ip}", ["containerd"]),
        ("hybrid-overlay-node", ho, ["kubelet"]),
        ("kube-proxy", f"{K}\\kube-log-runner.exe -log-file=C:\\var\\log\\kube-proxy\\"
                       f"kube-proxy.log {K}\\kube-proxy.exe --config {K}\\kube-proxy.conf "
                       "--windows-service", ["hybrid-overlay-node"]),
        (WICD, f"{K}\\windows-instance-config-daemon.exe controller --windows-service "
               "--log-dir C:\\var\\log\\wicd --namespace "
               "openshift-windows-machine-config-operator --kubeconfig "
               f"{K}\\wicd-kubeconfig --cert-dir {K}\\wicd-certs --cert-duration 24h "
               f"--ca-bundle {K}\\ca-bundle.crt", []),
    ]


@dataclass
class WmcoNode:
    host: SimHost
    node: str
    username: str


def configure(api: client.ApiClient, host: SimHost, *, kubernetes_version: str,
              bootstrap_kubeconfig: bytes, ca: bytes, api_server: str, service_cidr: str,
              cluster_dns: str, private_key: bytes, public_key_line: str,
              vxlan_port: int | None = None, username: str = "Administrator",
              labels: dict[str, str] | None = None, timeout: float = 60.0) -> WmcoNode:
    """Lay ``host`` out as WMCO would and bring its Node up (see the module docstring)."""
    fs, scm = host.fs, host.scm
    files: dict[str, bytes] = {}
    for component in ("kubelet", "kube-proxy", "kube-log-runner"):
        files[f"{K}\\{component}.exe"] = f"{component} {kubernetes_version}\n".encode()
    files[f"{K}\\hybrid-overlay-node.exe"] = payload_files("hybrid-overlay-node", "v4.17.0")[0]
    files[f"{K}\\hns.psm1"] = payload_files("hns", "wmco")[0]
    files[f"{K}\\windows-instance-config-daemon.exe"] = b"windows-instance-config-daemon\n"
    for name in ("containerd.exe", "containerd-shim-runhcs-v1.exe", "ctr.exe"):
        files[f"{K}\\containerd\\{name}"] = f"{name.removesuffix('.exe')} v1.7.20\n".encode()
    for name in ("win-overlay.exe", "win-bridge.exe", "host-local.exe"):
        files[f"{K}\\cni\\{name}"] = f"{name} v1.5.1\n".encode()
    files[f"{K}\\kubelet.conf"] = kubelet_conf(cluster_dns)
    files[f"{K}\\containerd\\containerd_conf.toml"] = CONTAINERD_CONF
    files[f"{K}\\bootstrap-kubeconfig"] = bootstrap_kubeconfig
    files[f"{K}\\bootstrap-ca.crt"] = ca
    files[f"{K}\\kubelet-ca.crt"] = ca
    for path, data in files.items():
        fs.make_directory(path.rsplit("\\", 1)[0])
        fs.write_bytes(path, data)
    for directory in (f"{K}\\cni\\config", "C:\\var\\lib\\kubelet\\pki", "C:\\var\\log\\kubelet",
                      "C:\\var\\log\\kube-proxy", "C:\\var\\log\\containerd",
                      "C:\\var\\log\\hybrid-overlay", "C:\\var\\log\\wicd"):
        fs.make_directory(directory)

    node = host.computer_name.lower()
    core = client.CoreV1Api(api)
    for name, line, deps in service_lines(node, host.address, api_server, vxlan_port):
        scm.create(name, line, "demand", dependencies=deps)  # WICD's mgr.Config{}
        scm.describe(name, f"OpenShift managed {name}")
    for name in ("containerd", "kubelet", WICD):
        _start(host, name, timeout)
    _approve_until(api, core, node, timeout, lambda: _node(core, node) is not None)
    _start(host, "hybrid-overlay-node", timeout)
    deadline = time.monotonic() + timeout
    while host.hns.network(OVERLAY_NETWORK) is None:
        if time.monotonic() > deadline:
            raise TimeoutError(f"{host.name}: no overlay network from hybrid-overlay")
        time.sleep(0.1)
    network = host.hns.network(OVERLAY_NETWORK)
    assert network is not None
    vip = host.hns.vip_endpoint(OVERLAY_NETWORK).ip
    fs.write_bytes(f"{K}\\cni\\config\\cni.conf",
                   cni_conf(network.subnet, service_cidr, network.management_ip))
    fs.write_bytes(f"{K}\\kube-proxy.conf", kube_proxy_conf(node, network.subnet, vip))
    _start(host, "kube-proxy", timeout)
    _approve_until(api, core, node, timeout, lambda: _ready(core, node))

    ecdsa = host.host_keys["ecdsa"]
    canonical = " ".join(public_key_line.split()[:2])
    annotations = {
        ANNOTATIONS + "version": WMCO_VERSION,
        ANNOTATIONS + "desired-version": WMCO_VERSION,
        ANNOTATIONS + "pub-key-hash": hashlib.sha256(canonical.encode()).hexdigest(),
        ANNOTATIONS + "username": wmco_encrypt(username, private_key),
        ANNOTATIONS + "ssh-host-key": ecdsa.get_base64(),
        ANNOTATIONS + "ssh-host-key-type": ecdsa.get_name(),
    }
    node_labels = {ANNOTATIONS + "byoh": "true", "node-role.kubernetes.io/worker": "",
                   **(labels or {})}
    core.patch_node(node, {"metadata": {"annotations": annotations, "labels": node_labels}})
    return WmcoNode(host, node, username)


def _start(host: SimHost, name: str, timeout: float) -> None:
    """Start a service and wait until it runs, as WICD does one after the other."""
    host.scm.start(name)
    deadline = time.monotonic() + timeout
    while host.scm.state(name) is not State.RUNNING:
        if time.monotonic() > deadline:
            raise TimeoutError(f"{host.name}: {name} is {host.scm.state(name)}")
        time.sleep(0.02)


def _node(core: Any, name: str) -> Any:
    try:
        return core.read_node(name)
    except client.exceptions.ApiException as err:
        if err.status == 404:
            return None
        raise


def _ready(core: Any, name: str) -> bool:
    node = _node(core, name)
    conditions = (node.status.conditions or []) if node is not None else []
    return any(c.type == "Ready" and c.status == "True" for c in conditions)


def _approve_until(api: client.ApiClient, core: Any, node: str, timeout: float,
                   done: Any) -> None:
    """WMCO's CSR controller: approve the kubelet CSRs of ``node`` until ``done()``."""
    certs = client.CertificatesV1Api(api)
    deadline = time.monotonic() + timeout
    while not done():
        if time.monotonic() > deadline:
            raise TimeoutError(f"Node {node} did not come up as WMCO configured it")
        listing: Any = certs.list_certificate_signing_request()
        for csr in listing.items:
            if csr.spec.signer_name not in ("kubernetes.io/kube-apiserver-client-kubelet",
                                            "kubernetes.io/kubelet-serving"):
                continue
            if csr.status and csr.status.conditions:
                continue
            request = x509.load_pem_x509_csr(base64.b64decode(csr.spec.request))
            names = request.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
            if not names or names[0].value != f"system:node:{node}":
                continue
            csr.status = client.V1CertificateSigningRequestStatus(conditions=[
                client.V1CertificateSigningRequestCondition(
                    type="Approved", status="True", reason="WMCOApprove",
                    message="approved by the WMCO fixture")])
            certs.replace_certificate_signing_request_approval(csr.metadata.name, csr)
        time.sleep(0.2)
