"""Comment bodies: the hidden marker, and cutting a body to a forge's size limit.

One preview comment per pull request is found again by a hidden HTML comment,
``<!-- syncer:<marker> -->``, on the body's first line (Argo CD and most review bots do
the same). Keeping it first means truncation can never cut it off.

Forges reject bodies over their limit (GitHub: 65,536 characters, GitLab: 1,000,000), so
a long plan is cut at a line boundary and ends with a note saying how many lines were
left out and where the full plan is. A cut inside a fenced code block or a ``<details>``
section would leave the rest of the page swallowed by the open block, so the cut closes
every block that is open at that point before the note. Limits count characters (Unicode
code points), as the forges do.
"""

from __future__ import annotations

import re

_MARKER_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:/-]*$")
_FENCE_RE = re.compile(r"^ {0,3}(`{3,}|~{3,})")
_DETAILS_OPEN_RE = re.compile(r"<details(\s[^>]*)?>", re.IGNORECASE)
_DETAILS_CLOSE_RE = re.compile(r"</details\s*>", re.IGNORECASE)

TRUNCATION_NOTE = "… truncated: {n} more lines; see the status branch for the full plan"


def marker_comment(marker: str) -> str:
    """The hidden HTML comment that identifies syncer's comment of kind ``marker``."""
    if not _MARKER_RE.match(marker) or "--" in marker:
        raise ValueError(
            f"invalid comment marker {marker!r}: use letters, digits and . _ : / - "
            "(no '--', which would end the HTML comment)"
        )
    return f"<!-- syncer:{marker} -->"


def with_marker(marker: str, body: str) -> str:
    """``body`` with the marker as its first line (once), normalised to ``\\n`` newlines."""
    tag = marker_comment(marker)
    text = normalize(body)
    lines = [line for line in text.split("\n") if line.strip() != tag]
    text = "\n".join(lines).strip("\n")
    return f"{tag}\n{text}\n" if text else f"{tag}\n"


def normalize(body: str) -> str:
    """The form in which bodies are compared: ``\\n`` newlines, no trailing whitespace."""
    return body.replace("\r\n", "\n").replace("\r", "\n").rstrip()


def same_body(a: str, b: str) -> bool:
    return normalize(a) == normalize(b)


def truncate(body: str, limit: int) -> tuple[str, bool]:
    """Cut ``body`` to at most ``limit`` characters at a line boundary.

    Returns ``(text, truncated)``. The first line (the marker) is always kept; open code
    fences and ``<details>`` blocks are closed; the note names how many lines were cut.
    """
    if len(body) <= limit:
        return body, False
    lines = body.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    total = len(lines)
    best: tuple[int, str] | None = None  # (lines kept, closing suffix)
    fence: str | None = None
    details = 0
    used = 0
    for i, line in enumerate(lines):
        used += len(line) + 1
        fence, details = _track(line, fence, details)
        suffix = _closing(fence, details, total - i - 1)
        if used + len(suffix) <= limit:
            best = (i + 1, suffix)
        elif used > limit:
            break
    if best is None:
        raise ValueError(f"a comment limit of {limit} characters cannot hold even the first line")
    kept, suffix = best
    return "\n".join(lines[:kept]) + "\n" + suffix, True


def _track(line: str, fence: str | None, details: int) -> tuple[str | None, int]:
    """Update the open-block state after ``line``."""
    m = _FENCE_RE.match(line)
    if fence is not None:
        # Inside a fence only a closing fence of the same kind and at least its length counts.
        if m and m.group(1)[0] == fence[0] and len(m.group(1)) >= len(fence):
            rest = line.strip()[len(m.group(1)) :]
            if not rest.strip():
                return None, details
        return fence, details
    if m:
        return m.group(1), details
    details += len(_DETAILS_OPEN_RE.findall(line)) - len(_DETAILS_CLOSE_RE.findall(line))
    return None, max(details, 0)


def _closing(fence: str | None, details: int, remaining: int) -> str:
    parts: list[str] = []
    if fence is not None:
        parts.append(fence)
    if details:
        parts.append("")
        parts.extend("</details>" for _ in range(details))
    parts.append("")
    parts.append("> " + TRUNCATION_NOTE.format(n=remaining))
    return "\n".join(parts) + "\n"
