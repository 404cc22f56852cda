"""Syntax checks for the scalar formats the fleet contract uses.

Each ``check_*`` function takes a string and returns ``None`` when it is well formed,
or a short English reason (no trailing period) that the caller prefixes with the field
path. Regular expressions are compiled once at import; the checks run for every host
of a fleet of thousands.

Formats follow their definitions: Kubernetes names and labels as in
``k8s.io/apimachinery/pkg/util/validation``; BYOH addresses as WMCO accepts them
(IPv4 or DNS name, never IPv6; the host name part an RFC 1123 label); OpenSSH public
keys as ``<type> <base64 blob> [comment]`` where the blob starts with the type name;
durations as Go's ``time.ParseDuration``.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import re
import struct
from urllib.parse import urlsplit

_LABEL = r"[a-z0-9]([-a-z0-9]*[a-z0-9])?"
DNS_LABEL_RE = re.compile(_LABEL)
DNS_SUBDOMAIN_RE = re.compile(rf"{_LABEL}(\.{_LABEL})*")
_ANYCASE_LABEL_RE = re.compile(r"[A-Za-z0-9]([-A-Za-z0-9]*[A-Za-z0-9])?")
_DIGITS_AND_DOTS_RE = re.compile(r"[0-9.]+")
_OCTET = r"(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])"
_IPV4_RE = re.compile(rf"{_OCTET}(\.{_OCTET}){{3}}")  # dotted quad, no leading zeros
_QUALIFIED_NAME_RE = re.compile(r"[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?")
_SHA256_RE = re.compile(r"[0-9a-fA-F]{64}")
_WHITESPACE_RE = re.compile(r"\s")
_PERCENT_RE = re.compile(r"(100|[1-9]?[0-9])%")
_VERSION_RE = re.compile(r"[0-9A-Za-z][0-9A-Za-z._+-]{0,62}")
_WINDOWS_BUILD_RE = re.compile(r"10\.0\.[0-9]{5}")
_UUID_RE = re.compile(
    r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
)
_GIT_REF_BAD_RE = re.compile(r"[\x00-\x20~^:?*\[\\\x7f]|\.\.|@\{|//|/\.|\.lock(/|$)")

# Key types an OpenSSH host key line may carry (ssh-keyscan / known_hosts).
HOST_KEY_TYPES = frozenset(
    {
        "ssh-ed25519",
        "ssh-rsa",
        "ecdsa-sha2-nistp256",
        "ecdsa-sha2-nistp384",
        "ecdsa-sha2-nistp521",
        "sk-ssh-ed25519@openssh.com",
        "sk-ecdsa-sha2-nistp256@openssh.com",
    }
)


def check_dns_label(value: str) -> str | None:
    """RFC 1123 label: lowercase alphanumerics and '-', alphanumeric at both ends, <= 63."""
    if len(value) > 63:
        return "must be at most 63 characters"
    if not DNS_LABEL_RE.fullmatch(value):
        return (
            "must be an RFC 1123 label (lowercase letters, digits and '-', "
            "starting and ending with a letter or digit)"
        )
    return None


def check_dns_subdomain(value: str) -> str | None:
    """RFC 1123 subdomain: dot-separated labels, <= 253 characters (Kubernetes names)."""
    if len(value) > 253:
        return "must be at most 253 characters"
    if not DNS_SUBDOMAIN_RE.fullmatch(value):
        return (
            "must be a DNS subdomain name (lowercase letters, digits, '-' and '.', "
            "starting and ending with a letter or digit)"
        )
    return None


def check_label_key(key: str) -> str | None:
    """A Kubernetes label or annotation key: ``[prefix/]name``."""
    prefix, slash, name = key.rpartition("/")
    if slash:
        if not prefix:
            return "prefix before '/' must not be empty"
        reason = check_dns_subdomain(prefix)
        if reason:
            return f"prefix {prefix!r} {reason}"
    if not name:
        return "name must not be empty"
    if len(name) > 63:
        return "name part must be at most 63 characters"
    if not _QUALIFIED_NAME_RE.fullmatch(name):
        return (
            "name part must consist of letters, digits, '-', '_' or '.', "
            "starting and ending with a letter or digit"
        )
    return None


def check_label_value(value: str) -> str | None:
    if not value:
        return None
    if len(value) > 63:
        return "must be at most 63 characters"
    if not _QUALIFIED_NAME_RE.fullmatch(value):
        return (
            "must consist of letters, digits, '-', '_' or '.', "
            "starting and ending with a letter or digit"
        )
    return None


def check_sha256(value: str) -> str | None:
    if not _SHA256_RE.fullmatch(value):
        return "must be exactly 64 hexadecimal characters (a SHA-256 digest)"
    return None


def shown_url(value: str) -> str:
    """A URL for a message: quoted, its user info (credentials) replaced by ``***``."""
    scheme, sep, rest = value.partition("://")
    authority, slash, path = rest.partition("/")
    if sep and "@" in authority:
        value = f"{scheme}://***@{authority.rpartition('@')[2]}{slash}{path}"
    return repr(value)


def check_payload_url(value: str) -> str | None:
    """An ``https://``, ``http://`` or ``file://`` URL of a component payload."""
    if _WHITESPACE_RE.search(value):
        return "must not contain whitespace"
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 - raises ValueError for a malformed port
    except ValueError as err:
        return f"is not a valid URL ({err})"
    scheme = parts.scheme.lower()
    if scheme in ("https", "http"):
        if not parts.hostname:
            return "has no host"
        if parts.username is not None or parts.password is not None:
            return "must not contain credentials (they would be stored in Git)"
        return None
    if scheme == "file":
        if parts.netloc not in ("", "localhost"):
            return "file:// URL must name a local path (file:///path/to/file)"
        if not parts.path.startswith("/") or parts.path == "/":
            return "file:// URL must name an absolute path (file:///path/to/file)"
        return None
    if not scheme:
        return "must be a URL starting with https://, http:// or file://"
    return f"scheme {scheme}:// is not supported (use https://, http:// or file://)"


def check_archive_member(value: str) -> str | None:
    """A file inside a .tar.gz, as tar lists it: relative, forward slashes, no ``..``."""
    parts = value.split("/")
    if (not value or value.startswith("/") or "\\" in value or ".." in parts
            or any(not p for p in parts)):
        return ('must be the relative path of a file inside the archive, like '
                '"kubernetes/node/bin/kubelet.exe"')
    return None


def check_ipv4(value: str) -> str | None:
    if not _IPV4_RE.fullmatch(value):
        return "must be an IPv4 address like 172.30.0.10"
    return None


def check_ipv4_cidr(value: str) -> str | None:
    address, slash, prefix = value.partition("/")
    if not slash or not _IPV4_RE.fullmatch(address) or not prefix.isdigit() or not (
            0 < int(prefix) <= 32):
        return "must be an IPv4 network like 172.30.0.0/16"
    return None


def check_https_url(value: str) -> str | None:
    if _WHITESPACE_RE.search(value):
        return "must not contain whitespace"
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018
    except ValueError as err:
        return f"is not a valid URL ({err})"
    if parts.scheme != "https" or not parts.hostname:
        return "must be an https:// URL with a host, e.g. https://api-int.example.com:6443"
    return None


def check_percentage(value: str) -> str | None:
    if not _PERCENT_RE.fullmatch(value):
        return 'must be a whole percentage from 0% to 100%, like "25%"'
    return None


def check_version(value: str) -> str | None:
    if not _VERSION_RE.fullmatch(value):
        return (
            "must be 1-63 characters of letters, digits, '.', '_', '+' or '-', "
            "starting with a letter or digit"
        )
    return None


def is_windows_build(value: str) -> bool:
    return bool(_WINDOWS_BUILD_RE.fullmatch(value))


def is_uuid(value: str) -> bool:
    return bool(_UUID_RE.fullmatch(value))


def check_git_branch(value: str) -> str | None:
    if (
        not value
        or _GIT_REF_BAD_RE.search(value)
        or value.startswith(("/", "-", "."))
        or value.endswith(("/", "."))
        or value == "@"
    ):
        return "is not a valid Git branch name"
    return None


def check_username(value: str) -> str | None:
    """A BYOH user name: WMCO stores ``username=<user>`` and splits on the first '='."""
    if not value:
        return "must not be empty"
    if "=" in value:
        return "must not contain '='"
    if _WHITESPACE_RE.search(value):
        return "must not contain whitespace"
    if not value.isprintable():
        return "must not contain control characters"
    return None


def check_byoh_address(value: str) -> str | None:
    """An address WMCO can use: IPv4, or a DNS name whose host name is an RFC 1123 label."""
    if ":" in value:
        try:
            ipaddress.IPv6Address(value.split("%", 1)[0])
        except ValueError:
            return "is neither an IPv4 address nor a valid DNS name"
        return "is an IPv6 address; WMCO supports IPv4 and DNS names only"
    if _DIGITS_AND_DOTS_RE.fullmatch(value):
        # A regex rather than ipaddress: this runs for every host of large fleets.
        if not _IPV4_RE.fullmatch(value):
            return "is not a valid IPv4 address"
        first = int(value[: value.index(".")])
        if value in ("0.0.0.0", "255.255.255.255") or 224 <= first <= 239:
            return "is not a host address"
        return None
    if len(value) > 253:
        return "is too long for a DNS name (at most 253 characters)"
    labels = value.split(".")
    for label in labels:
        if not label:
            return "is not a valid DNS name (empty label)"
        if len(label) > 63 or not _ANYCASE_LABEL_RE.fullmatch(label):
            return f"is neither an IPv4 address nor a valid DNS name (bad label {label!r})"
    if len(labels) > 1 and labels[-1].isdigit():
        return "is not a valid DNS name (the top-level domain is numeric)"
    if not DNS_LABEL_RE.fullmatch(labels[0]):
        return (
            f"host name {labels[0]!r} is not an RFC 1123 label (lowercase letters, digits "
            "and '-'); WMCO would refuse the node's certificate request"
        )
    return None


def check_host_key(value: str) -> str | None:
    """An OpenSSH public host key line: ``<type> <base64> [comment]``."""
    parts = value.split(None, 2)
    if len(parts) < 2:
        return "must be an OpenSSH public key line like 'ssh-ed25519 AAAA...'"
    key_type, blob_b64 = parts[0], parts[1]
    if key_type not in HOST_KEY_TYPES:
        known = ", ".join(sorted(HOST_KEY_TYPES))
        return f"has unknown key type {key_type!r} (known: {known})"
    try:
        blob = base64.b64decode(blob_b64, validate=True)
    except (binascii.Error, ValueError):
        return "key data is not valid base64"
    if len(blob) < 4:
        return "key data is truncated"
    (length,) = struct.unpack(">I", blob[:4])
    if blob[4 : 4 + length] != key_type.encode():
        return f"key data is not a {key_type} key"
    return None
