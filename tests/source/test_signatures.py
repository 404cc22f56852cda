"""Commit and tag signature verification: SSH allowed signers and a GPG keyring."""

from __future__ import annotations

from pathlib import Path

import pytest

from syncer.source import GitSource, Reason, SourceConfig, SourceError, VerifyConfig
from syncer_lab.gitrepos import GpgKey, SshKey, WorkRepo, write_allowed_signers


@pytest.fixture
def allowed_signers(tmp_path: Path, ssh_signing_key: SshKey) -> Path:
    return write_allowed_signers(tmp_path / "allowed_signers", [ssh_signing_key])


def _verified_source(bare: Path, workdir: Path, **verify: object) -> GitSource:
    return GitSource(SourceConfig(f"file://{bare}", workdir=workdir, path="fleet",
                                  verify=VerifyConfig(**verify)))  # type: ignore[arg-type]


def test_ssh_signed_head_is_applied_with_its_signer(
    author: WorkRepo, bare_remote: Path, tmp_path: Path, allowed_signers: Path,
    ssh_signing_key: SshKey,
) -> None:
    sha = author.commit("Signed bump", {"fleet/fleet.yaml": "version: 1.1.0\n"},
                        sign=ssh_signing_key)
    author.push()
    src = _verified_source(bare_remote, tmp_path / "work", allowed_signers_file=allowed_signers)
    rev = src.poll()
    assert rev is not None and rev.sha == sha
    assert rev.verified_by is not None
    assert "alice@example.com" in rev.verified_by
    assert ssh_signing_key.fingerprint in rev.verified_by


def test_unsigned_head_is_rejected_and_last_good_stays(
    author: WorkRepo, bare_remote: Path, tmp_path: Path, allowed_signers: Path,
    ssh_signing_key: SshKey,
) -> None:
    good_sha = author.commit("Signed", {"fleet/fleet.yaml": "version: 1.1.0\n"},
                             sign=ssh_signing_key)
    author.push()
    src = _verified_source(bare_remote, tmp_path / "work", allowed_signers_file=allowed_signers)
    good = src.poll()
    assert good is not None and good.sha == good_sha
    src.mark_good(good)

    bad = author.commit("Unsigned", {"fleet/fleet.yaml": "version: 6.6.6\n"})
    author.push()
    with pytest.raises(SourceError) as err:
        src.poll()
    assert str(err.value) == f"commit {bad[:7]} is not signed"
    assert err.value.reason is Reason.VERIFICATION and err.value.sha == bad
    assert src.rejected == (bad, f"commit {bad[:7]} is not signed")
    current = src.last_good
    assert current is not None and current.sha == good_sha
    assert (current.path / "fleet.yaml").read_text() == "version: 1.1.0\n"
    assert not (tmp_path / "work" / "checkouts" / bad).exists()  # never exported

    # Still the head: rejected again on every poll (without fetching it again).
    fetched = src.last_fetched
    with pytest.raises(SourceError, match="is not signed"):
        src.poll()
    assert src.last_fetched == fetched

    # A signed fix on top is accepted.
    fix = author.commit("Signed fix", {"fleet/fleet.yaml": "version: 1.2.0\n"},
                        sign=ssh_signing_key)
    author.push()
    rev = src.poll()
    assert rev is not None and rev.sha == fix
    assert src.rejected is None


def test_untrusted_ssh_key_is_rejected_with_its_fingerprint(
    author: WorkRepo, bare_remote: Path, tmp_path: Path, allowed_signers: Path,
    untrusted_ssh_key: SshKey, ssh_signing_key: SshKey,
) -> None:
    bad = author.commit("By mallory", {"fleet/fleet.yaml": "version: 9\n"},
                        sign=untrusted_ssh_key)
    author.push()
    src = _verified_source(bare_remote, tmp_path / "work", allowed_signers_file=allowed_signers)
    with pytest.raises(SourceError) as err:
        src.poll()
    assert str(err.value) == (
        f"commit {bad[:7]} is signed by an untrusted key {untrusted_ssh_key.fingerprint}"
    )
    assert src.last_good is None

    # Trusting the key later (allowed signers updated) accepts the same head, no refetch.
    fetched = src.last_fetched
    write_allowed_signers(allowed_signers, [ssh_signing_key, untrusted_ssh_key])
    rev = src.poll()
    assert rev is not None and rev.sha == bad
    assert src.last_fetched == fetched


def test_gpg_signatures_checked_against_the_configured_keyring(
    author: WorkRepo, bare_remote: Path, tmp_path: Path, gpg_signing_key: GpgKey,
    untrusted_gpg_key: GpgKey,
) -> None:
    keyring = gpg_signing_key.export_public(tmp_path / "trusted.asc")
    src = _verified_source(bare_remote, tmp_path / "work", gpg_keyring=keyring)
    good = author.commit("GPG signed", {"fleet/fleet.yaml": "version: 2\n"},
                         sign=gpg_signing_key)
    author.push()
    rev = src.poll()
    assert rev is not None and rev.sha == good
    assert rev.verified_by is not None
    assert gpg_signing_key.fingerprint in rev.verified_by
    assert "alice@example.com" in rev.verified_by

    bad = author.commit("GPG by mallory", {"fleet/fleet.yaml": "version: 3\n"},
                        sign=untrusted_gpg_key)
    author.push()
    with pytest.raises(SourceError, match=f"commit {bad[:7]} is signed by an untrusted key"):
        src.poll()

    unsigned = author.commit("plain", {"fleet/fleet.yaml": "version: 4\n"})
    author.push()
    with pytest.raises(SourceError, match=f"commit {unsigned[:7]} is not signed"):
        src.poll()


def test_ssh_signature_is_untrusted_when_only_gpg_is_configured(
    author: WorkRepo, bare_remote: Path, tmp_path: Path, gpg_signing_key: GpgKey,
    ssh_signing_key: SshKey,
) -> None:
    keyring = gpg_signing_key.export_public(tmp_path / "trusted.asc")
    author.commit("SSH signed", {"fleet/fleet.yaml": "version: 2\n"}, sign=ssh_signing_key)
    author.push()
    src = _verified_source(bare_remote, tmp_path / "work", gpg_keyring=keyring)
    with pytest.raises(SourceError, match="signed by an untrusted key SHA256:"):
        src.poll()


def test_tag_mode_verifies_the_tag_signature(
    author: WorkRepo, bare_remote: Path, tmp_path: Path, allowed_signers: Path,
    ssh_signing_key: SshKey, untrusted_ssh_key: SshKey,
) -> None:
    author.tag("v1", sign=ssh_signing_key)
    author.tag("v2", message="annotated, unsigned")
    author.tag("v3", sign=untrusted_ssh_key)
    author.push("main", "--tags")

    def source(ref: str, mode: str = "tag") -> GitSource:
        return GitSource(SourceConfig(
            f"file://{bare_remote}", ref=ref, workdir=tmp_path / ref / mode,
            verify=VerifyConfig(mode=mode, allowed_signers_file=allowed_signers),  # type: ignore[arg-type]
        ))

    rev = source("v1").poll()
    assert rev is not None and rev.verified_by and rev.verified_by.startswith("tag ")
    with pytest.raises(SourceError, match="tag v2 is not signed"):
        source("v2").poll()
    with pytest.raises(SourceError, match="tag v3 is signed by an untrusted key"):
        source("v3").poll()
    # tag-and-head: the tag is signed, the commit it points at is not
    with pytest.raises(SourceError, match="is not signed"):
        source("v1", "tag-and-head").poll()
    with pytest.raises(SourceError, match="needs a tag"):
        source("main").poll()


def test_verification_config_is_checked(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match="needs allowed_signers_file or gpg_keyring"):
        GitSource(SourceConfig("file:///nowhere", workdir=tmp_path, verify=VerifyConfig()))
    with pytest.raises(SourceError, match=r"allowed signers file .* does not exist"):
        GitSource(SourceConfig("file:///nowhere", workdir=tmp_path,
                               verify=VerifyConfig(allowed_signers_file=tmp_path / "nope")))
