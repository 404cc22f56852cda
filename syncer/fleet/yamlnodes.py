"""Helpers for the values ruamel.yaml's round-trip loader produces.

The fleet is loaded with ruamel.yaml's round-trip loader because it is the one that
keeps positions: every ``CommentedMap``/``CommentedSeq`` knows the 0-based line of
itself, of each key and of each value. This module turns those into the 1-based lines
that problems carry, answers "is this a YAML boolean / integer / string" for the
round-trip scalar types (``ScalarBoolean`` is an ``int``, not a ``bool``; ``HexInt`` is
an ``int``), and converts a loaded tree to plain JSON-compatible Python values
(``dict``/``list``/``str``/``int``/``float``/``bool``/``None``) for rendering.

Everything here is on the hot path of validating thousands of hosts, so it stays
allocation-light: lookups go straight to ruamel's line-column store.
"""

from __future__ import annotations

import datetime
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


def node_line(node: Any, default: int = 0) -> int:
    """1-based line where a mapping or sequence starts, or ``default``."""
    lc = getattr(node, "lc", None)
    if lc is None or lc.line is None:
        return default
    return int(lc.line) + 1


def key_line(node: Any, key: Any, default: int = 0) -> int:
    """1-based line of ``key`` in a mapping (falls back to the mapping's line)."""
    try:
        return int(node.lc.data[key][0]) + 1
    except (AttributeError, KeyError, TypeError, IndexError):
        return node_line(node, default)


def value_line(node: Any, key: Any, default: int = 0) -> int:
    """1-based line of the value of ``key`` in a mapping (falls back to the key's line)."""
    try:
        return int(node.lc.data[key][2]) + 1
    except (AttributeError, KeyError, TypeError, IndexError):
        return key_line(node, key, default)


def item_line(node: Any, index: int, default: int = 0) -> int:
    """1-based line of item ``index`` of a sequence (falls back to the sequence's line)."""
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
    if isinstance(value, CommentedMap) or is_mapping(value):
        return {str(k): to_plain(v) for k, v in value.items()}
    if isinstance(value, CommentedSeq) or is_sequence(value):
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
