"""Simulated Windows hosts behind real SSH servers (test infrastructure and demo lab).

``HostLab`` runs many ``SimHost``s in one process, each a paramiko SSH server on its own
loopback address that behaves like Windows OpenSSH with cmd.exe as the default shell and
interprets exactly the command vocabulary of ``syncer/nodes/windows/vocabulary.py``
(``docs/windows-commands.md``): a simulated drive, service control manager, kubelet,
reboots and fault injection. Module map: ``lab`` (hosts, sockets, timers), ``host`` (one
machine), ``ssh`` (server and SFTP), ``shell`` (cmd.exe / powershell.exe command lines),
``pwsh`` (tokenizer, native argument passing), ``vocabulary`` (the recognised scripts),
``sc`` (sc.exe), ``scm`` (services, processes), ``filesystem`` (the C: drive), ``faults``,
``kubelet``, ``client`` (a strict paramiko client for tests), ``win32`` (error codes).
"""

from syncer_lab.winhost.client import RunResult, SimClient
from syncer_lab.winhost.host import AUTHORIZED_KEYS, ReceivedCommand, SimHost, key_line
from syncer_lab.winhost.lab import HostLab

__all__ = [
    "AUTHORIZED_KEYS",
    "HostLab",
    "ReceivedCommand",
    "RunResult",
    "SimClient",
    "SimHost",
    "key_line",
]
