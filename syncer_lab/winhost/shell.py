"""What a simulated host does with the command line of an SSH exec request.

Windows OpenSSH hands the command to the default shell: ``cmd.exe /c <command>`` (the
default, and what WMCO requires) or, on a host configured so, PowerShell. This module
emulates exactly the part of that the vocabulary uses, and refuses the rest:

cmd.exe
    ``%VAR%`` is expanded everywhere, even inside double quotes (the reason the product
    never puts data on the command line); unquoted ``& | < > ^`` are refused; a line
    longer than 8191 characters fails like cmd.exe ("The command line is too long.").
    Known programs: ``hostname``, ``powershell.exe``. Anything else — including
    ``Get-Help``, which is how the shell probe detects cmd.exe — gets cmd.exe's
    "is not recognized" message and exit code 1.

powershell.exe
    ``-NonInteractive -ExecutionPolicy Bypass`` followed by ``-EncodedCommand <base64 of
    UTF-16LE>`` (what syncer sends) or by the script text (``"<script>"``, WMCO's form).
    The script must be a vocabulary entry (``vocabulary.py``); anything else gets
    PowerShell's "The term 'X' is not recognized" error and exit code 1. With
    -EncodedCommand, uncaught errors and the first-run progress record are written to
    stderr as ``#< CLIXML``, as Windows PowerShell does.

PowerShell as the default shell
    ``Get-Help`` succeeds (prints help), ``hostname`` works, ``powershell.exe ...`` works
    as above, and a bare vocabulary script runs directly.

Every command not in the vocabulary is returned with ``Outcome.unexpected`` set, and the
host records it in ``unexpected_commands``.
"""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass

from syncer_lab.winhost.pwsh import ParseError, Token, split_command_line, tokenize
from syncer_lab.winhost.vocabulary import (
    CRLF,
    PRELUDE_TOKENS,
    Machine,
    Match,
    Outcome,
    execute,
    recognise,
)

MAX_CMD_LINE = 8191

GET_HELP_TEXT = CRLF.join([
    "",
    "TOPIC",
    "    Windows PowerShell Help System",
    "",
    "SHORT DESCRIPTION",
    "    Displays help about Windows PowerShell cmdlets and concepts.",
    "",
])

PROGRESS_CLIXML = (
    '#< CLIXML\r\n<Objs Version="1.1.0.1" xmlns="http://schemas.microsoft.com/powershell/2004/04">'
    '<Obj S="progress" RefId="0"><TN RefId="0"><T>System.Management.Automation.PSCustomObject</T>'
    '<T>System.Object</T></TN><MS><I64 N="SourceId">1</I64><PR N="Record"><AV>Preparing modules '
    "for first use.</AV><AI>0</AI><Nil /><PI>-1</PI><PC>-1</PC><T>Completed</T><SR>-1</SR>"
    "<SD> </SD></PR></MS></Obj></Objs>"
)


@dataclass
class Executed:
    """How the host understood a command (recorded in ``SimHost.commands``)."""

    shell: str  # "cmd" or "powershell": the default shell that received it
    script: str | None  # the decoded PowerShell script, when there was one
    entry: str | None  # the vocabulary entry, e.g. "sc", "inventory", "hostname"
    params: dict[str, object]
    outcome: Outcome

    @property
    def summary(self) -> str:
        """A short readable form, e.g. ``start-service kubelet`` (what fault patterns
        match)."""
        if self.entry == "sc":
            argv = self.params.get("argv", [])
            return "sc " + " ".join(str(a) for a in argv) if isinstance(argv, list) else "sc"
        if self.entry in ("start-service", "stop-service"):
            return f"{self.entry} {self.params.get('name')}"
        if self.entry == "stop-services":
            services = self.params.get("services", [])
            return "stop-services " + " ".join(str(n) for n in services) \
                if isinstance(services, list) else "stop-services"
        if self.entry and self.params:
            values = " ".join(str(v) for v in self.params.values())
            return f"{self.entry} {values}"
        return self.entry or (self.script or "")[:200]


def _cmd_not_recognized(word: str) -> str:
    return (f"'{word}' is not recognized as an internal or external command,{CRLF}"
            f"operable program or batch file.{CRLF}")


def _ps_not_recognized(word: str) -> str:
    return (
        f"{word} : The term '{word}' is not recognized as the name of a cmdlet, function, "
        "script file, or operable program. Check the spelling of the name, or if a path was "
        f"included, verify that the path is correct and try again.{CRLF}"
        f"At line:1 char:1{CRLF}+ {word}{CRLF}+ {'~' * len(word)}{CRLF}"
        f"    + CategoryInfo          : ObjectNotFound: ({word}:String) [], "
        f"CommandNotFoundException{CRLF}"
        f"    + FullyQualifiedErrorId : CommandNotFoundException{CRLF}"
    )


def clixml_error(text: str) -> str:
    def esc(s: str) -> str:
        s = s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
        return s.replace("\r", "_x000D_").replace("\n", "_x000A_")

    return ('#< CLIXML\r\n<Objs Version="1.1.0.1" '
            'xmlns="http://schemas.microsoft.com/powershell/2004/04">'
            f'<S S="Error">{esc(text)}</S></Objs>')


class Interpreter:
    """Runs one exec command line on a :class:`Machine`."""

    def __init__(self, machine: Machine, default_shell: str, env: dict[str, str]) -> None:
        self.machine = machine
        self.default_shell = default_shell
        self.env = {k.upper(): v for k, v in env.items()}
        self.powershell_started = False  # the first start prints a progress record

    def understand(self, command: str) -> tuple[Executed, Match | None]:
        """Parse ``command``; returns what it is and, for scripts, the match to execute.

        Commands without side effects are answered here already (``Executed.outcome``);
        a vocabulary script is returned unexecuted so the host can apply faults first.
        """
        if self.default_shell == "powershell":
            return self._powershell_shell(command)
        return self._cmd(command)

    def run(self, executed: Executed, match: Match | None) -> Outcome:
        if match is None:
            return executed.outcome
        outcome = execute(self.machine, match)
        # The first-run progress record (CLIXML) precedes whatever the script writes.
        outcome.stderr = executed.outcome.stderr + outcome.stderr
        return outcome

    # --- cmd.exe ---------------------------------------------------------------------------
    def _expand(self, line: str) -> str:
        def sub(m: re.Match[str]) -> str:
            return self.env.get(m.group(1).upper(), m.group(0))

        return re.sub(r"%([^%\r\n]+)%", sub, line)

    def _cmd(self, command: str) -> tuple[Executed, Match | None]:
        def fail(stderr: str, why: str, entry: str | None = None) -> tuple[Executed, None]:
            return Executed("cmd", None, entry, {}, Outcome(1, "", stderr, unexpected=why)), None

        if len(command) > MAX_CMD_LINE:
            return fail(f"The command line is too long.{CRLF}", "command line over 8191 chars")
        line = self._expand(command)
        quoted = False
        for ch in line:
            if ch == '"':
                quoted = not quoted
            elif ch in "&|<>^" and not quoted:
                return fail(_cmd_not_recognized(line.split()[0] if line.split() else line),
                            f"cmd.exe operator {ch!r} is not in the vocabulary")
        argv = split_command_line(line)
        if not argv:
            return fail("", "empty command")
        program = re.sub(r"(?i)\.exe$", "", argv[0].replace("/", "\\").rsplit("\\", 1)[-1])
        if program.lower() == "hostname" and len(argv) == 1:
            return self._hostname("cmd"), None
        if program.lower() == "powershell":
            return self._powershell_cli("cmd", argv[1:])
        if argv[0] == "Get-Help" and len(argv) == 1:  # the shell probe: expected to fail here
            out = Outcome(1, "", _cmd_not_recognized("Get-Help"))
            return Executed("cmd", None, "shell-probe", {}, out), None
        return fail(_cmd_not_recognized(argv[0]), f"cmd.exe does not know {argv[0]!r}")

    def _hostname(self, shell: str) -> Executed:
        return Executed(shell, None, "hostname", {}, Outcome(0, self.machine.computer_name + CRLF))

    # --- powershell.exe ------------------------------------------------------------------
    def _powershell_cli(self, shell: str, args: list[str]) -> tuple[Executed, Match | None]:
        def fail(why: str) -> tuple[Executed, None]:
            word = args[0] if args else "powershell.exe"
            out = Outcome(1, "", _ps_not_recognized(word), unexpected=why)
            return Executed(shell, None, None, {}, out), None

        lowered = [a.lower() for a in args[:3]]
        if lowered != ["-noninteractive", "-executionpolicy", "bypass"]:
            return fail("powershell.exe must start with -NonInteractive -ExecutionPolicy Bypass")
        rest = args[3:]
        if rest and rest[0].lower() == "-encodedcommand":
            if len(rest) != 2:
                return fail("-EncodedCommand takes exactly one argument")
            try:
                script = base64.b64decode(rest[1], validate=True).decode("utf-16-le")
            except (binascii.Error, UnicodeDecodeError):
                return fail("-EncodedCommand value is not base64 of UTF-16LE")
            return self._script(shell, script, encoded=True)
        if not rest:
            return fail("powershell.exe without a command would start an interactive shell")
        return self._script(shell, " ".join(rest), encoded=False)

    def _script(self, shell: str, script: str, encoded: bool) -> tuple[Executed, Match | None]:
        progress = ""
        if encoded and not self.powershell_started:
            progress = PROGRESS_CLIXML
        self.powershell_started = True
        try:
            tokens = tokenize(script)
        except ParseError as err:
            return self._ps_fail(shell, script, encoded, progress, _first_word([]), str(err))
        found = recognise(tokens)
        if isinstance(found, str):
            return self._ps_fail(shell, script, encoded, progress, _first_word(tokens), found)
        params: dict[str, object] = dict(found.params)
        executed = Executed(shell, script, found.body.name, params, Outcome(0, "", progress))
        return executed, found

    def _ps_fail(self, shell: str, script: str, encoded: bool, progress: str, word: str,
                 why: str) -> tuple[Executed, None]:
        text = _ps_not_recognized(word)
        stderr = (clixml_error(text) if encoded else text)
        if progress:
            stderr = progress + stderr.replace("#< CLIXML\r\n", "", 1)
        return Executed(shell, script, None, {}, Outcome(1, "", stderr, unexpected=why)), None

    # --- PowerShell as the default shell ----------------------------------------------------
    def _powershell_shell(self, command: str) -> tuple[Executed, Match | None]:
        # Command (argument) mode: a bare word list is a command and its arguments; in
        # it, base64's + / = are plain characters.
        words = command.split()
        if words and all(re.fullmatch(r"[A-Za-z0-9+/=._-]+", w) for w in words):
            first = words[0].lower()
            if first == "get-help" and len(words) == 1:
                out = Outcome(0, GET_HELP_TEXT)
                return Executed("powershell", None, "shell-probe", {}, out), None
            if first in ("hostname", "hostname.exe") and len(words) == 1:
                return self._hostname("powershell"), None
            if first in ("powershell", "powershell.exe"):
                return self._powershell_cli("powershell", words[1:])
        return self._script("powershell", command, encoded=False)


def _first_word(tokens: list[Token]) -> str:
    """The command PowerShell would fail to find first (after prelude and assignments)."""
    if tokens[: len(PRELUDE_TOKENS)] and all(
        a.same(b) for a, b in zip(tokens, PRELUDE_TOKENS, strict=False)
    ):
        tokens = tokens[len(PRELUDE_TOKENS):]
    while len(tokens) > 2 and tokens[0].kind == "VAR" and tokens[1].text == "=":
        cut = next((i for i, t in enumerate(tokens) if t.kind == "SEP"), len(tokens))
        tokens = tokens[cut + 1:]
    for tok in tokens:
        if tok.kind == "WORD" and not tok.text.startswith("-"):
            return tok.text
    return tokens[0].text if tokens else "script"
