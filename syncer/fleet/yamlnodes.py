"""Helpers for the values ruamel.yaml's round-trip loader produces.

The fleet is loaded with ruamel.yaml's round-trip loader because it is the one that
keeps positions: every ``CommentedMap``/``CommentedSeq`` knows the 0-based line of
itself, of each key and of each value. This module turns those into the 1-based lines
that problems carry, answers "is this a YAML boolean / integer / string" for the
round-trip scalar types (``ScalarBoolean`` is an ``int``, not a ``bool``; ``HexInt`` is
an ``int``), and converts a loaded tree to plain JSON-compatible Python values
(``dict``/``list``/``str``/``int``/``float``/``bool``/``None``) for rendering.

A loaded document is kept for as long as its file is unchanged (the controller's parse
cache), so its containers are made compact once parsed (:func:`compact`): ruamel's
``CommentedMap``/``CommentedSeq`` carry a comment store, a line-column store of four-item
lists and an ordered-dict layer; :class:`LineMap` and :class:`LineSeq` are a plain
``dict``/``list`` with the start line and one array of the key, value or item lines.
Scalars are kept as ruamel made them, but a short string is interned: the same keys and
values repeat in every object. A small ConfigMap takes 7.9 KB as loaded, 1.8 KB compact.

Everything here is on the hot path of validating thousands of hosts, so it stays
allocation-light: line lookups read one array slot.
"""

from __future__ import annotations

import datetime
import sys
from array import array
from collections.abc import Mapping
from typing import Any

from ruamel.yaml.comments import CommentedMap, CommentedSeq, TaggedScalar
from ruamel.yaml.scalarbool import ScalarBoolean
from ruamel.yaml.scalarfloat import ScalarFloat


class UnsupportedValue(Exception):
    """A YAML value that has no JSON form (custom tags, binary data)."""

    def __init__(self, description: str) -> None:
        super().__init__(description)
        self.description = description


NO_LINE = -1
_SCAN = 16  # mappings up to this many keys are scanned for a key's position
_SHARED_LENGTH = 64  # strings up to this long are interned


class LineMap(dict[Any, Any]):
    """A loaded mapping: its 0-based start ``line`` and, for the n-th key in order, the
    0-based lines of the key (``lines[2n]``) and of its value (``lines[2n + 1]``);
    :data:`NO_LINE` where the loader had none (keys merged in with ``<<``)."""

    __slots__ = ("line", "lines", "positions")

    def __init__(self, line: int, lines: array[int]) -> None:
        super().__init__()
        self.line = line
        self.lines = lines
        self.positions: dict[Any, int] | None = None  # key -> n, for large mappings

    def position(self, key: Any) -> int:
        """The n of ``key`` (its order among the keys), or -1. A small mapping is scanned;
        a large one gets an index at its first lookup, so a lookup per key stays linear."""
        if len(self) <= _SCAN:
            for n, candidate in enumerate(self):
                if candidate == key:
                    return n
            return -1
        if self.positions is None:
            self.positions = {k: n for n, k in enumerate(self)}
        return self.positions.get(key, -1)


class LineSeq(list[Any]):
    """A loaded sequence: its 0-based start ``line`` and each item's 0-based line."""

    __slots__ = ("line", "lines")

    def __init__(self, line: int, lines: array[int]) -> None:
        super().__init__()
        self.line = line
        self.lines = lines


def compact(node: Any, memo: dict[int, Any] | None = None) -> Any:
    """``node`` with every ruamel mapping and sequence replaced by a :class:`LineMap` or
    :class:`LineSeq` (same keys, items and lines). A node shared through an alias stays
    shared (``memo``), so the result is as large as what was written."""
    if not isinstance(node, (CommentedMap, CommentedSeq)):
        return node
    if memo is None:
        memo = {}
    done = memo.get(id(node))
    if done is not None:
        return done
    lc = node.lc
    start = NO_LINE if lc.line is None else int(lc.line)
    known = lc.data or {}
    if isinstance(node, CommentedMap):
        mapping = LineMap(start, array("i"))
        memo[id(node)] = mapping
        for key, value in node.items():
            at = known.get(key)
            mapping.lines.append(NO_LINE if at is None else int(at[0]))
            mapping.lines.append(NO_LINE if at is None else int(at[2]))
            mapping[_shared(key)] = _shared(compact(value, memo))
        return mapping
    sequence = LineSeq(start, array("i", (int(known[i][0]) if i in known else NO_LINE
                                          for i in range(len(node)))))
    memo[id(node)] = sequence
    sequence.extend(_shared(compact(item, memo)) for item in node)
    return sequence


def _shared(value: Any) -> Any:
    """One copy of each short string for every document that has it (``apiVersion``,
    ``v1``, a namespace's name...): ruamel makes a new one at every occurrence."""
    if value.__class__ is str and len(value) <= _SHARED_LENGTH:
        return sys.intern(value)
    return value


def _line(value: int, default: int) -> int:
    return default if value == NO_LINE else value + 1


def node_line(node: Any, default: int = 0) -> int:
    """1-based line where a mapping or sequence starts, or ``default``."""
    cls = node.__class__
    if cls is LineMap or cls is LineSeq:
        return _line(node.line, default)
    lc = getattr(node, "lc", None)
    if lc is None or lc.line is None:
        return default
    return int(lc.line) + 1


def key_line(node: Any, key: Any, default: int = 0) -> int:
    """1-based line of ``key`` in a mapping (falls back to the mapping's line)."""
    if node.__class__ is LineMap:
        index = node.position(key)
        if index < 0:
            return node_line(node, default)
        return _line(node.lines[2 * index], node_line(node, default))
    try:
        return int(node.lc.data[key][0]) + 1
    except (AttributeError, KeyError, TypeError, IndexError):
        return node_line(node, default)


def value_line(node: Any, key: Any, default: int = 0) -> int:
    """1-based line of the value of ``key`` in a mapping (falls back to the key's line)."""
    if node.__class__ is LineMap:
        index = node.position(key)
        if index < 0:
            return node_line(node, default)
        return _line(node.lines[2 * index + 1], key_line(node, key, default))
    try:
        return int(node.lc.data[key][2]) + 1
    except (AttributeError, KeyError, TypeError, IndexError):
        return key_line(node, key, default)


def item_line(node: Any, index: int, default: int = 0) -> int:
    """1-based line of item ``index`` of a sequence (falls back to the sequence's line)."""
    if node.__class__ is LineSeq:
        if 0 <= index < len(node.lines):
            return _line(node.lines[index], node_line(node, default))
        return node_line(node, default)
    try:
        return int(node.lc.data[index][0]) + 1
    except (AttributeError, KeyError, TypeError, IndexError):
        return node_line(node, default)


def is_bool(value: Any) -> bool:
    return value.__class__ is bool or isinstance(value, ScalarBoolean)


def is_int(value: Any) -> bool:
    return isinstance(value, int) and not is_bool(value)


def is_mapping(value: Any) -> bool:
    return isinstance(value, Mapping)


def is_sequence(value: Any) -> bool:
    return isinstance(value, list)


def describe(value: Any) -> str:
    """A short YAML-ish name for the type of ``value``, for error messages."""
    if value is None:
        return "null"
    if is_bool(value):
        return "a boolean"
    if is_int(value):
        return "an integer"
    if isinstance(value, float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if is_mapping(value):
        return "a mapping"
    if is_sequence(value):
        return "a list"
    if isinstance(value, datetime.date):
        return "a date"
    return type(value).__name__


def to_plain(value: Any) -> Any:
    """Convert a round-trip loaded value to plain JSON-compatible Python values.

    Raises :class:`UnsupportedValue` for values that have no JSON form.
    """
    if value is None or value.__class__ in (str, int, bool, float):
        return value
    if is_mapping(value):
        return {str(k): to_plain(v) for k, v in value.items()}
    if is_sequence(value):
        return [to_plain(v) for v in value]
    if isinstance(value, ScalarBoolean):
        return bool(value)
    if isinstance(value, str):
        return str(value)
    if isinstance(value, int):
        return int(value)
    if isinstance(value, (ScalarFloat, float)):
        return float(value)
    if isinstance(value, datetime.datetime):
        return value.isoformat()
    if isinstance(value, datetime.date):
        return value.isoformat()
    if isinstance(value, TaggedScalar):
        if value.tag.value == "tag:yaml.org,2002:str":  # !!str 5: the string "5"
            return str(value.value)
        raise UnsupportedValue(f"custom YAML tag {value.tag} is not supported")
    if isinstance(value, bytes):
        raise UnsupportedValue("binary YAML values are not supported")
    raise UnsupportedValue(f"unsupported YAML value of type {type(value).__name__}")
