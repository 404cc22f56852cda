"""Finding and parsing the YAML files of a fleet repository.

The fleet path is walked recursively. Hidden directories and files (``.git``,
``.github``, ``.syncer``...) are skipped, and only ``*.yaml`` / ``*.yml`` files are read;
files are visited in sorted order of their path relative to the fleet root, so the
document order (and with it every message and the render) does not depend on the file
system. A symbolic link that points outside the fleet root is refused: the controller
reads the repository with its own privileges and must not be tricked into publishing a
file from its host.

Each file is parsed with ruamel.yaml's round-trip loader (``YAML()``, the default) since
it keeps the line of every key and value. One parser instance is reused for every file:
constructing it is costlier than parsing a small file. A syntax error ends the parse of
its file and becomes one :class:`~syncer.problems.Problem` at the line ruamel reports;
documents before it in the same file are kept. Empty documents are dropped.

The fleet comes from whoever can open a pull request, so reading it is bounded before
anything else looks at it (every limit is one ``file:line`` problem, never a traceback
or an exhausted controller):

- a file over :data:`MAX_FILE_BYTES` is not read, and one with more than
  :data:`MAX_DOCUMENTS` documents is refused;
- aliases: loading keeps an aliased node shared, but converting it to plain values copies
  it at every use ("billion laughs": 460 bytes that expand to 10⁷ values). Each document's
  expanded size is counted over the shared nodes (linear in what is written) and a
  document whose aliases add more than :data:`MAX_ALIAS_EXPANSION` values is refused
  before anything is converted;
- nesting deeper than :data:`MAX_DEPTH` is refused (ruamel's composer recurses, so very
  deep input ends in ``RecursionError``, which is caught and located the same way);
- tags other than YAML's own (``!!python/object/apply:...``, ``!foo``) are refused on
  mappings and sequences as on scalars; text that is not UTF-8 is refused at its line;
- a symbolic link to a directory is an error, not a silent skip (its objects would
  otherwise vanish from the fleet and be pruned).

A long-running reader (the controller loads the fleet at every revision) passes a
:class:`ParseCache`: a file whose path and content are the same as at the previous load is
not parsed again — its documents and problems are reused (nothing downstream modifies a
parsed document; each is kept in the compact form of :func:`~syncer.fleet.yamlnodes.compact`,
a quarter of ruamel's). Parsing is nine tenths of loading a large fleet, and a push usually
changes one file of many. The cache holds only the files of the last load.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.comments import TaggedScalar
from ruamel.yaml.constructor import DuplicateKeyError
from ruamel.yaml.error import MarkedYAMLError, YAMLError
from ruamel.yaml.events import CollectionEndEvent, CollectionStartEvent
from ruamel.yaml.reader import ReaderError

from syncer.fleet.yamlnodes import compact, is_mapping, is_sequence, node_line
from syncer.problems import Problem

YAML_SUFFIXES = (".yaml", ".yml")
MAX_FILE_BYTES = 32 * 1024 * 1024  # 50,000 BYOH hosts take about 5 MiB
MAX_DOCUMENTS = 10_000  # per file
MAX_DEPTH = 64  # Kubernetes objects nest about 15 deep
MAX_ALIAS_EXPANSION = 100_000  # values aliases may add to one document
YAML_TAG_PREFIX = "tag:yaml.org,2002:"
PLAIN_TAGS = frozenset(YAML_TAG_PREFIX + t for t in ("map", "seq", "omap", "str"))


@dataclass(frozen=True)
class Document:
    """One non-empty YAML document of the fleet repository."""

    file: str  # path relative to the fleet root, with forward slashes
    line: int  # 1-based line where the document's content starts
    data: Any  # LineMap for a well-formed object; anything for a malformed one


@dataclass
class LoadedFiles:
    root: Path
    display_root: str = "."  # how problems name the fleet root itself
    files: list[str] = field(default_factory=list)
    documents: list[Document] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)

    @property
    def had_syntax_errors(self) -> bool:
        return bool(self.problems)


_Parsed = tuple[list[Document], list[Problem]]


class ParseCache:
    """The parsed files of the last load, by (name, sha256 of the text)."""

    def __init__(self) -> None:
        self._files: dict[tuple[str, str], _Parsed] = {}
        self._next: dict[tuple[str, str], _Parsed] = {}
        self.hits = 0

    def get(self, key: tuple[str, str]) -> _Parsed | None:
        found = self._files.get(key)
        if found is not None:
            self.hits += 1
            self._next[key] = found
        return found

    def put(self, key: tuple[str, str], parsed: _Parsed) -> None:
        self._next[key] = parsed

    def finish(self) -> None:
        """End a load: keep only what it used."""
        self._files, self._next = self._next, {}


def find_yaml_files(root: Path) -> list[str]:
    """Paths (relative to ``root``, POSIX separators) of the YAML files under ``root``."""
    return _walk(root)[0]


def _walk(root: Path) -> tuple[list[str], list[str]]:
    """(YAML files, symbolically linked directories), relative to ``root``, sorted."""
    found: list[str] = []
    linked: list[str] = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if not d.startswith(".")]
        rel_dir = os.path.relpath(dirpath, root)
        for name in dirnames:
            if os.path.islink(os.path.join(dirpath, name)):  # os.walk lists, never enters
                linked.append((name if rel_dir == "." else f"{rel_dir}/{name}")
                              .replace(os.sep, "/"))
        for name in filenames:
            if name.startswith(".") or not name.endswith(YAML_SUFFIXES):
                continue
            rel = name if rel_dir == "." else f"{rel_dir}/{name}"
            found.append(rel.replace(os.sep, "/"))
    return sorted(found), sorted(linked)


def _syntax_problem(file: str, err: YAMLError, text: str) -> Problem:
    if isinstance(err, ReaderError):  # a character YAML does not allow, by its position
        line = text[:err.position].count("\n") + 1
        return Problem(file, line, f"YAML syntax error: character #x{err.character:04x}: "
                                   f"{err.reason}")
    if isinstance(err, DuplicateKeyError):
        mark = err.problem_mark
        line = mark.line + 1 if mark is not None else 0
        # ruamel's own message is several lines with a link; say it in one.
        problem = (err.problem or "duplicate key").split(" with value ")[0]
        return Problem(file, line, f"YAML: {problem.replace('found ', '')}")
    if isinstance(err, MarkedYAMLError):
        mark = err.problem_mark or err.context_mark
        line = mark.line + 1 if mark is not None else 0
        parts = [p for p in (err.context, err.problem) if p]
        text = ": ".join(str(p).strip() for p in parts) or "invalid YAML"
        return Problem(file, line, f"YAML syntax error: {text}")
    return Problem(file, 0, f"YAML syntax error: {str(err).splitlines()[0]}")


class _Refused(Exception):
    def __init__(self, line: int, message: str) -> None:
        super().__init__(message)
        self.line, self.message = line, message


def _tag(node: Any) -> str | None:
    tag = getattr(node, "tag", None)
    value = getattr(tag, "value", tag)
    return value if isinstance(value, str) else None


def _check_tag(node: Any, line: int) -> None:
    tag = _tag(node)
    if tag is not None and tag not in PLAIN_TAGS:
        shown = "!!" + tag.removeprefix(YAML_TAG_PREFIX) if tag.startswith(
            YAML_TAG_PREFIX) else tag
        raise _Refused(line, f"custom YAML tag {shown} is not supported")


def _check_document(root: Any) -> None:
    """Refuse a document that nests too deep, carries a custom tag, or whose aliases expand
    it by more than the budget. One pass over the nodes as loaded, shared nodes once."""
    expanded: dict[int, tuple[int, int]] = {}  # id -> (values when expanded, depth)
    written = 0
    stack: list[tuple[Any, bool]] = [(root, False)]
    while stack:
        node, children_done = stack.pop()
        children = list(node.values()) if is_mapping(node) else node
        if not children_done:
            if id(node) in expanded:
                continue
            _check_tag(node, node_line(node))
            stack.append((node, True))
            stack.extend((c, False) for c in children
                         if (is_mapping(c) or is_sequence(c)) and id(c) not in expanded)
            continue
        size, depth = 1, 1
        for child in children:
            if is_mapping(child) or is_sequence(child):
                child_size, child_depth = expanded.get(id(child), (1, 1))
                size += child_size
                depth = max(depth, child_depth + 1)
            else:
                if isinstance(child, TaggedScalar):
                    _check_tag(child, node_line(node))
                elif isinstance(child, bytes):
                    raise _Refused(node_line(node), "binary YAML values are not supported")
                size += 1
        written += 1 + sum(1 for c in children if not (is_mapping(c) or is_sequence(c)))
        if depth > MAX_DEPTH:
            raise _Refused(node_line(node), f"nested more than {MAX_DEPTH} levels deep")
        expanded[id(node)] = (size, depth)
    total = expanded[id(root)][0]
    if total - written > MAX_ALIAS_EXPANSION:
        raise _Refused(node_line(root), f"YAML aliases expand this document to {total} values "
                       f"({total - written} more than written; at most "
                       f"{MAX_ALIAS_EXPANSION} allowed)")


def _too_deep_at(text: str) -> int:
    """The line where the nesting first exceeds :data:`MAX_DEPTH` (the parser's events do
    not recurse, unlike the composer)."""
    depth = 0
    try:
        for event in YAML().parse(text):
            if isinstance(event, CollectionStartEvent):
                depth += 1
                if depth > MAX_DEPTH:
                    return int(event.start_mark.line) + 1
            elif isinstance(event, CollectionEndEvent):
                depth -= 1
    except YAMLError:
        pass
    return 0


def _read(path: Path, rel: str) -> str | Problem:
    try:
        size = path.stat().st_size
        if size > MAX_FILE_BYTES:
            return Problem(rel, 0, f"file is {size} bytes; at most {MAX_FILE_BYTES} allowed")
        data = path.read_bytes()
    except OSError as err:
        return Problem(rel, 0, f"cannot read: {err.strerror or err}")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        line = data[:err.start].count(b"\n") + 1
        return Problem(rel, line, f"not valid UTF-8 (byte 0x{data[err.start]:02x}: {err.reason})")


def load_files(root: Path, files: list[str], prefix: str = "",
               linked_dirs: list[str] | None = None,
               cache: ParseCache | None = None) -> LoadedFiles:
    """Parse ``files`` (relative to ``root``) into documents and syntax problems.

    Documents and problems name files relative to ``root``; with ``prefix`` (the CLI
    passes the PATH the user typed) they are named ``<prefix>/<file>`` instead, so
    messages can be followed from the user's working directory. ``cache``: reuse what the
    previous load parsed of unchanged files.
    """
    yaml = YAML()
    prefix = prefix.rstrip("/")
    loaded = LoadedFiles(root=root, display_root=prefix or ".", files=list(files))
    for name in linked_dirs or ():
        rel = f"{prefix}/{name}" if prefix else name
        loaded.problems.append(Problem(rel, 0, "symbolic link to a directory: fleet files "
                                       "must be in the repository itself"))
    root_resolved = root.resolve()
    for name in files:
        path = root / name
        rel = f"{prefix}/{name}" if prefix else name
        if path.is_symlink():
            target = path.resolve()
            if not target.is_relative_to(root_resolved):
                loaded.problems.append(
                    Problem(rel, 0, "symbolic link points outside the fleet repository")
                )
                continue
        text = _read(path, rel)
        if isinstance(text, Problem):
            loaded.problems.append(text)
            continue
        key = (rel, hashlib.sha256(text.encode()).hexdigest())
        parsed = cache.get(key) if cache is not None else None
        if parsed is None:
            parsed = _parse(yaml, rel, text)
            if cache is not None:
                cache.put(key, parsed)
        loaded.documents.extend(parsed[0])
        loaded.problems.extend(parsed[1])
    if cache is not None:
        cache.finish()
    return loaded


def _parse(yaml: YAML, rel: str, text: str) -> _Parsed:
    """The documents of one file, and its problem (a file's parse stops at the first)."""
    documents: list[Document] = []
    count = 0
    try:
        for data in yaml.load_all(text):
            if data is None:
                continue
            count += 1
            if count > MAX_DOCUMENTS:
                raise _Refused(node_line(data, 1),
                               f"more than {MAX_DOCUMENTS} YAML documents in one file")
            if is_mapping(data) or is_sequence(data):
                _check_document(data)
                data = compact(data)
            elif isinstance(data, TaggedScalar):
                _check_tag(data, 1)
            documents.append(Document(rel, node_line(data, 1), data))
    except YAMLError as err:
        return documents, [_syntax_problem(rel, err, text)]
    except _Refused as err:
        return documents, [Problem(rel, err.line, err.message)]
    except RecursionError:
        return documents, [Problem(rel, _too_deep_at(text),
                                   f"nested more than {MAX_DEPTH} levels deep")]
    return documents, []


def load_path(path: Path, prefix: str = "", cache: ParseCache | None = None) -> LoadedFiles:
    """Find and parse every YAML file of the fleet at ``path`` (a directory or a file)."""
    if path.is_dir():
        files, linked = _walk(path)
        return load_files(path, files, prefix, linked, cache)
    return load_files(path.parent, [path.name], prefix, cache=cache)
