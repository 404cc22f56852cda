"""Real Git repositories for tests and the demo: bare remotes, authors, signing keys.

:class:`WorkRepo` is a person with a clone: write files, commit (optionally signed with
an SSH or GPG key), tag, push. :func:`make_bare` creates a remote. Signing keys are real
(``ssh-keygen``, ``gpg``); :class:`SshKey` and :class:`GpgKey` know how to produce the
trust stores syncer is configured with (an allowed-signers file, an exported keyring).

GnuPG homes are created with short paths under ``/tmp`` because gpg-agent's socket path
must fit into 108 bytes; :meth:`GpgKey.close` stops the agent.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import git


def run(*args: str, cwd: Path | None = None, env: Mapping[str, str] | None = None,
        input: bytes | None = None) -> str:
    """Run a command, fail loudly with its stderr; return stdout."""
    full_env = {**os.environ, **(env or {})}
    result = subprocess.run(list(args), cwd=cwd, env=full_env, input=input,
                            capture_output=True, check=False, timeout=120)
    if result.returncode != 0:
        stderr = result.stderr.decode(errors="replace")
        raise RuntimeError(f"{' '.join(args)} failed ({result.returncode}): {stderr}")
    return result.stdout.decode(errors="replace")


def make_bare(path: Path, initial_branch: str = "main") -> Path:
    """Create an empty bare repository at ``path``."""
    path.mkdir(parents=True, exist_ok=True)
    git.Repo.init(str(path), bare=True, initial_branch=initial_branch)
    return path


@dataclass
class SshKey:
    """An SSH key pair (ed25519) made with ssh-keygen."""

    private: Path
    principal: str

    @classmethod
    def generate(cls, directory: Path, name: str, principal: str | None = None) -> SshKey:
        directory.mkdir(parents=True, exist_ok=True)
        private = directory / name
        run("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", principal or name,
            "-f", str(private))
        return cls(private, principal or name)

    @property
    def public(self) -> str:
        """The public key line (``ssh-ed25519 AAAA… comment``)."""
        return Path(f"{self.private}.pub").read_text().strip()

    @property
    def fingerprint(self) -> str:
        """``SHA256:…`` as ssh-keygen and git print it."""
        return run("ssh-keygen", "-l", "-f", f"{self.private}.pub").split()[1]

    def allowed_signers_line(self) -> str:
        key_type, key = self.public.split()[:2]
        return f"{self.principal} {key_type} {key}"


def write_allowed_signers(path: Path, keys: list[SshKey]) -> Path:
    path.write_text("".join(k.allowed_signers_line() + "\n" for k in keys))
    return path


@dataclass
class GpgKey:
    """A GPG signing key in its own short-lived GnuPG home."""

    home: Path
    fingerprint: str
    uid: str

    @classmethod
    def generate(cls, uid: str) -> GpgKey:
        home = Path(tempfile.mkdtemp(prefix="gpg", dir="/tmp"))
        home.chmod(0o700)
        env = {"GNUPGHOME": str(home)}
        run("gpg", "--batch", "--quiet", "--pinentry-mode", "loopback", "--passphrase", "",
            "--quick-generate-key", uid, "ed25519", "sign", "never", env=env)
        out = run("gpg", "--batch", "--with-colons", "--list-secret-keys", uid, env=env)
        fpr = next(ln.split(":")[9] for ln in out.splitlines() if ln.startswith("fpr:"))
        return cls(home, fpr, uid)

    def export_public(self, path: Path) -> Path:
        """Write the armored public key to ``path`` (what syncer's keyring file holds)."""
        data = run("gpg", "--batch", "--armor", "--export", self.fingerprint,
                   env={"GNUPGHOME": str(self.home)})
        path.write_text(data)
        return path

    def close(self) -> None:
        subprocess.run(["gpgconf", "--kill", "gpg-agent"], env={**os.environ,
                       "GNUPGHOME": str(self.home)}, capture_output=True, check=False)
        shutil.rmtree(self.home, ignore_errors=True)


Signer = SshKey | GpgKey


@dataclass
class WorkRepo:
    """A clone of a remote that commits as one author and pushes."""

    path: Path
    remote: str
    name: str = "Alice Admin"
    email: str = "alice@example.com"
    env: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not (self.path / ".git").exists():
            self.path.mkdir(parents=True, exist_ok=True)
            repo = git.Repo.init(str(self.path), initial_branch="main")
            repo.create_remote("origin", self.remote)
        self.repo = git.Repo(str(self.path))
        with self.repo.config_writer() as cfg:
            cfg.set_value("user", "name", self.name)
            cfg.set_value("user", "email", self.email)
            cfg.set_value("commit", "gpgsign", "false")
            cfg.set_value("tag", "gpgsign", "false")

    def git(self, *args: str, env: Mapping[str, str] | None = None) -> str:
        return run("git", *args, cwd=self.path, env={**self.env, **(env or {})})

    def write(self, files: Mapping[str, str]) -> None:
        for name, text in files.items():
            target = self.path / name
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(text)

    def remove(self, *names: str) -> None:
        self.git("rm", "-q", "-r", *names)

    def commit(self, message: str, files: Mapping[str, str] | None = None,
               sign: Signer | None = None) -> str:
        """Commit ``files`` (added/changed) and return the new SHA."""
        if files:
            self.write(files)
        self.git("add", "-A")
        args, env = _sign_args(sign)
        self.git(*args, "commit", "-q", "--allow-empty", "-m", message, *(["-S"] if sign else []),
                 env=env)
        return self.head()

    def tag(self, name: str, message: str | None = None, sign: Signer | None = None,
            force: bool = False) -> str:
        args, env = _sign_args(sign)
        extra = ["-f"] if force else []
        if sign is not None:
            self.git(*args, "tag", *extra, "-s", "-m", message or name, name, env=env)
        elif message is not None:
            self.git("tag", *extra, "-a", "-m", message, name)
        else:
            self.git("tag", *extra, name)
        return self.git("rev-parse", name).strip()

    def push(self, branch: str = "main", *refs: str, force: bool = False) -> None:
        self.git("push", "-q", *(["--force"] if force else []), "origin",
                 f"HEAD:refs/heads/{branch}", *refs)

    def head(self) -> str:
        return self.git("rev-parse", "HEAD").strip()


def _sign_args(sign: Signer | None) -> tuple[list[str], dict[str, str]]:
    if isinstance(sign, SshKey):
        return ["-c", "gpg.format=ssh", "-c", f"user.signingkey={sign.private}"], {}
    if isinstance(sign, GpgKey):
        return (["-c", "gpg.format=openpgp", "-c", f"user.signingkey={sign.fingerprint}"],
                {"GNUPGHOME": str(sign.home)})
    return [], {}
