"""Go-style durations (``90s``, ``1h30m``, ``250ms``): one grammar, three contracts.

Kubernetes and Flux users write durations the way Go's ``time.ParseDuration`` reads them:
a sequence of decimal numbers, each with a unit (``ns``, ``us``/``µs``, ``ms``, ``s``,
``m``, ``h``). syncer reads them in three places, each with its own, deliberate contract:

- :func:`seconds` — the fleet repository (``spec.rollout.drainTimeout``): strict. A
  malformed value is a validation error, so there is no guessing: no bare numbers, no
  sign, no surrounding whitespace.
- :func:`seconds_or` — values read back from the ``syncer-fleet`` ConfigMap: lenient. The
  renderer only writes valid durations; anything else (a hand-edited ConfigMap) falls back
  to the default instead of stopping the node stage. Bare numbers are seconds.
- :func:`parse_flag` — options of ``syncer run`` and its config file: the units people
  type on a command line (``ms``, ``s``, ``m``, ``h``) or bare seconds; a mistake raises
  :class:`ValueError` with an example, which click reports as a usage error.

:func:`format_duration` writes the short form back (``1m``, ``4m30s``, ``250ms``).
"""

from __future__ import annotations

import re
from typing import Any

_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
_FLAG_UNITS = frozenset({"ms", "s", "m", "h"})
_PART = re.compile(r"(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)")


def _parse(text: str, units: frozenset[str] | None = None) -> float | None:
    """Seconds of ``text`` as a whole sequence of number+unit parts, or None."""
    pos, total = 0, 0.0
    for match in _PART.finditer(text):
        if match.start() != pos or (units is not None and match.group(2) not in units):
            return None
        total += float(match.group(1)) * _UNITS[match.group(2)]
        pos = match.end()
    return total if text and pos == len(text) else None


def seconds(text: str) -> float | None:
    """The fleet's contract: seconds of a Go duration, None when malformed."""
    return _parse(text)


def seconds_or(value: Any, default: float) -> float:
    """The ConfigMap's contract: seconds of a Go duration or a number; else ``default``."""
    if value is None or value == "" or isinstance(value, bool):
        return default
    if isinstance(value, int | float):
        return float(value)
    text = str(value).strip()
    try:
        return float(text)
    except ValueError:
        parsed = _parse(text)
    return default if parsed is None else parsed


def parse_flag(text: str) -> float:
    """The command line's contract: ``1m30s``, ``250ms`` or plain seconds; ValueError."""
    value = text.strip()
    try:
        return float(value)
    except ValueError:
        parsed = _parse(value, _FLAG_UNITS)
    if parsed is None:
        raise ValueError(f"not a duration: {text!r} (examples: 30s, 1m, 1h30m, 250ms)")
    return parsed


def format_duration(seconds: float) -> str:
    """The Go-style spelling of ``seconds``: ``1m``, ``4m30s``, ``250ms``."""
    if seconds < 1:
        return f"{round(seconds * 1000)}ms"
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    text = (f"{int(hours)}h" if hours else "") + (f"{int(minutes)}m" if minutes else "")
    return text + (f"{secs:g}s" if secs or not text else "")
