"""Every vocabulary entry: product builder -> simulated host over SSH -> product parser."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import pytest
from winhelpers import payload, run, wait_for

from syncer.nodes.windows import vocabulary as c
from syncer_lab.nodelab import tar_gz
from syncer_lab.winhost import SimClient, SimHost
from syncer_lab.winhost.vocabulary import BODIES

DOC = Path(__file__).resolve().parents[2] / "docs" / "windows-commands.md"


def test_documentation_lists_exactly_the_vocabulary() -> None:
    documented = set(re.findall(r"^### `([a-z-]+)`", DOC.read_text(), re.M))
    assert documented == {e.name for e in c.VOCABULARY}


def test_simulator_recognises_every_powershell_entry_and_nothing_more() -> None:
    # sc-* entries share one script body ("sc"); raw entries need no body.
    product = {e.name for e in c.VOCABULARY} - {"shell-probe", "hostname"}
    product = {"sc" if n.startswith("sc-") else n for n in product} - {"remove-cni-state"}
    assert {b.name for b in BODIES} == product


def test_shell_probe_on_cmd_host(win_client: SimClient) -> None:
    result = run(win_client, c.shell_probe())
    assert result.exit_code == 1
    assert "'Get-Help' is not recognized as an internal or external command" in result.stderr
    assert c.parse_shell_probe(result) is c.Shell.CMD


def test_hostname(win_client: SimClient, win_host: SimHost) -> None:
    assert c.parse_hostname(run(win_client, c.hostname())) == "WIN-TEST01"


def test_os_build(win_client: SimClient) -> None:
    build = c.parse_os_build(run(win_client, c.os_build()))
    assert build == c.OsBuild(10, 0, 20348, 2340)
    assert build.label == "10.0.20348"


def test_inventory_in_one_round_trip(win_client: SimClient, win_host: SimHost) -> None:
    win_host.fs.make_directory("C:\\k")
    win_host.fs.write_bytes("C:\\k\\kubelet.exe", payload("kubelet", "v1.30.4"))
    win_host.scm.create("containerd", "C:\\k\\containerd\\containerd.exe", "auto")
    win_host.scm.create("kubelet", "C:\\k\\kubelet.exe --node-ip=1.2.3.4", "auto",
                        ["containerd"])
    win_host.scm.describe("kubelet", "OpenShift managed kubelet")
    before = len(win_host.commands)
    inv = c.parse_inventory(run(win_client, c.inventory(
        files=["C:\\k\\kubelet.exe", "C:\\k\\kube-proxy.exe"],
        services=["kubelet", "containerd", "kube-proxy", "sshd"],
        processes=["kubelet", "sshd"],
    )))
    assert len(win_host.commands) == before + 1
    assert inv.hostname == "WIN-TEST01"
    assert inv.os_build.label == "10.0.20348"
    assert inv.free_bytes > 10**9
    assert inv.files["C:\\k\\kubelet.exe"] == win_host.fs.sha256("C:\\k\\kubelet.exe").lower()
    assert inv.files["C:\\k\\kube-proxy.exe"] is None
    kubelet = inv.services["kubelet"]
    assert kubelet is not None
    assert kubelet.state is c.ServiceState.STOPPED
    assert kubelet.start_type is c.StartType.AUTO
    assert kubelet.binary_path == "C:\\k\\kubelet.exe --node-ip=1.2.3.4"
    assert kubelet.dependencies == ("containerd",)
    assert kubelet.description == "OpenShift managed kubelet"
    assert inv.services["kube-proxy"] is None
    sshd = inv.services["sshd"]
    assert sshd is not None and sshd.state is c.ServiceState.RUNNING
    assert inv.processes == {"kubelet": False, "sshd": True}


def test_inventory_of_nothing(win_client: SimClient) -> None:
    inv = c.parse_inventory(run(win_client, c.inventory()))
    assert (inv.files, inv.services, inv.processes) == ({}, {}, {})


def test_file_hash_and_test_path(win_client: SimClient, win_host: SimHost) -> None:
    win_host.fs.make_directory("C:\\k")
    win_host.fs.write_bytes("C:\\k\\kubelet.exe", b"kubelet v1.30.4\n")
    digest = c.parse_file_hash(run(win_client, c.file_hash("C:\\k\\kubelet.exe")))
    assert digest == hashlib.sha256(b"kubelet v1.30.4\n").hexdigest()
    assert c.parse_file_hash(run(win_client, c.file_hash("C:\\k\\missing.exe"))) is None
    # NTFS ignores case.
    assert c.parse_test_path(run(win_client, c.test_path("C:\\K\\KUBELET.EXE"))) is True
    assert c.parse_test_path(run(win_client, c.test_path("C:\\k"))) is True
    assert c.parse_test_path(run(win_client, c.test_path("C:\\nope"))) is False


def test_make_and_remove_directories(win_client: SimClient, win_host: SimHost) -> None:
    c.check_done(run(win_client, c.make_directory("C:\\var\\log\\kubelet")))
    c.check_done(run(win_client, c.make_directory("C:\\var\\log\\kubelet")))  # idempotent
    assert (win_host.drive / "var" / "log" / "kubelet").is_dir()
    win_host.fs.write_bytes("C:\\var\\log\\kubelet\\kubelet.log", b"log")
    c.check_done(run(win_client, c.remove_path("C:\\var\\log")))
    assert not (win_host.drive / "var" / "log").exists()
    c.check_done(run(win_client, c.remove_path("C:\\var\\log")))  # idempotent


def test_make_directory_over_a_file_fails_with_already_exists(
    win_client: SimClient, win_host: SimHost
) -> None:
    win_host.fs.write_bytes("C:\\k", b"a file")
    with pytest.raises(c.CommandFailed) as err:
        c.check_done(run(win_client, c.make_directory("C:\\k\\cni")), "make-directory")
    assert err.value.code == c.ERROR_ALREADY_EXISTS


def test_one_command_makes_several_directories_in_order(
    win_client: SimClient, win_host: SimHost
) -> None:
    c.check_done(run(win_client, c.make_directory("C:\\var\\log\\kubelet", "C:\\k\\cni\\config")))
    assert (win_host.drive / "var" / "log" / "kubelet").is_dir()
    assert (win_host.drive / "k" / "cni" / "config").is_dir()
    # a file in the way stops it there: the ones before are made, the ones after are not
    win_host.fs.write_bytes("C:\\opt", b"a file")
    with pytest.raises(c.CommandFailed) as err:
        c.check_done(run(win_client, c.make_directory("C:\\a", "C:\\opt\\x", "C:\\b")),
                     "make-directory")
    assert err.value.code == c.ERROR_ALREADY_EXISTS
    assert (win_host.drive / "a").is_dir() and not (win_host.drive / "b").exists()
    with pytest.raises(ValueError):
        c.make_directory()


def test_remove_cni_state(win_client: SimClient, win_host: SimHost) -> None:
    win_host.fs.make_directory("C:\\var\\lib\\cni\\networks\\cbr0")
    win_host.fs.write_bytes("C:\\var\\lib\\cni\\networks\\cbr0\\10.132.0.5", b"ipam")
    c.check_done(run(win_client, c.remove_cni_state()))
    assert not win_host.fs.exists("C:\\var\\lib\\cni")
    assert win_host.fs.exists("C:\\var\\lib")


def test_remove_refuses_a_drive_root() -> None:
    with pytest.raises(ValueError):
        c.remove_path("C:\\")


def test_move_file_replaces(win_client: SimClient, win_host: SimHost) -> None:
    win_host.fs.make_directory("C:\\k")
    win_host.fs.write_bytes("C:\\k\\kubelet.exe", payload("kubelet", "v1.29.0"))
    win_host.fs.write_bytes("C:\\k\\kubelet.exe.new", payload("kubelet", "v1.30.4"))
    c.check_done(run(win_client, c.move_file("C:\\k\\kubelet.exe.new", "C:\\k\\kubelet.exe")))
    assert win_host.fs.read_bytes("C:\\k\\kubelet.exe") == payload("kubelet", "v1.30.4")
    assert not win_host.fs.exists("C:\\k\\kubelet.exe.new")
    result = run(win_client, c.move_file("C:\\k\\gone", "C:\\k\\x"))
    assert result.exit_code == 1 and "does not exist" in result.stderr


def test_write_file(win_client: SimClient, win_host: SimHost) -> None:
    win_host.fs.make_directory("C:\\k")
    text = "apiVersion: v1\nkind: Config\n# it's fine: $HOME %PATH% `x` \"q\"\n"
    c.check_done(run(win_client, c.write_file("C:\\k\\kubelet.conf", text)))
    assert win_host.fs.read_bytes("C:\\k\\kubelet.conf") == text.encode()  # UTF-8, no BOM


def test_expand_archive(win_client: SimClient, win_host: SimHost) -> None:
    win_host.fs.make_directory("C:\\k\\containerd")
    archive = tar_gz({"containerd.exe": payload("containerd", "v1.7.20"),
                      "containerd-shim-runhcs-v1.exe": b"shim\n"})
    win_host.fs.write_bytes("C:\\k\\containerd.tar.gz", archive)
    c.check_done(run(win_client, c.expand_archive("C:\\k\\containerd.tar.gz", "C:\\k\\containerd")))
    assert win_host.fs.read_bytes("C:\\k\\containerd\\containerd.exe").startswith(b"containerd")
    missing = run(win_client, c.expand_archive("C:\\k\\nope.tar.gz", "C:\\k\\containerd"))
    assert missing.exit_code == 1 and "Error opening archive" in missing.stderr


def test_expand_archive_refuses_path_traversal(win_client: SimClient, win_host: SimHost) -> None:
    win_host.fs.make_directory("C:\\k\\cni")
    win_host.fs.write_bytes("C:\\k\\cni.tar.gz", tar_gz({"../../evil.exe": b"x"}))
    result = run(win_client, c.expand_archive("C:\\k\\cni.tar.gz", "C:\\k\\cni"))
    assert result.exit_code == 1
    assert not win_host.fs.exists("C:\\evil.exe")


def test_service_lifecycle_with_sc(win_client: SimClient, win_host: SimHost) -> None:
    win_host.fs.make_directory("C:\\k\\containerd")
    win_host.fs.write_bytes("C:\\k\\containerd\\containerd.exe", payload("containerd", "v1.7"))
    win_host.fs.write_bytes("C:\\k\\containerd\\containerd_conf.toml", b"version = 2\n")
    # A program no simulated program claims (programs.py): this is about sc.exe.
    win_host.fs.write_bytes("C:\\k\\network-proxy.exe", payload("kube-proxy", "v1.30.4"))
    ok = c.parse_sc_done
    ok(run(win_client, c.sc_create("containerd", "C:\\k\\containerd\\containerd.exe "
                                   "--config C:\\k\\containerd\\containerd_conf.toml")))
    ok(run(win_client, c.sc_create("kube-proxy", "C:\\k\\network-proxy.exe --v=2",
                                   start=c.StartType.DEMAND, depends_on=["containerd"],
                                   display_name="Kubernetes network proxy")))
    ok(run(win_client, c.sc_config("kube-proxy", start=c.StartType.AUTO)))
    ok(run(win_client, c.sc_description("kube-proxy", "OpenShift managed kube-proxy")))
    ok(run(win_client, c.sc_failure("kube-proxy")))
    qc = c.parse_sc_qc(run(win_client, c.sc_qc("kube-proxy")))
    assert qc == c.ServiceConfig("kube-proxy", c.StartType.AUTO, "C:\\k\\network-proxy.exe --v=2",
                                 ("containerd",), "Kubernetes network proxy")
    actions = win_host.scm.get("kube-proxy").failure_actions
    assert actions == "restart/10000/restart/10000/restart/10000"

    st = c.parse_sc_status(run(win_client, c.sc_start("containerd")), "sc-start")
    assert st.state is c.ServiceState.START_PENDING and st.pid
    assert wait_for(lambda: c.parse_sc_status(run(win_client, c.sc_query("containerd"))).state
                    is c.ServiceState.RUNNING)
    c.parse_sc_status(run(win_client, c.sc_start("kube-proxy")), "sc-start")
    assert wait_for(lambda: win_host.scm.state("kube-proxy") == 4)

    stopped = c.parse_sc_status(run(win_client, c.sc_stop("kube-proxy")), "sc-stop")
    assert stopped.state is c.ServiceState.STOP_PENDING
    assert wait_for(lambda: c.parse_sc_status(run(win_client, c.sc_query("kube-proxy"))).state
                    is c.ServiceState.STOPPED)
    ok(run(win_client, c.sc_delete("kube-proxy")))
    with pytest.raises(c.CommandFailed) as err:
        c.parse_sc_status(run(win_client, c.sc_query("kube-proxy")))
    assert err.value.code == c.ERROR_SERVICE_DOES_NOT_EXIST


def test_sc_config_clears_and_sets_dependencies(win_client: SimClient, win_host: SimHost) -> None:
    win_host.scm.create("kube-proxy", "C:\\k\\kube-proxy.exe", "auto", ["a", "b"])
    c.parse_sc_done(run(win_client, c.sc_config("kube-proxy", depends_on=[])))
    assert c.parse_sc_qc(run(win_client, c.sc_qc("kube-proxy"))).dependencies == ()
    c.parse_sc_done(run(win_client, c.sc_config("kube-proxy", depends_on=["x", "y"],
                                                 binary_path="C:\\k\\kp.exe --v=1")))
    qc = c.parse_sc_qc(run(win_client, c.sc_qc("kube-proxy")))
    assert qc.dependencies == ("x", "y") and qc.binary_path == "C:\\k\\kp.exe --v=1"


def test_delayed_auto_start_shows_in_qc(win_client: SimClient) -> None:
    c.parse_sc_done(run(win_client, c.sc_create("csi-proxy", "C:\\k\\csi-proxy.exe",
                                                start=c.StartType.DELAYED_AUTO)))
    qc = c.parse_sc_qc(run(win_client, c.sc_qc("csi-proxy")))
    assert qc.start_type is c.StartType.DELAYED_AUTO


def test_wait_process_exit(win_client: SimClient, win_host: SimHost) -> None:
    win_host.process_linger_seconds = 0.6
    win_host.fs.make_directory("C:\\k")
    win_host.fs.write_bytes("C:\\k\\network-proxy.exe", payload("kube-proxy", "v1.30.4"))
    win_host.fs.write_bytes("C:\\k\\node-agent.exe", payload("kubelet", "v1.30.4"))
    win_host.scm.create("kube-proxy", "C:\\k\\network-proxy.exe")
    win_host.scm.create("kubelet", "C:\\k\\node-agent.exe")
    win_host.scm.start("kube-proxy")
    win_host.scm.start("kubelet")
    assert wait_for(lambda: win_host.scm.state("kube-proxy") == win_host.scm.state("kubelet") == 4)
    # Running: a zero timeout names the ones still there (ERROR_TIMEOUT).
    assert c.parse_wait_process_exit(run(win_client, c.wait_process_exit(
        ["network-proxy", "node-agent", "absent"], 0))) == ["network-proxy", "node-agent"]
    win_host.scm.stop("kube-proxy")
    win_host.scm.stop("kubelet")
    # Both exits awaited in one command; they linger, then are gone.
    before = len(win_host.commands)
    assert c.parse_wait_process_exit(run(win_client, c.wait_process_exit(
        ["network-proxy", "node-agent"], 10))) == []
    assert len(win_host.commands) == before + 1
    assert win_host.scm.processes("network-proxy") == win_host.scm.processes("node-agent") == []
    # Nothing to wait for.
    assert c.parse_wait_process_exit(run(win_client, c.wait_process_exit(["kube-proxy"], 5))) == []
    with pytest.raises(ValueError):
        c.wait_process_exit([], 5)


def test_restart_computer(win_client: SimClient, win_host: SimHost) -> None:
    win_host.reboot_downtime = 0.3
    result = run(win_client, c.restart_computer())
    assert result.exit_code == c.NO_EXIT_STATUS  # the connection went away
    c.parse_restart_computer(result)
    assert wait_for(lambda: not win_host.up, 5)
    assert wait_for(lambda: win_host.up, 5)
    assert win_host.reboots == 1


def test_parsers_reject_garbage() -> None:
    with pytest.raises(ValueError):
        c.parse_file_hash(c.CommandResult(0, "hello\r\n"))
    with pytest.raises(ValueError):
        c.parse_test_path(c.CommandResult(0, "maybe\r\n"))
    with pytest.raises(ValueError):
        c.parse_inventory(c.CommandResult(0, "not json"))
    with pytest.raises(c.CommandFailed):
        c.parse_restart_computer(c.CommandResult(5, "", "Access is denied."))


def test_every_entry_has_a_test() -> None:
    """A guard: each vocabulary entry's builder is called by a simulated-host test."""
    source = "".join(p.read_text() for p in Path(__file__).parent.glob("test_*.py"))
    for entry in c.VOCABULARY:
        assert f"c.{entry.builder.__name__}(" in source, entry.name
