"""Problems found in user input, reported as ``file:line: message``.

Every stage that reads user input (the fleet repository, configuration files, CLI
arguments) reports what is wrong as :class:`Problem` values instead of raising on the
first one, so a user sees all errors of a revision at once. :class:`UserError` carries
problems up to the CLI, which prints them one per line and exits 1 without a traceback.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Severity(StrEnum):
    ERROR = "error"
    WARNING = "warning"


@dataclass(frozen=True, order=True)
class Problem:
    """One thing wrong (or suspicious) at a position in a file."""

    file: str
    line: int
    message: str
    severity: Severity = Severity.ERROR

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        prefix = "warning: " if self.severity is Severity.WARNING else ""
        return f"{where}: {prefix}{self.message}"

    @property
    def is_error(self) -> bool:
        return self.severity is Severity.ERROR


class UserError(Exception):
    """Input the user can fix. The CLI prints each problem on its own line and exits 1."""

    def __init__(self, problems: list[Problem] | str) -> None:
        if isinstance(problems, str):
            problems = [Problem("syncer", 0, problems)]
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))


def errors(problems: list[Problem]) -> list[Problem]:
    return [p for p in problems if p.is_error]
