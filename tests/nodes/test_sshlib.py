"""paramiko is imported without its optional ``invoke`` (syncer never reads an
ssh_config), and a paramiko that needs it still imports. Each case runs in a fresh
interpreter: what matters is what a process that starts ``syncer run`` imports."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest


def _python(code: str, path: Path | None = None) -> str:
    env_path = f"{path}:" if path else ""
    root = Path(__file__).resolve().parents[2]
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
        env={"PYTHONPATH": f"{env_path}{root}", "PATH": "/usr/bin:/bin"},
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def test_the_controller_imports_paramiko_without_invoke() -> None:
    out = _python(
        "import sys\n"
        "import syncer.controller.app, syncer.controller.wiring, syncer.nodes.stage\n"
        "import paramiko\n"
        "print('invoke' in sys.modules, paramiko.SSHClient.__name__)\n"
        "import invoke\n"  # kept out only while paramiko is imported
        "print(invoke.__name__)\n"
    )
    assert out.splitlines() == ["False SSHClient", "invoke"]


@pytest.mark.parametrize("optional", [True, False])
def test_a_paramiko_that_imports_invoke_unconditionally_still_imports(
    tmp_path: Path, optional: bool
) -> None:
    """A stand-in paramiko package ahead on the path: one that imports invoke without
    try/except must load with it; one that treats it as optional loads without it."""
    (tmp_path / "paramiko").mkdir()
    body = "import invoke\n" if not optional else (
        "try:\n    import invoke\nexcept ImportError:\n    invoke = None\n")
    (tmp_path / "paramiko" / "__init__.py").write_text(body)
    (tmp_path / "invoke.py").write_text("")
    out = _python(
        "import sys\n"
        "from syncer.nodes.windows.sshlib import paramiko\n"
        f"print(paramiko.__file__.startswith({str(tmp_path)!r}), paramiko.invoke is not None,"
        " 'invoke' in sys.modules)\n",
        tmp_path,
    )
    assert out == f"True {not optional} {not optional}"
