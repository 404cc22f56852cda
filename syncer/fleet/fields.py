"""Reading one YAML mapping field by field, collecting problems with positions.

The compact kinds have fixed schemas. Instead of a schema language, each kind's reader
asks a :class:`Fields` for its fields by name and type (``fields.string("version",
required=True)``); every mistake becomes a problem at the line of the offending key or
value, and the read continues, so one pass reports everything. :meth:`Fields.finish`
then reports every field that was present but never asked for as unknown (with a
"did you mean" hint), which is how unknown fields and fields of another platform are
caught without listing them twice.

A ``null`` value counts as absent: ``rollout:`` with nothing under it means defaults.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterable
from typing import Any

from syncer.fleet.yamlnodes import (
    describe,
    is_bool,
    is_int,
    is_mapping,
    is_sequence,
    key_line,
    node_line,
    value_line,
)
from syncer.problems import Problem, Severity

Check = Callable[[str], "str | None"]


class Report:
    """The problems found in one fleet, in the order they were found."""

    def __init__(self) -> None:
        self.problems: list[Problem] = []
        self.errors = 0

    def error(self, file: str, line: int, message: str) -> None:
        self.problems.append(Problem(file, line, message))
        self.errors += 1

    def warning(self, file: str, line: int, message: str) -> None:
        self.problems.append(Problem(file, line, message, Severity.WARNING))

    def extend(self, problems: list[Problem]) -> None:
        self.problems.extend(problems)
        self.errors += sum(1 for p in problems if p.is_error)


class Fields:
    """Typed access to the fields of one mapping; see the module docstring."""

    __slots__ = ("_line", "_seen", "file", "node", "path", "report")

    def __init__(
        self, report: Report, file: str, node: Any, path: str = "", line: int | None = None
    ) -> None:
        self.report = report
        self.file = file
        self.node = node
        self.path = path  # "spec.rollout." style prefix for messages
        self._line = line  # line of the key holding this mapping, if any
        self._seen: set[Any] = set()

    # --- positions and raw access -------------------------------------------------
    @property
    def line(self) -> int:
        """The line that stands for this mapping: its key in the parent, or its start."""
        return self._line if self._line is not None else node_line(self.node)

    def line_of(self, key: str) -> int:
        """Line of the value of ``key`` (of the mapping itself when ``key`` is absent)."""
        return value_line(self.node, key, self.line)

    def key_line_of(self, key: str) -> int:
        return key_line(self.node, key, self.line)

    def error(self, key: str | None, message: str) -> None:
        self.report.error(self.file, *self._at(key, message))

    def warning(self, key: str | None, message: str) -> None:
        self.report.warning(self.file, *self._at(key, message))

    def _at(self, key: str | None, message: str) -> tuple[int, str]:
        """The line of ``key`` (of this mapping when None) and ``message`` named after it."""
        line = self.line_of(key) if key is not None else self.line
        name = f"{self.path}{key}" if key is not None else self.path.rstrip(".")
        return line, f"{name}: {message}" if name else message

    def has(self, key: str) -> bool:
        return self.node.get(key) is not None

    def raw(self, key: str) -> Any:
        self._seen.add(key)
        return self.node.get(key)

    def _missing(self, key: str) -> None:
        if key in self.node:
            self.error(key, "required field has no value")
        else:
            where = self.path.rstrip(".") or "document"
            self.report.error(
                self.file, self.line, f"{self.path}{key}: required field is missing in {where}"
            )

    # --- typed readers ------------------------------------------------------------
    def string(
        self,
        key: str,
        *,
        required: bool = False,
        default: str | None = None,
        check: Check | None = None,
        allow_int: bool = False,
        allow_empty: bool = False,
        shown: Callable[[str], str] = repr,
    ) -> str | None:
        """The string at ``key``; ``shown`` is how a refused value appears in the message
        (a URL's credentials are not repeated)."""
        value = self.raw(key)
        if value is None:
            if required:
                self._missing(key)
            return default
        if allow_int and is_int(value):
            value = str(value)
        if not isinstance(value, str):
            hint = ""
            if is_int(value) or isinstance(value, float) or is_bool(value):
                hint = f' (quote it: "{value}")' if not is_bool(value) else " (quote it)"
            self.error(key, f"must be a string, got {describe(value)}{hint}")
            return None
        value = str(value)
        if not value and not allow_empty:
            self.error(key, "must not be empty")
            return None
        if check is not None:
            reason = check(value)
            if reason:
                self.error(key, f"{shown(value)} {reason}")
                return None
        return value

    def integer(
        self,
        key: str,
        *,
        required: bool = False,
        default: int | None = None,
        minimum: int | None = None,
        maximum: int | None = None,
    ) -> int | None:
        value = self.raw(key)
        if value is None:
            if required:
                self._missing(key)
            return default
        if not is_int(value):
            self.error(key, f"must be an integer, got {describe(value)}")
            return None
        value = int(value)
        if minimum is not None and value < minimum:
            self.error(key, f"must be at least {minimum}, got {value}")
            return None
        if maximum is not None and value > maximum:
            self.error(key, f"must be at most {maximum}, got {value}")
            return None
        return value

    def boolean(self, key: str, *, default: bool) -> bool:
        value = self.raw(key)
        if value is None:
            return default
        if not is_bool(value):
            self.error(key, f"must be true or false, got {describe(value)}")
            return default
        return bool(value)

    def choice(
        self,
        key: str,
        options: Iterable[str],
        *,
        default: str | None = None,
        required: bool = False,
    ) -> str | None:
        options = tuple(options)
        value = self.string(key, required=required)
        if value is None:
            return None if self.has(key) else default
        if value not in options:
            self.error(key, f"must be one of {', '.join(options)}, got {value!r}")
            return None
        return value

    def mapping(self, key: str, *, required: bool = False) -> Fields | None:
        value = self.raw(key)
        if value is None:
            if required:
                self._missing(key)
            return None
        if not is_mapping(value):
            self.error(key, f"must be a mapping, got {describe(value)}")
            return None
        return Fields(
            self.report, self.file, value, f"{self.path}{key}.", key_line(self.node, key, self.line)
        )

    def sequence(self, key: str, *, required: bool = False) -> Any:
        value = self.raw(key)
        if value is None:
            if required:
                self._missing(key)
            return None
        if not is_sequence(value):
            self.error(key, f"must be a list, got {describe(value)}")
            return None
        return value

    def string_map(self, key: str, *, check_key: Check, check_value: Check) -> dict[str, str]:
        """A mapping of strings to strings (labels, annotations)."""
        sub = self.mapping(key)
        if sub is None:
            return {}
        result: dict[str, str] = {}
        for k, v in sub.node.items():
            sub._seen.add(k)
            if not isinstance(k, str):
                sub.error(str(k), f"key must be a string, got {describe(k)}")
                continue
            reason = check_key(k)
            if reason:
                self.report.error(self.file, key_line(sub.node, k), f"{sub.path}{k}: key {reason}")
                continue
            if not isinstance(v, str):
                sub.error(k, f"value must be a string, got {describe(v)} (quote it)")
                continue
            reason = check_value(v)
            if reason:
                sub.error(k, f"value {v!r} {reason}")
                continue
            result[k] = str(v)
        return result

    def finish(self, explain: Callable[[str], str | None] | None = None) -> None:
        """Report every field present but never read as unknown."""
        seen = self._seen
        if all(key in seen for key in self.node):
            return
        known = sorted(str(k) for k in self._seen)
        for key in self.node:
            if key in self._seen:
                continue
            name = str(key)
            message = explain(name) if explain else None
            if message is None:
                close = difflib.get_close_matches(name, known, n=1, cutoff=0.5)
                hint = f" (did you mean {close[0]}?)" if close else ""
                message = f"unknown field{hint}"
            self.report.error(self.file, key_line(self.node, key), f"{self.path}{name}: {message}")
