"""The lock files under requirements/ agree with pyproject.toml, and install a working
syncer the way the Dockerfile does: runtime packages only, every file hash-checked."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tomllib
import venv
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[2]
LOCKS = ROOT / "requirements"
_PIN = re.compile(r"^([A-Za-z0-9_.\-]+)==([^\s;\\]+)(?:\s*;\s*([^\\]+?))?\s*\\?$", re.M)


def _pins(name: str) -> dict[str, str]:
    return {canonicalize_name(m[1]): m[2] for m in _PIN.finditer((LOCKS / name).read_text())}


def _project() -> dict[str, object]:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]  # type: ignore[no-any-return]


def _requirements(group: str | None) -> list[Requirement]:
    project = _project()
    raw: list[str] = (project["dependencies"] if group is None  # type: ignore[assignment]
                      else project["optional-dependencies"][group])  # type: ignore[index]
    return [Requirement(r) for r in raw]


@pytest.mark.parametrize("lock,groups", [
    ("runtime.txt", [None]),
    ("dev.txt", [None, "test"]),
])
def test_every_declared_dependency_is_locked_within_its_range(
    lock: str, groups: list[str | None]
) -> None:
    pins = _pins(lock)
    for group in groups:
        for req in _requirements(group):
            name = canonicalize_name(req.name)
            assert name in pins, f"{req.name} ({group or 'runtime'}) is not in requirements/{lock}"
            assert req.specifier.contains(pins[name], prereleases=True), (
                f"requirements/{lock} pins {req.name}=={pins[name]} outside {req.specifier}")


def test_every_pin_carries_a_hash() -> None:
    for lock in ("dev.txt", "runtime.txt", "build.txt", "tools.txt"):
        text = (LOCKS / lock).read_text()
        blocks = re.split(r"\n(?=[A-Za-z0-9])", text.split("\n", 2)[2])
        for block in blocks:
            if block.strip() and not block.lstrip().startswith("#"):
                name = block.split()[0]
                assert "--hash=sha256:" in block, f"requirements/{lock}: no hash for {name}"


def test_runtime_and_build_locks_pin_the_versions_the_tests_run() -> None:
    dev = _pins("dev.txt")
    for lock in ("runtime.txt", "build.txt"):
        for name, version in _pins(lock).items():
            assert dev.get(name) == version, f"{lock}: {name}=={version}, dev.txt: {dev.get(name)}"
    test_only = {canonicalize_name(r.name) for r in _requirements("test")}
    assert not test_only & set(_pins("runtime.txt")), "test tools leak into the image's lock"


@pytest.mark.slow
def test_the_image_install_path_gives_the_controller_without_the_lab(tmp_path: Path) -> None:
    """What the Dockerfile runs, in a fresh virtualenv: the runtime lock with hashes, then
    syncer's wheel, built from what the image's build context holds (pyproject.toml,
    README.md, LICENSE, syncer/), without dependencies. `syncer validate` must work; no
    test tool and no simulator may be importable, and `syncer demo` says why it cannot
    run instead of failing with a traceback."""
    context = tmp_path / "context"
    context.mkdir()
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy(ROOT / name, context / name)
    shutil.copytree(ROOT / "syncer", context / "syncer",
                    ignore=shutil.ignore_patterns("__pycache__"))
    env_dir = tmp_path / "venv"
    venv.EnvBuilder(with_pip=True).create(env_dir)
    python = env_dir / "bin" / "python"
    env = {**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1"}

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*args], capture_output=True, text=True, env=env, timeout=600,
                              cwd=tmp_path)

    def pip(*args: str) -> None:
        done = run(str(python), "-m", "pip", "-q", *args)
        assert done.returncode == 0, done.stderr

    pip("install", "--require-hashes", "--no-deps", "-r", str(LOCKS / "runtime.txt"),
        "-r", str(LOCKS / "build.txt"))
    pip("wheel", "--no-deps", "--no-build-isolation", "--wheel-dir", str(tmp_path / "w"),
        str(context))
    wheel = next((tmp_path / "w").glob("syncer-*.whl"))
    pip("install", "--no-deps", str(wheel))
    pip("check")
    syncer = str(env_dir / "bin" / "syncer")
    done = run(syncer, "validate", str(ROOT / "examples" / "byoh"))
    assert done.returncode == 0, done.stderr
    assert "valid" in done.stdout
    for module in ("pytest", "mypy", "ruff", "syncer_lab"):
        probe = run(str(python), "-c", f"import {module}")
        assert probe.returncode != 0, f"{module} is installed by the image's install path"
    demo = run(syncer, "demo")
    assert demo.returncode == 1
    assert "Traceback" not in demo.stderr
    assert "development install" in demo.stderr
