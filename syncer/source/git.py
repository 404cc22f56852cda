"""Running git: one place that starts git processes for the source and the write-back.

:class:`GitRunner` wraps GitPython's ``Git.execute`` for one repository directory with a
:class:`~syncer.source.auth.GitEnv` (credentials and hardening in the environment, never
in the arguments), a timeout, and error translation: a failing command becomes a
:class:`~syncer.source.errors.SourceError` built from git's stderr by
:func:`~syncer.source.errors.classify`, so callers never see GitPython's exception text
(which quotes the command line and raw stderr).

Plumbing that reads standard input (``mktree``, ``hash-object --stdin``,
``update-index --index-info``) gets it through a temporary file, as GitPython wants a
real file handle.
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path

import git

from syncer.source.auth import GitEnv
from syncer.source.errors import Reason, SourceError, classify, scrub

log = logging.getLogger(__name__)


class GitRunner:
    """Runs git commands in ``git_dir`` (a bare repository) with a fixed environment."""

    def __init__(self, git_dir: Path, env: GitEnv | Callable[[], GitEnv], url: str = "",
                 timeout: float = 60.0):
        self.git_dir = git_dir
        self._env = env
        self.url = url
        self.timeout = timeout
        self._git = git.Git(str(git_dir))

    @property
    def env(self) -> GitEnv:
        """The environment for the next command (built now: a rotated token is picked up)."""
        return self._env() if callable(self._env) else self._env

    def run(
        self,
        *args: str,
        stdin: bytes | None = None,
        extra_env: Mapping[str, str] | None = None,
    ) -> str:
        """Run ``git <args>``; return stdout (without the final newline).

        A failing command raises the :class:`SourceError` its stderr describes.
        """
        env = self.env
        status, out, err = self._execute(env, args, stdin, extra_env)
        if status != 0:
            raise classify(err, self.url, env.secrets)
        return out

    def run_status(
        self,
        *args: str,
        stdin: bytes | None = None,
        extra_env: Mapping[str, str] | None = None,
    ) -> tuple[int, str, str]:
        """Run ``git <args>``; return (exit status, stdout, stderr) without raising."""
        return self._execute(self.env, args, stdin, extra_env)

    def _execute(
        self,
        git_env: GitEnv,
        args: tuple[str, ...],
        stdin: bytes | None,
        extra_env: Mapping[str, str] | None,
    ) -> tuple[int, str, str]:
        env = dict(git_env.env)
        env["GIT_DIR"] = str(self.git_dir)
        if extra_env:
            env.update(extra_env)
        command = ["git", *args]
        log.debug("git %s", args[0] if args else "")
        with tempfile.TemporaryFile() as handle:
            if stdin is not None:
                handle.write(stdin)
                handle.seek(0)
            try:
                status, out, err = self._git.execute(
                    command,
                    istream=handle if stdin is not None else None,
                    with_extended_output=True,
                    with_exceptions=False,
                    env=env,
                    kill_after_timeout=self.timeout,
                    stdout_as_string=True,
                )
            except git.GitCommandNotFound:
                raise SourceError("git is not installed", Reason.CONFIG) from None
        return int(status or 0), str(out), scrub(str(err), git_env.secrets)

    def rev_parse(self, rev: str) -> str | None:
        """The object name of ``rev``, or None when it does not exist."""
        status, out, _ = self.run_status("rev-parse", "--verify", "--quiet", rev)
        return out.strip() if status == 0 and out.strip() else None

    def has_object(self, sha: str) -> bool:
        status, _, _ = self.run_status("cat-file", "-e", sha)
        return status == 0


def init_bare(git_dir: Path) -> git.Repo:
    """Open ``git_dir`` as a bare repository, creating it on first use."""
    if (git_dir / "HEAD").is_file():
        return git.Repo(str(git_dir))
    git_dir.mkdir(parents=True, exist_ok=True)
    return git.Repo.init(str(git_dir), bare=True)
