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
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.constructor import DuplicateKeyError
from ruamel.yaml.error import MarkedYAMLError, YAMLError

from syncer.fleet.yamlnodes import node_line
from syncer.problems import Problem

YAML_SUFFIXES = (".yaml", ".yml")


@dataclass(frozen=True)
class Document:
    """One non-empty YAML document of the fleet repository."""

    file: str  # path relative to the fleet root, with forward slashes
    line: int  # 1-based line where the document's content starts
    data: Any  # CommentedMap for a well-formed object; anything for a malformed one


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


def find_yaml_files(root: Path) -> list[str]:
    """Paths (relative to ``root``, POSIX separators) of the YAML files under ``root``."""
    found: list[str] = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if not d.startswith(".")]
        rel_dir = os.path.relpath(dirpath, root)
        for name in filenames:
            if name.startswith(".") or not name.endswith(YAML_SUFFIXES):
                continue
            rel = name if rel_dir == "." else f"{rel_dir}/{name}"
            found.append(rel.replace(os.sep, "/"))
    found.sort()
    return found


def _syntax_problem(file: str, err: YAMLError) -> Problem:
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


def load_files(root: Path, files: list[str], prefix: str = "") -> LoadedFiles:
    """Parse ``files`` (relative to ``root``) into documents and syntax problems.

    Documents and problems name files relative to ``root``; with ``prefix`` (the CLI
    passes the PATH the user typed) they are named ``<prefix>/<file>`` instead, so
    messages can be followed from the user's working directory.
    """
    yaml = YAML()
    prefix = prefix.rstrip("/")
    loaded = LoadedFiles(root=root, display_root=prefix or ".", files=list(files))
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
        try:
            text = path.read_text(encoding="utf-8-sig")
        except UnicodeDecodeError as err:
            loaded.problems.append(Problem(rel, 0, f"not valid UTF-8 ({err.reason})"))
            continue
        except OSError as err:
            loaded.problems.append(Problem(rel, 0, f"cannot read: {err.strerror or err}"))
            continue
        try:
            for data in yaml.load_all(text):
                if data is None:
                    continue
                loaded.documents.append(Document(rel, node_line(data, 1), data))
        except YAMLError as err:
            loaded.problems.append(_syntax_problem(rel, err))
    return loaded


def load_path(path: Path, prefix: str = "") -> LoadedFiles:
    """Find and parse every YAML file of the fleet at ``path`` (a directory or a file)."""
    if path.is_dir():
        return load_files(path, find_yaml_files(path), prefix)
    return load_files(path.parent, [path.name], prefix)
