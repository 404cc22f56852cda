"""Tokenizer for the PowerShell subset of the vocabulary, and Windows argument passing.

The simulator does not run arbitrary PowerShell. It tokenizes a script with the rules
below, then recognises it as one vocabulary entry (see ``vocabulary.py``): the fixed
prelude and catch block, one ``$name=<literal>`` assignment per parameter, and the
entry's fixed body, compared token for token. Data can only arrive in the assignments,
as single-quoted literals, so a quoting mistake in the product's builders changes the
token stream and the script is refused instead of silently "working".

Tokens: single-quoted strings (``''`` is one quote; the typographic quotes
U+2018..U+201B count as quotes too, as in PowerShell), ``$variables``, ``@splat``,
punctuation ``( ) { } [ ] , | = + & @( @{``, statement separators (``;`` and newlines,
collapsed), and words (everything else up to a delimiter, compared case-insensitively).
Double-quoted strings, backticks, comments and ``${...}`` are not in the vocabulary and
raise :class:`ParseError`.

Also here: how Windows PowerShell 5.1 turns arguments of a native program (sc.exe,
tar.exe) into a command line, and how the program's C runtime splits it again — both
emulated so that a value PowerShell would mangle arrives mangled.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

QUOTES = "'\u2018\u2019\u201a\u201b"
_DELIMITERS = set(" \t\r\n;'\"$@(){}[],|=+&`#") | set(QUOTES)
_NAME = re.compile(r"[A-Za-z0-9_]+")  # of a $variable or @splat


class ParseError(Exception):
    """The text is outside the PowerShell subset the vocabulary uses."""


@dataclass(frozen=True)
class Token:
    kind: str  # STR, VAR, SPLAT, WORD, PUNCT, SEP
    text: str  # the value: decoded string, variable name, word, punctuation

    def same(self, other: Token) -> bool:
        if self.kind != other.kind:
            return False
        if self.kind == "STR":
            return self.text == other.text
        return self.text.casefold() == other.text.casefold()

    def __str__(self) -> str:
        if self.kind == "STR":
            return "'" + self.text.replace("'", "''") + "'"
        if self.kind == "VAR":
            return "$" + self.text
        if self.kind == "SPLAT":
            return "@" + self.text
        if self.kind == "SEP":
            return ";"
        return self.text


def tokenize(text: str) -> list[Token]:
    tokens: list[Token] = []
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if c in " \t\r":
            i += 1
        elif c in "\n;":
            tokens.append(Token("SEP", ";"))
            i += 1
        elif c in QUOTES:
            value: list[str] = []
            i += 1
            while True:
                if i >= n:
                    raise ParseError("The string is missing the terminator: '.")
                ch = text[i]
                if ch in QUOTES:
                    if i + 1 < n and text[i + 1] in QUOTES:
                        value.append(text[i + 1])
                        i += 2
                        continue
                    i += 1
                    break
                value.append(ch)
                i += 1
            tokens.append(Token("STR", "".join(value)))
        elif c == '"':
            raise ParseError("double-quoted strings are not part of the vocabulary")
        elif c == "`":
            raise ParseError("backtick escapes are not part of the vocabulary")
        elif c == "#":
            raise ParseError("comments are not part of the vocabulary")
        elif c == "$":
            m = _NAME.match(text, i + 1)
            if not m:
                raise ParseError(f"unsupported variable syntax at {text[i:i + 10]!r}")
            tokens.append(Token("VAR", m.group()))
            i = m.end()
        elif c == "@":
            nxt = text[i + 1] if i + 1 < n else ""
            if nxt in "({":
                tokens.append(Token("PUNCT", "@" + nxt))
                i += 2
            else:
                m = _NAME.match(text, i + 1)
                if not m:
                    raise ParseError("unsupported '@' syntax")
                tokens.append(Token("SPLAT", m.group()))
                i = m.end()
        elif c in "(){}[],|=+&":
            tokens.append(Token("PUNCT", c))
            i += 1
        else:
            j = i
            while j < n and text[j] not in _DELIMITERS:
                j += 1
            tokens.append(Token("WORD", text[i:j]))
            i = j
    return normalize(tokens)


def normalize(tokens: list[Token]) -> list[Token]:
    """Collapse separators; drop them at the ends and next to braces."""
    out: list[Token] = []
    for tok in tokens:
        if tok.kind == "SEP" and (not out or out[-1].kind == "SEP" or out[-1].text == "{"):
            continue
        if tok.kind == "PUNCT" and tok.text == "}" and out and out[-1].kind == "SEP":
            out.pop()
        out.append(tok)
    while out and out[-1].kind == "SEP":
        out.pop()
    return out


def same(a: list[Token], b: list[Token]) -> bool:
    return len(a) == len(b) and all(x.same(y) for x, y in zip(a, b, strict=True))


# --- native programs ---------------------------------------------------------------------
def ps51_command_line(program: str, args: list[str]) -> str:
    """The command line Windows PowerShell 5.1 builds for ``& program @args``.

    An argument containing whitespace is wrapped in double quotes, inner quotes and
    trailing backslashes are *not* escaped; an empty argument is dropped.
    """
    parts = [program]
    for arg in args:
        if arg == "":
            continue
        if re.search(r"\s", arg) and not (len(arg) >= 2 and arg[0] == arg[-1] == '"'):
            parts.append(f'"{arg}"')
        else:
            parts.append(arg)
    return " ".join(parts)


def split_command_line(line: str) -> list[str]:
    """Split a command line the way the Microsoft C runtime builds ``argv``."""
    args: list[str] = []
    i, n = 0, len(line)
    while True:
        while i < n and line[i] in " \t":
            i += 1
        if i >= n:
            break
        arg: list[str] = []
        quoted = False
        while i < n:
            c = line[i]
            if c in " \t" and not quoted:
                break
            if c == "\\":
                j = i
                while j < n and line[j] == "\\":
                    j += 1
                count = j - i
                if j < n and line[j] == '"':
                    arg.append("\\" * (count // 2))
                    if count % 2:
                        arg.append('"')
                        i = j + 1
                    else:
                        i = j
                else:
                    arg.append("\\" * count)
                    i = j
            elif c == '"':
                if quoted and i + 1 < n and line[i + 1] == '"':
                    arg.append('"')
                    i += 2
                else:
                    quoted = not quoted
                    i += 1
            else:
                arg.append(c)
                i += 1
        args.append("".join(arg))
    return args
