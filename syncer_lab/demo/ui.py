"""What the demo prints: numbered headings, short lines, the live status table.

:class:`Narrator` writes with ``rich`` on a terminal (rules for headings, colours, a
status table refreshed in place with :class:`rich.live.Live`, Markdown for the pull
request comment) and falls back to plain lines otherwise (CI logs, a pipe, the end-to-end
test), where the status table is printed again only when it changed and at most every few
seconds. Every plain line carries the time since the start, so a log shows where the
minute went.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import IO, Any

from syncer.nodes.status import HostStatus, format_table

PLAIN_REFRESH = 3.0  # seconds between two prints of a changed table, without a terminal


class Narrator:
    def __init__(self, stream: IO[str] | None = None, *, fancy: bool | None = None) -> None:
        self.stream = stream or sys.stdout
        self.fancy = self.stream.isatty() if fancy is None else fancy
        self.started = time.monotonic()
        self.step = 0
        self.console: Any = None
        if self.fancy:
            from rich.console import Console

            self.console = Console(file=self.stream, highlight=False)

    def elapsed(self) -> float:
        return time.monotonic() - self.started

    def _plain(self, text: str) -> None:
        stamp = f"[{self.elapsed():5.1f}s]"
        for line in text.splitlines() or [""]:
            self.stream.write(f"{stamp} {line}\n")
        self.stream.flush()

    # --- lines ---------------------------------------------------------------------------
    def heading(self, title: str) -> None:
        self.step += 1
        if self.fancy:
            self.console.print()
            self.console.rule(f"[bold cyan]{self.step}. {title}[/]  [dim]{self.elapsed():.0f}s",
                              align="left")
        else:
            self._plain(f"== {self.step}. {title}")

    def say(self, text: str) -> None:
        if self.fancy:
            self.console.print(f"  {text}", markup=False)
        else:
            self._plain(f"  {text}")

    def ok(self, text: str) -> None:
        if self.fancy:
            self.console.print(f"  [green]✓[/] {_escape(text)}")
        else:
            self._plain(f"  ok: {text}")

    def warn(self, text: str) -> None:
        if self.fancy:
            self.console.print(f"  [yellow]![/] {_escape(text)}")
        else:
            self._plain(f"  warning: {text}")

    def fail(self, text: str) -> None:
        if self.fancy:
            self.console.print(f"\n[bold red]✗ {_escape(text)}[/]")
        else:
            self._plain(f"FAILED: {text}")

    def command(self, text: str) -> None:
        """A command the reader can run too."""
        if self.fancy:
            self.console.print(f"  [dim]$[/] [bold]{_escape(text)}[/]")
        else:
            self._plain(f"  $ {text}")

    def block(self, text: str, *, dim: bool = False) -> None:
        """Preformatted output (a table, a log), indented."""
        body = "\n".join("    " + line for line in text.rstrip("\n").splitlines())
        if self.fancy:
            self.console.print(body, style="dim" if dim else None, markup=False,
                               highlight=False, soft_wrap=True)
        else:
            self._plain(body)

    def markdown(self, text: str, title: str) -> None:
        """A pull request comment as the forge would show it."""
        if self.fancy:
            from rich.markdown import Markdown
            from rich.panel import Panel

            self.console.print(Panel(Markdown(text), title=title, title_align="left",
                                     border_style="blue", padding=(0, 1)))
        else:
            self._plain(f"  --- {title} ---")
            self.block(text)
            self._plain("  ---")

    # --- the live status table -------------------------------------------------------------
    @contextmanager
    def live_status(self) -> Iterator[StatusView]:
        view = StatusView(self)
        try:
            yield view
        finally:
            view.close()


class StatusView:
    """``syncer status``, refreshed in place (terminal) or reprinted when it changed."""

    def __init__(self, narrator: Narrator) -> None:
        self.narrator = narrator
        self._live: Any = None
        self._last_text: str | None = None
        self._printed: str | None = None
        self._printed_at = 0.0
        if narrator.fancy:
            from rich.live import Live

            self._live = Live(console=narrator.console, refresh_per_second=4,
                              transient=False)
            self._live.start()

    def update(self, rows: Sequence[HostStatus], rollout: Mapping[str, Any], note: str) -> None:
        text = format_table(list(rows), rollout) + note
        self._last_text = text
        if self._live is not None:
            self._live.update(_rich_table(rows, rollout, note))
            return
        now = time.monotonic()
        if text != self._printed and now - self._printed_at >= PLAIN_REFRESH:
            self._print(text)

    def _print(self, text: str) -> None:
        self.narrator.block(text)
        self._printed, self._printed_at = text, time.monotonic()

    def close(self) -> None:
        if self._live is not None:
            self._live.stop()
            self._live = None
        elif self._last_text is not None and self._last_text != self._printed:
            self._print(self._last_text)


def _escape(text: str) -> str:
    from rich.markup import escape

    return escape(text)


def _rich_table(rows: Sequence[HostStatus], rollout: Mapping[str, Any], note: str) -> Any:
    from rich.console import Group
    from rich.padding import Padding
    from rich.table import Table
    from rich.text import Text

    errors = any(r.last_error for r in rows)
    table = Table(box=None, padding=(0, 1), header_style="bold", pad_edge=False)
    for column in ("ADDRESS", "NODE", "VERSION", "PHASE", "SINCE", *(
            ("LAST ERROR",) if errors else ())):
        table.add_column(column, no_wrap=column != "LAST ERROR")
    for r in rows:
        current = r.current == r.desired
        version = r.desired if current else f"{r.current or '-'} -> {r.desired}"
        style = "green" if r.done and current else ("red" if r.failed else "yellow")
        since = r.since[11:19] if len(r.since) >= 19 else (r.since or "-")  # HH:MM:SS
        cells: list[Any] = [r.address, r.node or "-", version, Text(r.text, style=style),
                            since]
        if errors:
            cells.append((r.last_error or "")[:80])
        table.add_row(*cells)
    lines: list[Any] = [table]
    if rollout.get("total") is not None:
        lines.append(Text(f"{rollout.get('done', 0)}/{rollout.get('total', 0)} hosts at the "
                          "committed version", style="dim"))
    if note:
        lines.append(Text(note.strip(), style="dim"))
    return Padding(Group(*lines), (0, 0, 0, 4))  # indented like the other blocks
