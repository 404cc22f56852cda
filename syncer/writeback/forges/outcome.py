"""Running a forge action without letting it fail the reconcile.

The reconciler applies the fleet whatever the forge does; what it owes the user is a
report of what happened to the preview. :func:`attempt` runs one forge action and returns
a :class:`ForgeOutcome` instead of raising: ``ok`` with the action's value, or the
:class:`~.errors.ForgeError` (or configuration error) that stopped it, already logged.
Programming errors (a ``TypeError`` in our own code) still raise: hiding them would only
turn a bug into a silent missing comment.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

from .errors import ForgeConfigError, ForgeError

T = TypeVar("T")

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ForgeOutcome(Generic[T]):
    """The result of one forge action, for the reconciler's report."""

    action: str
    value: T | None = None
    error: str | None = None
    #: Seconds after which the forge said a retry may succeed (rate limits), if it said.
    retry_after: float | None = None

    @property
    def ok(self) -> bool:
        return self.error is None

    def __str__(self) -> str:
        return f"{self.action}: ok" if self.ok else f"{self.action}: failed: {self.error}"


def attempt(action: str, fn: Callable[[], T]) -> ForgeOutcome[T]:
    """Run ``fn``; return its value, or the forge failure, as a :class:`ForgeOutcome`."""
    try:
        return ForgeOutcome(action, value=fn())
    except ForgeError as e:
        log.warning("%s: %s", action, e)
        return ForgeOutcome(action, error=str(e), retry_after=e.retry_after)
    except ForgeConfigError as e:
        log.warning("%s: %s", action, e)
        return ForgeOutcome(action, error=str(e))
