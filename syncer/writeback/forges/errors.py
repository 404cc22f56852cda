"""Errors raised by the forge clients.

A forge is someone else's service: it goes down, rate-limits us, rejects a token that was
rotated. None of that may stop a reconcile, so every failure of a forge call surfaces as one
exception type, :class:`ForgeError`, which the reconciler catches (or avoids with
:func:`syncer.writeback.forges.attempt`) and reports. Its text names the forge, the HTTP
method, the API path, the status and the API's own error message, so an operator can act
on it; it never contains the token (:func:`redact` scrubs every secret the client knows
from anything that goes into a message).
"""

from __future__ import annotations

from collections.abc import Iterable

REDACTED = "***"


def redact(text: str, secrets: Iterable[str]) -> str:
    """Replace every occurrence of each (non-trivial) secret in ``text``."""
    for secret in secrets:
        if secret and len(secret) >= 4:
            text = text.replace(secret, REDACTED)
    return text


class ForgeConfigError(ValueError):
    """The forge configuration is unusable (unknown provider, missing token, bad URL)."""


class ForgeError(Exception):
    """A forge API call failed after the retries the policy allows.

    ``status`` is the HTTP status of the last response (``None`` when no response came:
    connection refused, timeout). ``retry_after`` is set when the forge asked us to wait
    longer than the policy's ``max_wait``: the caller may try again after that many seconds.
    ``ambiguous`` marks a failure of a non-idempotent request after which the server may
    or may not have acted (5xx or a read timeout on a POST), so the caller must look before
    it tries again.
    """

    def __init__(
        self,
        forge: str,
        method: str,
        path: str,
        status: int | None,
        message: str,
        *,
        attempts: int = 1,
        retry_after: float | None = None,
        ambiguous: bool = False,
        rate_limited: bool = False,
    ) -> None:
        self.forge = forge
        self.method = method
        self.path = path
        self.status = status
        self.message = message
        self.attempts = attempts
        self.retry_after = retry_after
        self.ambiguous = ambiguous
        self.rate_limited = rate_limited
        super().__init__(self._text())

    def _text(self) -> str:
        what = f"HTTP {self.status}" if self.status is not None else "no response"
        text = f"{self.forge}: {self.method} {self.path} failed: {what}"
        if self.message:
            text += f": {self.message}"
        if self.rate_limited and self.retry_after is not None:
            text += f" (rate limited; retry after {self.retry_after:.0f}s)"
        plural = "s" if self.attempts != 1 else ""
        return f"{text} [{self.attempts} attempt{plural}]"

    def __reduce__(self) -> tuple[object, ...]:  # keep pickling (multiprocessing) working
        return (
            _rebuild,
            (
                self.forge,
                self.method,
                self.path,
                self.status,
                self.message,
                self.attempts,
                self.retry_after,
                self.ambiguous,
                self.rate_limited,
            ),
        )


def _rebuild(
    forge: str,
    method: str,
    path: str,
    status: int | None,
    message: str,
    attempts: int,
    retry_after: float | None,
    ambiguous: bool,
    rate_limited: bool,
) -> ForgeError:
    return ForgeError(
        forge,
        method,
        path,
        status,
        message,
        attempts=attempts,
        retry_after=retry_after,
        ambiguous=ambiguous,
        rate_limited=rate_limited,
    )
