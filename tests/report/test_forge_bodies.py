"""Comment bodies: the marker line and truncation that keeps Markdown valid."""

from __future__ import annotations

import pytest

from syncer.writeback.forges import marker_comment, truncate
from syncer.writeback.forges.bodies import with_marker


def test_marker_is_a_hidden_html_comment() -> None:
    assert marker_comment("preview") == "<!-- syncer:preview -->"
    for bad in ["", "a--b", "x -->", "two words", "-lead"]:
        with pytest.raises(ValueError):
            marker_comment(bad)


def test_marker_goes_first_exactly_once() -> None:
    body = with_marker("preview", "hello\r\n<!-- syncer:preview -->\r\nworld\r\n")
    assert body == "<!-- syncer:preview -->\nhello\nworld\n"


def test_short_bodies_are_untouched() -> None:
    assert truncate("a\nb\n", 10) == ("a\nb\n", False)


def test_cut_closes_the_open_fence_and_details_and_counts_lines() -> None:
    lines = ["<!-- syncer:p -->", "intro", "<details><summary>x</summary>", "", "```diff"]
    lines += [f"+ line {i}" for i in range(100)]
    lines += ["```", "", "</details>", "tail"]
    text, cut = truncate("\n".join(lines) + "\n", 400)
    assert cut and len(text) <= 400
    out = text.rstrip("\n").split("\n")
    kept = out.index("```")
    assert out[kept:] == [
        "```",
        "",
        "</details>",
        "",
        f"> … truncated: {len(lines) - kept} more lines; see the status branch for the full plan",
    ]
    assert out[0] == "<!-- syncer:p -->"


def test_cut_outside_blocks_adds_only_the_note() -> None:
    text, cut = truncate("m\n" + "word\n" * 100, 200)
    assert cut and len(text) <= 200
    kept = text.split("\n\n> ")[0].split("\n")
    assert kept[0] == "m" and set(kept[1:]) == {"word"}
    note = f"> … truncated: {101 - len(kept)} more lines; see the status branch for the full plan"
    assert text.endswith(f"\n\n{note}\n")


def test_longer_fences_and_tildes_are_tracked() -> None:
    body = "m\n````md\n```\ninner\n```\n" + "x\n" * 200 + "````\n"
    text, _ = truncate(body, 200)
    assert "\n````\n" in text  # closed with the opening fence, not the inner one
    body = "m\n~~~\n" + "y\n" * 200
    text, _ = truncate(body, 200)
    assert "\n~~~\n" in text


def test_a_limit_too_small_for_the_first_line_is_an_error() -> None:
    with pytest.raises(ValueError):
        truncate("a very long first line\n" + "x\n" * 50, 10)
