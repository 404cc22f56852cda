"""DNS policy: IPv4 literals pass, names resolve IPv4-only, any failure blocks the round."""

from __future__ import annotations

import socket

from syncer.nodes.resolving import resolve_all, resolve_ipv4, reverse_lookup


def test_ipv4_literals_need_no_lookup() -> None:
    def never(name: str) -> list[str]:
        raise AssertionError("resolver called for a literal")

    result = resolve_all(["10.0.0.1", "192.168.1.2"], never)
    assert result.ok and result.ips == {"10.0.0.1": "10.0.0.1", "192.168.1.2": "192.168.1.2"}


def test_names_resolve_to_their_first_ipv4() -> None:
    result = resolve_all(["win.lab"], lambda n: ["fe80::1", "10.0.0.7", "10.0.0.8"])
    assert result.ok and result.ips == {"win.lab": "10.0.0.7"}


def test_one_failure_blocks_everything_and_says_why() -> None:
    def resolver(name: str) -> list[str]:
        if name == "bad.lab":
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return ["10.0.0.9"]

    result = resolve_all(["good.lab", "bad.lab", "10.0.0.1", "::1"], resolver)
    assert not result.ok
    assert result.failures == {
        "bad.lab": "Name or service not known",
        "::1": "IPv6 is not supported",
    }
    assert "2 BYOH addresses do not resolve" in result.reason
    assert "bad.lab: Name or service not known" in result.reason
    assert "never taken as a removal" in result.reason


def test_real_system_resolver() -> None:
    assert "127.0.0.1" in resolve_ipv4("localhost")
    assert all(":" not in a for a in resolve_ipv4("localhost"))
    assert reverse_lookup("127.0.0.1")  # /etc/hosts gives localhost a PTR-like entry
