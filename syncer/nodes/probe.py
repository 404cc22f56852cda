"""Probe: what is on a host, in (usually) one command.

The probe connects (verifying the host key, see :mod:`syncer.nodes.ssh`), then runs the
vocabulary's composite ``inventory`` entry once: host name, OS build, free space on C:,
the SHA-256 of every file that tells an installed version (:mod:`syncer.nodes.windows.layout`),
of every staged upload and of every managed file, and the configuration and state of
every managed service; and ``node-facts`` once: the node IP, the Containers feature, the
overlay network and its VIP, the DNS suffix, the ``OpenShift managed`` services, the
cloud's host name. (Two commands: one would pass cmd.exe's 8191-character limit.)

The default shell is detected with WMCO's test (``Get-Help`` succeeds only where
PowerShell is the default shell) the first time syncer meets a host, and then remembered
(``syncer.io/shell`` on the Node, and in the node status ConfigMap for hosts without
one), so a no-change pass costs one SSH connection and two commands per host. The
vocabulary's commands work under either shell; the shell is recorded for people and for
WMCO's BYOH prerequisite (cmd.exe), which status reports.

Failures are data, not exceptions: a :class:`ProbeResult` carries either
:class:`HostFacts` or what went wrong (``host-key`` for a changed host key, which stops
that host until an operator acts; ``unreachable``; ``probe`` for a command that failed).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

from syncer.nodes.hostkeys import HostKeyMismatch
from syncer.nodes.ssh import HostSession, SshError
from syncer.nodes.windows import vocabulary
from syncer.nodes.windows.sshlib import paramiko
from syncer.nodes.windows.vocabulary import (
    CommandFailed,
    HnsNetwork,
    Inventory,
    NodeFacts,
    ServiceInfo,
    Shell,
)


@dataclass(frozen=True)
class HostFacts:
    """What the probe read from a host."""

    address: str
    hostname: str
    os_build: str
    shell: Shell
    free_bytes: int
    files: dict[str, str | None]  # Windows path -> sha256 (lowercase) or None
    services: dict[str, ServiceInfo | None]
    node_ip: str | None = None  # the default route's IPv4
    containers: bool = True  # the Containers feature is enabled
    network: HnsNetwork | None = None  # the overlay network hybrid-overlay made
    domain: str = ""  # primary DNS suffix
    managed: tuple[str, ...] = ()  # services described "OpenShift managed…"
    cloud_hostname: str | None = None  # the cloud's host name (aws, gcp)

    @classmethod
    def from_inventory(cls, address: str, shell: Shell, inv: Inventory,
                       node: NodeFacts) -> HostFacts:
        return cls(
            address=address,
            hostname=inv.hostname,
            os_build=str(inv.os_build),
            shell=shell,
            free_bytes=inv.free_bytes,
            files=dict(inv.files),
            services=dict(inv.services),
            node_ip=node.node_ip,
            containers=node.containers,
            network=node.network,
            domain=node.domain,
            managed=node.managed,
            cloud_hostname=node.cloud_hostname,
        )

    def with_inventory(self, inv: Inventory) -> HostFacts:
        """These facts with a fresh inventory (host name, build, free space, files,
        services) and the node facts as they were."""
        return replace(self, hostname=inv.hostname, os_build=str(inv.os_build),
                       free_bytes=inv.free_bytes, files=dict(inv.files),
                       services=dict(inv.services))


@dataclass(frozen=True)
class ProbeResult:
    address: str
    facts: HostFacts | None = None
    error: str | None = None
    kind: str | None = None  # "host-key" | "unreachable" | "probe"
    commands: int = 0

    @property
    def ok(self) -> bool:
        return self.facts is not None


@dataclass(frozen=True)
class ProbeCommands:
    """The inventory and node-facts commands, built once for all the hosts of a round:
    they are the same for every host, and building one checks and quotes every path."""

    inventory: str
    node_facts: str

    @classmethod
    def build(cls, files: Sequence[str], services: Sequence[str],
              platform: str = "none") -> ProbeCommands:
        return cls(vocabulary.inventory(files, services),
                   vocabulary.node_facts(platform=platform))


def inventory(session: HostSession, commands: ProbeCommands, shell: Shell) -> HostFacts:
    """Run the inventory and node-facts commands on an open session."""
    inv = vocabulary.parse_inventory(session.run(commands.inventory))
    node = vocabulary.parse_node_facts(session.run(commands.node_facts))
    return HostFacts.from_inventory(session.address, shell, inv, node)


def detect_shell(session: HostSession) -> Shell:
    return vocabulary.parse_shell_probe(session.run(vocabulary.shell_probe()))


def probe_host(
    address: str,
    open_session: Callable[[], HostSession],
    commands: ProbeCommands,
    known_shell: Shell | None = None,
) -> ProbeResult:
    """Connect, detect the shell unless known, take the inventory, close."""
    try:
        with open_session() as session:
            shell = known_shell or detect_shell(session)
            facts = inventory(session, commands, shell)
            return ProbeResult(address, facts, commands=session.commands_run)
    except HostKeyMismatch as err:
        return ProbeResult(address, error=str(err), kind="host-key")
    except (SshError, paramiko.SSHException, OSError) as err:
        return ProbeResult(address, error=str(err) or type(err).__name__, kind="unreachable")
    except (CommandFailed, ValueError, KeyError) as err:
        return ProbeResult(address, error=f"probe failed: {err}", kind="probe")
