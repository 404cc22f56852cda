"""Commit and tag signature verification against a configured trust store.

git does the cryptography; this module only decides which keys count and turns git's
verdict into a clear sentence:

* **SSH signatures** are checked by git (``ssh-keygen -Y``) against
  ``gpg.ssh.allowedSignersFile``, set through the environment. Only a signature git
  reports as ``G`` (good, signer found in the allowed-signers file) is accepted; ``U``
  (a valid signature by a key that is not listed) is an untrusted key.
* **GPG signatures** are checked with a dedicated ``GNUPGHOME`` inside the work dir, into
  which the configured keyring (a file of exported public keys, or another GnuPG home) is
  imported whenever it changes. Every key in that keyring is trusted by configuration, so
  ``G`` and ``U`` (good signature, no web-of-trust validity) are accepted; the user's own
  keyring and trust database are never consulted.

Commits are read with ``git log --format=%G?…`` (one process, the same logic as
``git verify-commit``). Tags have no ``%G?``; ``git verify-tag --raw`` is run and its
status output parsed, with the same acceptance rules. Reasons look like
``commit 3f2a9c1 is not signed`` or
``commit 3f2a9c1 is signed by an untrusted key SHA256:…``.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from syncer.source.config import VerifyConfig
from syncer.source.errors import Reason, SourceError
from syncer.source.git import GitRunner

_SSH_ARMOR = "-----BEGIN SSH SIGNATURE-----"
_PGP_ARMOR = "-----BEGIN PGP SIGNATURE-----"


@dataclass(frozen=True)
class Verification:
    """The verdict on one signed object: accepted with a signer, or rejected with a reason."""

    ok: bool
    signer: str | None = None
    reason: str | None = None


class SignatureVerifier:
    """Verifies commits and tags in a repository against one :class:`VerifyConfig`."""

    def __init__(self, config: VerifyConfig, gnupg_home: Path):
        config.check()
        self.config = config
        self.gnupg_home = gnupg_home

    # -- trust stores ------------------------------------------------------------------

    def git_config(self) -> dict[str, str]:
        """Configuration pairs for the verifying git process."""
        signers = self.config.allowed_signers_file
        return {"gpg.ssh.allowedSignersFile": str(signers.resolve()) if signers else os.devnull}

    def git_vars(self) -> dict[str, str]:
        """Environment for the verifying git process: the dedicated GnuPG home."""
        return {"GNUPGHOME": str(self._prepare_gnupg_home())}

    def _prepare_gnupg_home(self) -> Path:
        """Import the configured keyring into our own GnuPG home when it changed."""
        home = self.gnupg_home
        keyring = self.config.gpg_keyring
        if keyring is None:
            # No GPG trust: an empty home, so no key of the user's keyring counts.
            home.mkdir(parents=True, exist_ok=True, mode=0o700)
            _write_gpg_conf(home)
            return home
        data = _export_keys(keyring)
        digest = hashlib.sha256(data).hexdigest()
        marker = home / ".syncer-keyring-sha256"
        if marker.is_file() and marker.read_text().strip() == digest:
            return home
        shutil.rmtree(home, ignore_errors=True)
        home.mkdir(parents=True, mode=0o700)
        _write_gpg_conf(home)
        result = subprocess.run(
            ["gpg", "--batch", "--quiet", "--no-autostart", "--homedir", str(home), "--import"],
            input=data, capture_output=True, check=False, timeout=60,
        )
        if result.returncode != 0:
            raise SourceError(f"cannot import GPG keyring {keyring}", Reason.CONFIG)
        marker.write_text(digest + "\n")
        return home

    # -- verification ------------------------------------------------------------------

    def verify_commit(self, runner: GitRunner, sha: str) -> Verification:
        """Verify the signature on commit ``sha``."""
        short = sha[:7]
        fmt = "%G?%x1f%GS%x1f%GK%x1f%GF%x1f%GP"
        out = self._git(runner, "log", "-1", "--no-show-signature", f"--format={fmt}", sha)
        status, signer, key, fingerprint, primary = (out.strip("\n").split("\x1f") + [""] * 5)[:5]
        kind = _signature_kind(runner.run("cat-file", "commit", sha))
        key = fingerprint or key or primary
        return _verdict(f"commit {short}", kind, status.strip(), signer, key, fingerprint)

    def verify_tag(self, runner: GitRunner, tag: str, name: str) -> Verification:
        """Verify the signature on the annotated tag object ``tag`` (named ``name``)."""
        what = f"tag {name}"
        if runner.run("cat-file", "-t", tag).strip() != "tag":
            return Verification(False, reason=f"{what} is not an annotated (signed) tag")
        kind = _signature_kind(runner.run("cat-file", "tag", tag))
        if kind is None:
            return Verification(False, reason=f"{what} is not signed")
        status, _, err = runner.run_status(
            "verify-tag", "--raw", tag, extra_env=self._env(runner)
        )
        code, signer, key = (
            _parse_gpg_status(err) if kind == "GPG" else _parse_ssh_output(err, status)
        )
        return _verdict(what, kind, code, signer, key, key)

    def _env(self, runner: GitRunner) -> dict[str, str]:
        env = runner.env.with_config(self.git_config()).with_vars(self.git_vars())
        return dict(env.env)

    def _git(self, runner: GitRunner, *args: str) -> str:
        return runner.run(*args, extra_env=self._env(runner))


def _signature_kind(raw: str) -> str | None:
    """The kind of signature (``SSH`` or ``GPG``) in a raw commit or tag; None: unsigned."""
    return "SSH" if _SSH_ARMOR in raw else "GPG" if _PGP_ARMOR in raw else None


def _write_gpg_conf(home: Path) -> None:
    """Verification needs no agent: never leave a gpg-agent daemon behind."""
    conf = home / "gpg.conf"
    if not conf.is_file():
        conf.write_text("no-autostart\n")


def _export_keys(keyring: Path) -> bytes:
    if keyring.is_dir():
        result = subprocess.run(
            ["gpg", "--batch", "--quiet", "--no-autostart", "--homedir", str(keyring),
             "--export"],
            capture_output=True, check=False, timeout=60,
        )
        if result.returncode != 0 or not result.stdout:
            raise SourceError(f"cannot export keys from GnuPG home {keyring}", Reason.CONFIG)
        return result.stdout
    try:
        return keyring.read_bytes()
    except OSError as err:
        raise SourceError(f"cannot read GPG keyring {keyring}: {err.strerror}",
                          Reason.CONFIG) from None


def _verdict(
    what: str, kind: str | None, status: str, signer: str, key: str, fingerprint: str
) -> Verification:
    """Map git's one-letter signature status to a verdict under our trust rules."""
    key = key or fingerprint or "unknown key"
    if kind is None or status == "N":
        return Verification(False, reason=f"{what} is not signed")
    accepted = {"G"} if kind == "SSH" else {"G", "U"}
    if status in accepted:
        label = signer or key
        return Verification(True, signer=f"{label} ({kind} {key})" if signer else f"{kind} {key}")
    if status in ("U", "E"):
        return Verification(False, reason=f"{what} is signed by an untrusted key {key}")
    if status == "B":
        return Verification(False, reason=f"{what} has a bad signature (key {key})")
    if status == "X":
        return Verification(False, reason=f"{what} has an expired signature (key {key})")
    if status == "Y":
        return Verification(False, reason=f"{what} is signed by an expired key {key}")
    if status == "R":
        return Verification(False, reason=f"{what} is signed by a revoked key {key}")
    return Verification(False, reason=f"the signature of {what} cannot be checked")


def _parse_gpg_status(stderr: str) -> tuple[str, str, str]:
    """(status letter, signer, key) from gpg's ``--status-fd`` lines (``verify-tag --raw``)."""
    words = {m.group(1): m.group(2) for m in re.finditer(r"\[GNUPG:\] (\w+) ?(.*)", stderr)}
    if "GOODSIG" in words:
        keyid, _, uid = words["GOODSIG"].partition(" ")
        fpr = words.get("VALIDSIG", "").split(" ")[0] or keyid
        return "G", uid, fpr
    for word, letter in (("BADSIG", "B"), ("EXPSIG", "X"), ("EXPKEYSIG", "Y"),
                         ("REVKEYSIG", "R")):
        if word in words:
            return letter, "", words[word].split(" ")[0]
    if "ERRSIG" in words or "NO_PUBKEY" in words:
        key = words.get("NO_PUBKEY") or words.get("ERRSIG", "").split(" ")[0]
        return "E", "", key
    return "E", "", ""


def _parse_ssh_output(stderr: str, status: int) -> tuple[str, str, str]:
    """(status letter, signer, key) from ``ssh-keygen -Y`` output relayed by git."""
    key_match = re.search(r"(SHA256:[A-Za-z0-9+/=]+)", stderr)
    key = key_match.group(1) if key_match else ""
    good = re.search(r'Good "git" signature for (\S+) with', stderr)
    if good and status == 0:
        return "G", good.group(1), key
    if re.search(r'Good "git" signature with', stderr):
        return "U", "", key
    return "B", "", key
