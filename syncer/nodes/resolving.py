"""DNS policy of the node stage: resolve every BYOH address, or change nothing.

WMCO's rule, kept exactly: if **any** address in ``windows-instances`` fails to resolve,
the round configures nothing and removes nothing, and says why. A DNS blip must never look
like "this host was removed" — that would deconfigure a healthy node — and configuring
only part of the list while the resolver is flaky is not worth the risk either.

- An IPv4 literal passes through without a lookup.
- A DNS name is resolved with :func:`socket.getaddrinfo`, IPv4 only (WMCO, and the product,
  do not support IPv6); the first address is the one used.
- An IPv6 literal is an error (not supported), reported like a failed lookup.

Reverse lookups (for CSR approval, see :mod:`syncer.nodes.csr`) use
:func:`socket.gethostbyaddr`. Both resolvers are plain callables so tests (and the demo)
inject their own.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

# name -> IPv4 addresses (first = preferred). Raises OSError when the name does not resolve.
Resolver = Callable[[str], list[str]]
# IPv4 address -> host names (primary first). Raises OSError when there is no PTR record.
ReverseResolver = Callable[[str], list[str]]


def is_ipv4(address: str) -> bool:
    try:
        ipaddress.IPv4Address(address)
    except ValueError:
        return False
    return True


def is_ipv6(address: str) -> bool:
    try:
        ipaddress.IPv6Address(address)
    except ValueError:
        return False
    return True


def resolve_ipv4(name: str) -> list[str]:
    """The IPv4 addresses of ``name`` (system resolver), de-duplicated, in resolver order."""
    infos = socket.getaddrinfo(name, None, family=socket.AF_INET, type=socket.SOCK_STREAM)
    out: list[str] = []
    for info in infos:
        address = str(info[4][0])
        if address not in out:
            out.append(address)
    if not out:
        raise OSError(f"{name} has no IPv4 address")
    return out


def reverse_lookup(address: str) -> list[str]:
    """Host names of ``address`` from its PTR record: primary name, then aliases."""
    primary, aliases, _ = socket.gethostbyaddr(address)
    return [primary, *[a for a in aliases if a != primary]]


@dataclass(frozen=True)
class Resolution:
    """The outcome of resolving one round's addresses.

    ``ips`` maps every address that resolved to its IPv4 address; ``failures`` maps every
    address that did not to the reason. :attr:`ok` is False when anything failed: then the
    round must configure and remove nothing (:attr:`reason` says why).
    """

    ips: Mapping[str, str] = field(default_factory=dict)
    failures: Mapping[str, str] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.failures

    @property
    def reason(self) -> str:
        if self.ok:
            return ""
        listed = "; ".join(f"{a}: {why}" for a, why in sorted(self.failures.items()))
        count = len(self.failures)
        noun = "address does" if count == 1 else "addresses do"
        return (
            f"{count} BYOH {noun} not resolve, so no host is configured or removed this "
            f"round (a DNS failure is never taken as a removal): {listed}"
        )


def resolve_all(addresses: Iterable[str], resolver: Resolver = resolve_ipv4) -> Resolution:
    """Resolve every address (see the module docstring for the rules)."""
    ips: dict[str, str] = {}
    failures: dict[str, str] = {}
    for address in addresses:
        if is_ipv4(address):
            ips[address] = address
            continue
        if is_ipv6(address):
            failures[address] = "IPv6 is not supported"
            continue
        try:
            found = [a for a in resolver(address) if is_ipv4(a)]
        except (OSError, UnicodeError) as err:
            failures[address] = _describe(err)
            continue
        if not found:
            failures[address] = "no IPv4 address"
            continue
        ips[address] = found[0]
    return Resolution(ips, failures)


def _describe(err: BaseException) -> str:
    if isinstance(err, socket.gaierror) and err.strerror:
        return err.strerror
    return str(err) or type(err).__name__
