"""Default shells, the plain and encoded PowerShell forms, refusals, and hostile values."""

from __future__ import annotations

import base64

import paramiko
import pytest
from winhelpers import run, wait_for

from syncer.nodes.windows import vocabulary as c
from syncer_lab.winhost import HostLab, SimClient, SimHost

HOSTILE = [
    "'; Remove-Item C:\\ -Recurse; '",
    "%PATH% and %COMPUTERNAME%",
    "back`tick`n and `$(Get-Date)",
    "$(Remove-Item C:\\k -Recurse) $env:PATH ${x}",
    "smart \u2019quote\u2018 and \u201aother\u201b",
    "semi;colon & amp | pipe > out < in ^ caret",
    "@(array) @{hash} #comment",
]


@pytest.fixture
def ps_host(host_lab: HostLab, admin_key_line: str) -> SimHost:
    return host_lab.add_host("WIN-PS01", default_shell="powershell",
                             authorized_keys=[admin_key_line])


def test_powershell_default_shell_is_detected_and_everything_still_works(
    ps_host: SimHost, admin_key: paramiko.PKey
) -> None:
    with SimClient(ps_host.address, ps_host.port, ps_host.host_key_line, admin_key) as client:
        probe = run(client, c.shell_probe())
        assert probe.exit_code == 0 and "Windows PowerShell Help System" in probe.stdout
        assert c.parse_shell_probe(probe) is c.Shell.POWERSHELL
        assert c.parse_hostname(run(client, c.hostname())) == "WIN-PS01"
        assert c.parse_os_build(run(client, c.os_build())).build == 20348
        status = c.parse_sc_status(run(client, c.sc_query("sshd")))
        assert status.state is c.ServiceState.RUNNING
        # WMCO sends the bare script to a PowerShell host.
        bare = run(client, c.script([("path", "C:\\Windows")], c.TEST_PATH_BODY))
        assert c.parse_test_path(bare) is True
    assert ps_host.unexpected_commands == []


def test_plain_form_works_but_cmd_expands_percent_variables(
    win_client: SimClient, win_host: SimHost
) -> None:
    """WMCO's ``powershell.exe ... "<script>"`` form: cmd.exe rewrites %VARS% in the data."""
    win_host.fs.make_directory("C:\\k")
    script = c.script([("path", "C:\\k\\%COMPUTERNAME%.txt"), ("content", "x")],
                      c.WRITE_FILE_BODY).replace("\n", ";")
    plain = f'{c.POWERSHELL} "{script}"'
    c.check_done(run(win_client, plain))
    assert win_host.fs.exists("C:\\k\\WIN-TEST01.txt")  # expanded by cmd.exe!
    c.check_done(run(win_client, c.write_file("C:\\k\\%COMPUTERNAME%.txt", "x")))
    assert win_host.fs.exists("C:\\k\\%COMPUTERNAME%.txt")  # encoded: literal


@pytest.mark.parametrize("value", HOSTILE)
def test_hostile_values_arrive_as_literal_data(win_client: SimClient, win_host: SimHost,
                                               value: str) -> None:
    win_host.fs.make_directory("C:\\k")
    win_host.fs.write_bytes("C:\\k\\svc.exe", b"svc v1.0.0\n")
    # A service description (through sc.exe's command line) ...
    c.parse_sc_done(run(win_client, c.sc_create("svc", "C:\\k\\svc.exe")))
    c.parse_sc_done(run(win_client, c.sc_description("svc", value)))
    inv = c.parse_inventory(run(win_client, c.inventory(services=["svc"])))
    svc = inv.services["svc"]
    assert svc is not None and svc.description == value
    # ... file content (PowerShell only) ...
    c.check_done(run(win_client, c.write_file("C:\\k\\data.txt", value + "\nline 2\n")))
    assert win_host.fs.read_bytes("C:\\k\\data.txt").decode() == value + "\nline 2\n"
    # ... and a file name, where Windows allows the characters.
    if not any(ch in value for ch in '*?"<>|:') and "\\" not in value:
        path = f"C:\\k\\{value}.txt"
        c.check_done(run(win_client, c.write_file(path, "x")))
        assert c.parse_test_path(run(win_client, c.test_path(path))) is True
        assert c.parse_file_hash(run(win_client, c.file_hash(path))) is not None
    assert win_host.fs.exists("C:\\Windows\\System32") and win_host.fs.exists("C:\\k\\svc.exe")
    assert win_host.unexpected_commands == []


def test_values_that_cannot_be_passed_safely_are_refused() -> None:
    with pytest.raises(ValueError):
        c.sc_description("svc", 'say "hi"')  # PowerShell 5.1 would not escape the quote
    with pytest.raises(ValueError):
        c.sc_description("svc", "")  # PowerShell 5.1 drops empty arguments
    with pytest.raises(ValueError):
        c.sc_create("svc", "C:\\k\\a b\\svc.exe --dir=C:\\a b\\")  # trailing backslash
    with pytest.raises(ValueError):
        c.write_file("C:\\k\\x\ny.txt", "x")  # control character in a path
    with pytest.raises(ValueError):
        c.file_hash("C:\\k\\nul\x00.exe")
    with pytest.raises(ValueError):
        c.sc_query("kube*")  # wildcards in names
    with pytest.raises(ValueError):
        c.file_hash("k\\relative.exe")
    with pytest.raises(ValueError):
        c.file_hash("C:\\k\\..\\Windows\\x")
    with pytest.raises(c.CommandTooLong):
        c.inventory(files=[f"C:\\k\\{'x' * 200}{i}.exe" for i in range(40)])


@pytest.mark.allow_unexpected
def test_a_quoting_bug_is_refused_not_executed(win_client: SimClient, win_host: SimHost) -> None:
    """An unescaped quote changes the token stream: the simulator refuses the script."""
    broken = c.encode_powershell(
        c.PRELUDE + "$path='C:\\k\\it's'\n" + c.TEST_PATH_BODY + c.EPILOGUE)
    result = run(win_client, broken)
    assert result.exit_code == 1
    assert "#< CLIXML" in result.stderr and "is not recognized" in c.decode_clixml(result.stderr)
    assert win_host.unexpected_commands[-1].command == broken


@pytest.mark.allow_unexpected
def test_powershell_mangles_quotes_in_native_arguments(win_client: SimClient,
                                                       win_host: SimHost) -> None:
    """Why the builders refuse '"' for sc.exe: PowerShell 5.1 passes it unescaped."""
    argv = ["create", "mangled", "binPath=", 'C:\\k\\x.exe --name="a b"']
    result = run(win_client, c.powershell([("argv", argv)], c.SC_BODY))
    # sc.exe receives [..., 'binPath=', 'C:\\k\\x.exe --name=a', 'b']: a usage error.
    assert result.exit_code == c.ERROR_INVALID_COMMAND_LINE
    assert not win_host.scm.exists("mangled")


@pytest.mark.allow_unexpected
def test_commands_outside_the_vocabulary_fail_like_windows(win_client: SimClient,
                                                           win_host: SimHost) -> None:
    dir_ = run(win_client, "dir C:\\")
    assert dir_.exit_code == 1
    assert dir_.stderr == ("'dir' is not recognized as an internal or external command,\r\n"
                           "operable program or batch file.\r\n")
    script = "$ProgressPreference='SilentlyContinue'\nGet-ChildItem -LiteralPath 'C:\\'"
    encoded = base64.b64encode(script.encode("utf-16-le")).decode()
    gci = run(win_client, f"{c.POWERSHELL} -EncodedCommand {encoded}")
    assert gci.exit_code == 1
    assert "The term 'Get-ChildItem' is not recognized as the name of a cmdlet, function, " \
           "script file, or operable program." in c.decode_clixml(gci.stderr)
    piped = run(win_client, "hostname & whoami")
    assert piped.exit_code == 1
    too_long = run(win_client, "hostname " + "x" * 9000)
    assert too_long.exit_code == 1 and "The command line is too long." in too_long.stderr
    recorded = [cmd.command for cmd in win_host.unexpected_commands]
    assert recorded[:2] == ["dir C:\\", f"{c.POWERSHELL} -EncodedCommand {encoded}"]
    assert len(recorded) == 4
    assert all(cmd.unexpected for cmd in win_host.unexpected_commands)


def test_commands_are_recorded_decoded(win_client: SimClient, win_host: SimHost) -> None:
    run(win_client, c.sc_query("sshd"))
    record = win_host.commands[-1]
    assert record.entry == "sc" and record.summary == "sc query sshd"
    assert record.script is not None and record.script.startswith("$ProgressPreference=")
    assert wait_for(lambda: record.finished)
    assert record.exit_code == 0
