"""Errors of the Git source, and the scrubbing that keeps credentials out of them.

Every failure talking to a remote (unreachable, authentication, host key, TLS, timeout)
or a rejected revision (bad signature, missing fleet path) surfaces as one
:class:`SourceError` whose message is a single line a user can act on. The text is built
from git's stderr, so it passes through :func:`scrub` first: URLs lose their userinfo and
any secret the caller knows (the token) is replaced by ``***``. No other text from git
reaches logs or exceptions.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from enum import StrEnum


class Reason(StrEnum):
    """What kind of failure a :class:`SourceError` is, for metrics and status."""

    CONFIG = "ConfigError"
    UNREACHABLE = "Unreachable"
    AUTH = "AuthenticationFailed"
    HOST_KEY = "HostKeyVerificationFailed"
    TLS = "TLSVerificationFailed"
    NOT_FOUND = "RefNotFound"
    TIMEOUT = "Timeout"
    VERIFICATION = "VerificationFailed"
    PATH = "PathNotFound"
    PUSH_REJECTED = "PushRejected"
    GIT = "GitError"


class SourceError(Exception):
    """A Git source or write-back failure, with a one-line, credential-free message."""

    def __init__(self, message: str, reason: Reason = Reason.GIT, sha: str | None = None):
        self.message = " ".join(message.split())
        self.reason = reason
        self.sha = sha
        super().__init__(self.message)


_USERINFO = re.compile(r"(?P<scheme>[a-zA-Z][a-zA-Z0-9+.-]*://)[^/@\s]*@")
_AUTH_HEADER = re.compile(r"(?i)(authorization:\s*)(\S+\s+)?\S+")


def scrub(text: str, secrets: Iterable[str] = ()) -> str:
    """Remove credentials from ``text``: URL userinfo, auth headers, and known secrets."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    text = _USERINFO.sub(lambda m: m.group("scheme") + "***@", text)
    return _AUTH_HEADER.sub(lambda m: m.group(1) + "***", text)


def redact_url(url: str) -> str:
    """The URL as it may appear in logs and status: without user or password."""
    return _USERINFO.sub(lambda m: m.group("scheme"), url)


# (pattern in git's stderr, reason, message template). The first match wins. ``{url}`` is
# the redacted remote URL; ``{line}`` the matching stderr line (scrubbed).
_CLASSIFY: list[tuple[re.Pattern[str], Reason, str]] = [
    (re.compile(r"Host key verification failed|REMOTE HOST IDENTIFICATION HAS CHANGED|"
                r"No .* host key is known"),
     Reason.HOST_KEY,
     "host key verification failed for {url}: the server's key is not in the known_hosts file"),
    (re.compile(r"Permission denied \(|Authentication failed|HTTP 40[13]|"
                r"could not read Username|terminal prompts disabled|invalid credentials"),
     Reason.AUTH, "authentication failed for {url}"),
    (re.compile(r"SSL certificate problem|server certificate verification failed|"
                r"unable to get local issuer|self.signed certificate|SSL_ERROR|"
                r"certificate verify failed"),
     Reason.TLS, "TLS certificate verification failed for {url}"),
    (re.compile(r"Timeout: the command|timed out|Operation timed out"),
     Reason.TIMEOUT, "timed out talking to {url}"),
    (re.compile(r"Could not resolve host|Connection refused|Connection reset|"
                r"Could not read from remote repository|does not appear to be a git repository|"
                r"unable to access|No route to host|Network is unreachable|"
                r"Failed to connect|HTTP 5\d\d|HTTP 404|not found|Connection closed"),
     Reason.UNREACHABLE, "remote {url} is unreachable: {line}"),
    (re.compile(r"couldn't find remote ref|invalid refspec"),
     Reason.NOT_FOUND, "{line}"),
]


def classify(stderr: str, url: str, secrets: Iterable[str] = ()) -> SourceError:
    """Turn git's stderr into one :class:`SourceError` with a clear, scrubbed reason."""
    secrets = list(secrets)
    clean = scrub(stderr, secrets)
    lines = [ln.strip() for ln in clean.splitlines() if ln.strip()]
    shown = redact_url(url)
    for pattern, reason, template in _CLASSIFY:
        for line in lines:
            if pattern.search(line):
                return SourceError(template.format(url=shown, line=_short(line)), reason)
    detail = _short(lines[-1]) if lines else "git failed without a message"
    return SourceError(f"git failed for {shown}: {detail}", Reason.GIT)


def _short(line: str) -> str:
    line = re.sub(r"^(fatal|error|remote|ssh): ", "", line)
    return line[:200]
