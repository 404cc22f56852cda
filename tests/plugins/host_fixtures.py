"""pytest fixtures for simulated Windows hosts (registered in ``tests/conftest.py``).

- ``admin_key`` (session): an Ed25519 private key (paramiko) for tests to authorise on
  hosts; ``admin_key_line`` is its public half in ``authorized_keys`` form.
- ``host_lab``: a started :class:`~syncer_lab.winhost.HostLab`, stopped after the test
  (every socket and thread it opened is closed); the test fails if any host received a
  command outside the vocabulary (mark a test ``allow_unexpected`` to send some on
  purpose).
- ``win_host``: one host in that lab (``WIN-TEST01``, cmd.exe default shell) that
  authorises ``admin_key``.
- ``win_client``: a :class:`~syncer_lab.winhost.SimClient` connected to ``win_host``
  with strict host-key checking.

Tests that need the kubelet or the machine-API simulator add the kube fixtures
(``control_plane``) themselves; see ``syncer_lab/winhost/kubelet.py``.
"""

from __future__ import annotations

from collections.abc import Iterator

import paramiko
import pytest

from syncer_lab.winhost import HostLab, SimClient, SimHost, key_line
from syncer_lab.winhost.host import generate_host_key


@pytest.fixture(scope="session")
def admin_key() -> paramiko.PKey:
    return generate_host_key("ed25519")


@pytest.fixture(scope="session")
def admin_key_line(admin_key: paramiko.PKey) -> str:
    return key_line(admin_key)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "allow_unexpected: the test sends commands outside the Windows vocabulary on purpose",
    )


@pytest.fixture
def host_lab(request: pytest.FixtureRequest) -> Iterator[HostLab]:
    """A started lab. At the end, every host must have received only vocabulary commands
    (``SimHost.unexpected_commands`` empty) unless the test is marked ``allow_unexpected``.
    """
    with HostLab() as lab:
        yield lab
        unexpected = [
            f"{host.name}: {cmd.unexpected}: {cmd.command[:200]!r}"
            for host in lab.hosts.values()
            for cmd in host.unexpected_commands
        ]
    if unexpected and not request.node.get_closest_marker("allow_unexpected"):
        pytest.fail("commands outside the vocabulary:\n" + "\n".join(unexpected),
                    pytrace=False)


@pytest.fixture
def win_host(host_lab: HostLab, admin_key_line: str) -> SimHost:
    return host_lab.add_host("WIN-TEST01", authorized_keys=[admin_key_line])


@pytest.fixture
def win_client(win_host: SimHost, admin_key: paramiko.PKey) -> Iterator[SimClient]:
    with SimClient(win_host.address, win_host.port, win_host.host_key_line, admin_key) as c:
        yield c
