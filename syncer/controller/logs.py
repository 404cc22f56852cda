"""Structured logs for ``syncer run``: ``key=value`` text by default, JSON on request.

Code logs with the standard library and passes fields as ``extra``::

    log.info("reconcile finished", extra={"revision": sha, "duration": 1.2})

The two formatters here render the message plus those fields, either as one logfmt line
(``ts=... level=info logger=syncer.controller msg="reconcile finished" revision=ab12``)
or as one JSON object per line (``--log-format json``) for log pipelines. They are a few
lines each, which is why there is no python-json-logger dependency: both formats must
share the same field extraction and the same secret redaction, and the library would
cover only one of them.

Secrets never reach the output: :class:`Redactor` is a logging filter installed on the
root handler; :mod:`syncer.controller.credentials` registers every credential value it
reads, and the filter replaces any occurrence in the message, the arguments and the
extra fields with ``***``. The module is ``logs`` rather than ``logging`` so that it never
shadows the standard library inside the package.
"""

from __future__ import annotations

import json
import logging
import sys
import threading
from datetime import UTC, datetime
from typing import Any, TextIO

# Attributes every LogRecord has; anything else on a record came from ``extra``.
_STANDARD = set(vars(logging.LogRecord("x", 0, "x", 0, "x", None, None))) | {
    "message",
    "asctime",
    "taskName",
}
REDACTED = "***"


class Redactor(logging.Filter):
    """Replaces registered secret values in log records with ``***``."""

    MIN_LENGTH = 6  # shorter values would redact ordinary words

    def __init__(self) -> None:
        super().__init__()
        self._secrets: set[str] = set()
        self._lock = threading.Lock()

    def add(self, secret: str | bytes | None) -> None:
        if secret is None:
            return
        text = secret.decode("utf-8", "replace") if isinstance(secret, bytes) else secret
        values = {text.strip()} | {line.strip() for line in text.splitlines()}
        with self._lock:
            self._secrets |= {v for v in values if len(v) >= self.MIN_LENGTH}

    def redact(self, text: str) -> str:
        with self._lock:
            secrets = sorted(self._secrets, key=len, reverse=True)
        for secret in secrets:
            if secret in text:
                text = text.replace(secret, REDACTED)
        return text

    def filter(self, record: logging.LogRecord) -> bool:
        if not self._secrets:
            return True
        record.msg = self.redact(record.getMessage())
        record.args = None
        for key, value in list(vars(record).items()):
            if key not in _STANDARD and isinstance(value, str):
                setattr(record, key, self.redact(value))
        if record.exc_info and record.exc_info[1] is not None:
            record.exc_text = self.redact(logging.Formatter().formatException(record.exc_info))
            record.exc_info = None
        return True


REDACTOR = Redactor()


def _fields(record: logging.LogRecord) -> dict[str, Any]:
    return {k: v for k, v in vars(record).items() if k not in _STANDARD and not k.startswith("_")}


def _timestamp(record: logging.LogRecord) -> str:
    when = datetime.fromtimestamp(record.created, UTC)
    return when.strftime("%Y-%m-%dT%H:%M:%S.") + f"{when.microsecond // 1000:03d}Z"


class TextFormatter(logging.Formatter):
    """logfmt: ``key=value`` pairs, values quoted when they contain spaces or quotes."""

    def format(self, record: logging.LogRecord) -> str:
        pairs: list[tuple[str, Any]] = [
            ("ts", _timestamp(record)),
            ("level", record.levelname.lower()),
            ("logger", record.name),
            ("msg", record.getMessage()),
            *_fields(record).items(),
        ]
        line = " ".join(f"{k}={_logfmt(v)}" for k, v in pairs)
        error = self._error(record)
        return f"{line} error={_logfmt(error)}" if error else line

    def _error(self, record: logging.LogRecord) -> str:
        if record.exc_info:
            return self.formatException(record.exc_info)
        return record.exc_text or ""


class JSONFormatter(TextFormatter):
    """One JSON object per line: ts, level, logger, msg, the extra fields, error."""

    def format(self, record: logging.LogRecord) -> str:
        doc: dict[str, Any] = {
            "ts": _timestamp(record),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key, value in _fields(record).items():
            doc[key] = value
        error = self._error(record)
        if error:
            doc["error"] = error
        return json.dumps(doc, default=str, ensure_ascii=False)


def _logfmt(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    if text == "" or any(c in text for c in ' "=\n\t\\'):
        return json.dumps(text, ensure_ascii=False)
    return text


def setup(fmt: str = "text", level: str = "info", stream: TextIO | None = None) -> None:
    """Configure the root logger once for the process (idempotent)."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JSONFormatter() if fmt == "json" else TextFormatter())
    handler.addFilter(REDACTOR)
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())
    # Libraries that log at INFO about every request would drown the controller's lines.
    for noisy in ("urllib3", "kubernetes", "waitress", "watchdog", "git", "paramiko"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))
