"""What the simulated host's programs and Windows facts do, each grounded in the real
component (the sources are cited in syncer_lab/winhost/programs.py, hns.py and host.py)."""

from __future__ import annotations

import io
import tarfile
from collections.abc import Iterator

import paramiko
import pytest
from winhelpers import payload, run, wait_for

from syncer.nodes.windows import vocabulary as c
from syncer_lab.winhost import HostLab, SimClient, SimHost, key_line
from syncer_lab.winhost.hns import OVERLAY_NETWORK
from syncer_lab.winhost.kubelet import SHIM_IMAGE

WMCO_KUBELET = (
    "C:\\k\\kube-log-runner.exe -log-file=C:\\var\\log\\kubelet\\kubelet.log "
    "C:\\k\\kubelet.exe --config=C:\\k\\kubelet.conf --bootstrap-kubeconfig=C:\\k\\bootstrap-"
    "kubeconfig --kubeconfig=C:\\k\\kubeconfig --cert-dir=c:\\var\\lib\\kubelet\\pki\\ "
    "--windows-service --node-labels=node.openshift.io/os_id=Windows "
    "--windows-priorityclass=ABOVE_NORMAL_PRIORITY_CLASS --v=2 --node-ip=10.0.0.5"
)
KUBELET_CONF = (b'{"kind": "KubeletConfiguration", "apiVersion": "kubelet.config.k8s.io/v1beta1",'
                b' "cgroupsPerQOS": false, "enforceNodeAllocatable": ["none"], "resolvConf": ""}')


def _service(host: SimHost, name: str, binary_path: str, files: dict[str, bytes]) -> None:
    host.fs.make_directory("C:\\k")
    for path, data in files.items():
        host.fs.make_directory(path.rsplit("\\", 1)[0])
        host.fs.write_bytes(path, data)
    host.scm.create(name, binary_path, "auto")


def _stopped_with(host: SimHost, service: str, log: str | None, text: str) -> None:
    assert wait_for(lambda: host.scm.state(service) == c.ServiceState.STOPPED)
    assert host.scm.get(service).win32_exit_code == 1067  # ERROR_PROCESS_ABORTED
    if log is not None:
        assert text in host.fs.read_bytes(log).decode()


def test_the_host_offers_rsa_ecdsa_and_ed25519_host_keys_at_once(
    host_lab: HostLab, admin_key: paramiko.PKey, admin_key_line: str
) -> None:
    host = host_lab.add_host("WIN-KEYS", authorized_keys=[admin_key_line])
    assert set(host.host_keys) == {"rsa", "ecdsa", "ed25519"}
    assert host.host_key is host.host_keys["ecdsa"]  # what Go's x/crypto/ssh picks first
    for kind, algorithm in (("rsa", "rsa-sha2-256"), ("ecdsa", "ecdsa-sha2-nistp256"),
                            ("ed25519", "ssh-ed25519")):
        transport = paramiko.Transport((host.address, host.port))
        transport.get_security_options().key_types = (algorithm,)
        transport.start_client(timeout=10)
        assert transport.get_remote_server_key().get_base64() == host.host_keys[kind].get_base64()
        transport.close()


@pytest.fixture
def bare_lab() -> Iterator[HostLab]:
    """A lab without kubelets: the kubelet process runs, nothing registers a Node."""
    with HostLab(kubelets=False) as lab:
        yield lab


def test_kube_log_runner_runs_the_kubelet_and_a_removed_klog_flag_stops_it(
    bare_lab: HostLab, admin_key_line: str
) -> None:
    host = bare_lab.add_host("WIN-KLR", authorized_keys=[admin_key_line])
    files = {"C:\\k\\kube-log-runner.exe": payload("kube-log-runner", "v1.34.4"),
             "C:\\k\\kubelet.exe": payload("kubelet", "v1.34.4"),
             "C:\\k\\kubelet.conf": KUBELET_CONF}
    _service(host, "kubelet", WMCO_KUBELET, files)
    host.scm.start("kubelet")  # kube-log-runner cannot create its log file: no directory
    _stopped_with(host, "kubelet", None, "")
    host.fs.make_directory("C:\\var\\log\\kubelet")
    host.scm.start("kubelet")
    assert wait_for(lambda: host.scm.state("kubelet") == c.ServiceState.RUNNING)
    images = {p.name for p in host.scm.processes()}
    assert {"kube-log-runner", "kubelet"} <= images  # both hold their executables
    host.scm.stop("kubelet")
    assert wait_for(lambda: host.scm.state("kubelet") == c.ServiceState.STOPPED)

    host.scm.config("kubelet", binary_path=WMCO_KUBELET + " --logtostderr=false")
    host.scm.start("kubelet")
    _stopped_with(host, "kubelet", "C:\\var\\log\\kubelet\\kubelet.log",
                  "failed to parse kubelet flag: unknown flag: --logtostderr")


def test_kube_proxy_needs_its_network_and_a_source_vip(
    host_lab: HostLab, admin_key_line: str
) -> None:
    host = host_lab.add_host("WIN-KP", authorized_keys=[admin_key_line])
    config = ("apiVersion: kubeproxy.config.k8s.io/v1alpha1\nkind: KubeProxyConfiguration\n"
              "mode: kernelspace\nwinkernel:\n  networkName: " + OVERLAY_NETWORK + "\n"
              "  enableDSR: true\nclusterCIDR: 10.132.0.0/23\n")
    proxy = "C:\\k\\kube-proxy.exe --config=C:\\k\\kube-proxy.conf --windows-service"
    _service(host, "kube-proxy", "C:\\k\\kube-proxy.exe --windows-service",
             {"C:\\k\\kube-proxy.exe": payload("kube-proxy", "v1.34.4"),
              "C:\\k\\kube-proxy.conf": config.encode()})
    host.scm.start("kube-proxy")  # no network name: NewProxier fails at once
    _stopped_with(host, "kube-proxy", None, "")
    host.scm.config("kube-proxy", binary_path=proxy)
    host.scm.start("kube-proxy")  # the network does not exist: it waits for it, forever
    assert wait_for(lambda: host.scm.state("kube-proxy") == c.ServiceState.RUNNING)
    assert "Unable to find HNS Network" in host_lab.programs.running(host).kube_proxy
    host.scm.stop("kube-proxy")
    assert wait_for(lambda: host.scm.state("kube-proxy") == c.ServiceState.STOPPED)
    host.hns.ensure_network(OVERLAY_NETWORK, "10.132.0.0/23", 4789)
    host.scm.start("kube-proxy")  # an overlay network without sourceVip
    _stopped_with(host, "kube-proxy", None, "")
    host.fs.write_bytes("C:\\k\\kube-proxy.conf",
                        config.replace("enableDSR: true", "enableDSR: true\n"
                                       "  sourceVip: 10.132.0.2").encode())
    host.scm.start("kube-proxy")
    assert wait_for(lambda: host_lab.programs.running(host).kube_proxy == "proxying")


def test_containerd_exporter_and_hybrid_overlay_refuse_what_their_code_refuses(
    host_lab: HostLab, admin_key_line: str
) -> None:
    host = host_lab.add_host("WIN-SVC", authorized_keys=[admin_key_line])
    _service(host, "containerd", "C:\\k\\containerd\\containerd.exe --config "
             "C:\\k\\containerd\\containerd_conf.toml --run-service",
             {"C:\\k\\containerd\\containerd.exe": payload("containerd", "v2.1.4")})
    host.scm.start("containerd")
    _stopped_with(host, "containerd", None, "")
    _service(host, "windows_exporter", "C:\\k\\windows_exporter.exe "
             "--collectors.enabled=cpu,cs,logical_disk",
             {"C:\\k\\windows_exporter.exe": payload("windows_exporter", "v0.31.3")})
    host.scm.start("windows_exporter")  # "cs" was removed in windows_exporter 0.31
    _stopped_with(host, "windows_exporter", None, "")
    _service(host, "hybrid-overlay-node", "C:\\k\\hybrid-overlay-node.exe --windows-service",
             {"C:\\k\\hybrid-overlay-node.exe": payload("hybrid-overlay-node", "v4.20.0")})
    host.scm.start("hybrid-overlay-node")  # no --node
    _stopped_with(host, "hybrid-overlay-node", None, "")


def test_shims_hold_their_executable_until_stop_process(
    win_client: SimClient, win_host: SimHost
) -> None:
    win_host.fs.make_directory("C:\\k\\containerd")
    win_host.fs.write_bytes(SHIM_IMAGE, payload("containerd-shim-runhcs-v1", "v2.1.4"))
    win_host.scm.add_process(SHIM_IMAGE)  # the shim of a DaemonSet pod drain left
    held = run(win_client, c.remove_path("C:\\k\\containerd"))
    assert held.exit_code == c.ERROR_ACCESS_DENIED
    c.check_done(run(win_client, c.stop_process("containerd-shim-runhcs-v1")))
    assert not win_host.scm.processes("containerd-shim-runhcs-v1")
    c.check_done(run(win_client, c.remove_path("C:\\k\\containerd")))
    c.check_done(run(win_client, c.stop_process("containerd-shim-runhcs-v1")))  # none left


def test_containers_feature_and_a_new_name_take_effect_at_the_next_boot(
    host_lab: HostLab, admin_key: paramiko.PKey, admin_key_line: str
) -> None:
    host = host_lab.add_host("WIN-FEAT", authorized_keys=[admin_key_line],
                             containers_feature=False)
    host.reboot_downtime = 0.3
    with SimClient(host.address, host.port, host.host_key_line, admin_key) as ssh:
        facts = c.parse_node_facts(run(ssh, c.node_facts()))
        assert facts.containers is False and facts.network is None
        c.check_done(run(ssh, c.enable_containers()))
        c.check_done(run(ssh, c.rename_computer("winworker-7x2")))
        assert c.parse_hostname(run(ssh, c.hostname())) == "WIN-FEAT"  # not yet
        c.parse_restart_computer(run(ssh, c.restart_computer()))
    assert wait_for(lambda: host.reboots == 1, 20) and host.wait_until_up(20)
    with SimClient(host.address, host.port, host.host_key_line, admin_key) as ssh:
        assert c.parse_hostname(run(ssh, c.hostname())) == "winworker-7x2"
        assert c.parse_node_facts(run(ssh, c.node_facts())).containers is True
        assert c.parse_inventory(run(ssh, c.inventory())).hostname == "winworker-7x2"
    with pytest.raises(ValueError):
        c.rename_computer("a-name-longer-than-15")


def test_vip_endpoint_and_removing_the_network(
    host_lab: HostLab, admin_key: paramiko.PKey, admin_key_line: str
) -> None:
    host = host_lab.add_host("WIN-HNS", authorized_keys=[admin_key_line])
    module = "C:\\k\\hns.psm1"
    with SimClient(host.address, host.port, host.host_key_line, admin_key) as ssh:
        no_module = run(ssh, c.vip_endpoint(module))
        assert no_module.exit_code == 1 and "no valid module file" in no_module.stderr
        host.fs.make_directory("C:\\k")
        host.fs.write_bytes(module, b"# hns.psm1\n")
        assert c.parse_vip_endpoint(run(ssh, c.vip_endpoint(module))) is None  # no network yet
        host.hns.ensure_network(OVERLAY_NETWORK, "10.132.4.0/23", 4789)
        made = c.parse_vip_endpoint(run(ssh, c.vip_endpoint(module)))
        # The network step reads the network it writes cni.conf and kube-proxy.conf from
        # with the VIP, in the one command: what node-facts says about it.
        assert made == c.HnsNetwork("10.132.4.0/23", host.address, "10.132.4.2")
        assert c.parse_vip_endpoint(run(ssh, c.vip_endpoint(module))) == made  # found again
        assert c.parse_node_facts(run(ssh, c.node_facts())).network == made
        c.parse_remove_hns_network(run(ssh, c.remove_hns_network(OVERLAY_NETWORK)))
    assert host.hns.network(OVERLAY_NETWORK) is None
    assert wait_for(lambda: host.connection_count() == 0)


def test_expand_archive_strips_leading_directories(
    win_client: SimClient, win_host: SimHost
) -> None:
    data = io.BytesIO()
    with tarfile.open(fileobj=data, mode="w:gz") as tar:
        for name in ("bin/containerd.exe", "bin/containerd-shim-runhcs-v1.exe"):
            body = payload(name, "v2.1.4")
            info = tarfile.TarInfo(name)
            info.size = len(body)
            tar.addfile(info, io.BytesIO(body))
    win_host.fs.make_directory("C:\\k\\containerd")
    win_host.fs.write_bytes("C:\\k\\containerd.tar.gz", data.getvalue())
    c.check_done(run(win_client, c.expand_archive("C:\\k\\containerd.tar.gz",
                                                  "C:\\k\\containerd", strip=1)))
    assert win_host.fs.is_file("C:\\k\\containerd\\containerd.exe")
    assert not win_host.fs.exists("C:\\k\\containerd\\bin")


def test_node_facts(host_lab: HostLab, admin_key: paramiko.PKey, admin_key_line: str) -> None:
    """The default route's address, the DNS suffix, the services described "OpenShift
    managed", and the cloud's host name, which only an instance metadata service knows."""
    host = host_lab.add_host("WIN-FACTS", authorized_keys=[admin_key_line],
                             dns_suffix="lab.local", cloud_hostname="ip-10-0-0-5.ec2.internal")
    host.scm.create("windows-instance-config-daemon", "C:\\k\\wicd.exe")
    host.scm.describe("windows-instance-config-daemon",
                      "OpenShift managed windows-instance-config-daemon")
    with SimClient(host.address, host.port, host.host_key_line, admin_key) as ssh:
        facts = c.parse_node_facts(run(ssh, c.node_facts(platform="aws")))
        assert (facts.node_ip, facts.domain, facts.managed, facts.cloud_hostname) == (
            host.address, "lab.local", ("windows-instance-config-daemon",),
            "ip-10-0-0-5.ec2.internal")
        host.cloud_hostname = None  # not a cloud instance: the metadata service is silent
        assert run(ssh, c.node_facts(platform="gcp")).exit_code == 1
        assert c.parse_node_facts(run(ssh, c.node_facts())).cloud_hostname is None


def test_a_malformed_inventory_is_a_value_error() -> None:
    for stdout in ("[]", '{"hostname": 3}', '{"hostname": "a", "osBuild": "10.0.1.2", '
                   '"freeBytes": null}', '{"hostname": "a", "osBuild": "10.0.1.2", '
                   '"freeBytes": 1, "services": {"x": "y"}}'):
        with pytest.raises(ValueError):
            c.parse_inventory(c.CommandResult(0, stdout, ""))
    for stdout in ("3", '{"network": "x"}', '{"managed": 5}'):
        with pytest.raises(ValueError):
            c.parse_node_facts(c.CommandResult(0, stdout, ""))


def test_key_line_of_each_type() -> None:
    assert key_line(paramiko.ECDSAKey.generate()).startswith("ecdsa-sha2-nistp256 ")


def test_trusted_roots_and_machine_variables(
    host_lab: HostLab, admin_key: paramiko.PKey, admin_key_line: str
) -> None:
    host = host_lab.add_host("WIN-TRUST", authorized_keys=[admin_key_line])
    host.reboot_downtime = 0.3
    bundle = "C:\\k\\ca-bundle.crt"
    with SimClient(host.address, host.port, host.host_key_line, admin_key) as ssh:
        missing = run(ssh, c.import_certificates(bundle))
        assert missing.exit_code == 1 and "Could not find file" in missing.stderr
        host.fs.make_directory("C:\\k")
        host.fs.write_bytes(bundle, _two_certificates().encode())
        assert c.parse_import_certificates(run(ssh, c.import_certificates(bundle))) == 2
        assert len(host.trusted_roots) == 2
        c.check_done(run(ssh, c.set_machine_environment(
            ["HTTP_PROXY", "NO_PROXY"], ["http://proxy:3128", ""])))
        assert host.machine_environment == {"HTTP_PROXY": "http://proxy:3128"}
        assert host.service_environment == {}  # services see it after a boot
        c.parse_restart_computer(run(ssh, c.restart_computer()))
    assert wait_for(lambda: host.reboots == 1 and host.up, 20)
    assert host.service_environment == {"HTTP_PROXY": "http://proxy:3128"}
    with pytest.raises(ValueError):
        c.set_machine_environment(["BAD NAME"], ["x"])


def _two_certificates() -> str:
    from syncer_lab.pki import CertificateAuthority, cert_pem

    return "".join(cert_pem(CertificateAuthority.create(f"test-{n}").cert).decode()
                   for n in (1, 2))


@pytest.mark.parametrize("stdout", [
    '{"subnet":"10.132.4.0/23","managementIP":"10.0.0.5","vip":"10.132.4.2 10.132.4.3"}',
    '{"subnet":"10.132.4.0/23","managementIP":"10.0.0.5","vip":""}',
    "10.132.4.2",
])
def test_a_vip_endpoint_answer_without_one_vip_is_an_error(stdout: str) -> None:
    """Two addresses on the endpoint's interface, none, or output that is not the JSON
    object: a ValueError naming the command, never a network with a wrong VIP."""
    with pytest.raises(ValueError, match="vip-endpoint"):
        c.parse_vip_endpoint(c.CommandResult(0, stdout + "\r\n", ""))
