"""containerd's registry mirror files, in the format WMCO writes (the expectations of
WMCO's own pkg/registries/registries_test.go, and containerd's hosts.toml grammar)."""

from __future__ import annotations

import tomllib

from syncer.nodes.registries import Mirror, MirrorSet, hosts_toml, merge, pull_secret_auths

AUTHS = pull_secret_auths({"auths": {"mirror.example.com": {"auth": "dXNlcjpwYXNz"},
                                     "mirror.example.net": {"username": "username",
                                                            "password": "password"}}})


def test_one_digest_mirror() -> None:
    text = hosts_toml(MirrorSet("registry.access.redhat.com",
                                (Mirror("example.io/example", False),), False), AUTHS)
    assert text.decode() == (
        'server = "https://registry.access.redhat.com/v2"\n\noverride_path = true\n\n'
        '[host."https://example.io/v2/example"]\n  capabilities = ["pull"]\n'
        "  override_path = true\n")


def test_never_contacting_the_source_makes_the_first_mirror_the_server() -> None:
    mirrors = (Mirror("example.io/example", True), Mirror("mirror.example.com/redhat", False),
               Mirror("mirror.example.net", True))
    text = hosts_toml(MirrorSet("registry.access.redhat.com", mirrors, True), AUTHS).decode()
    assert text.startswith('server = "https://example.io/v2/example"\n')
    assert ('[host."https://mirror.example.com/v2/redhat"]\n  capabilities = ["pull"]\n'
            '  override_path = true\n  [host."https://mirror.example.com/v2/redhat".header]\n'
            '    authorization = "Basic dXNlcjpwYXNz"\n') in text
    assert 'authorization = "Basic dXNlcm5hbWU6cGFzc3dvcmQ="' in text  # user/password form
    doc = tomllib.loads(text)  # containerd's hosts.toml is TOML
    assert doc["host"]["https://example.io/v2/example"]["capabilities"] == ["pull", "resolve"]


def test_mirror_sets_merge_per_registry() -> None:
    sets = merge([
        ("registry.access.redhat.com/ubi9/ubi-minimal", ["example.io/example/ubi-minimal"],
         False, False),
        ("registry.access.redhat.com/ubi8", ["mirror.example.com/redhat/ubi8"], True, False),
        ("registry.access.redhat.com/ubi9/ubi-minimal", ["example.io/example/ubi-minimal"],
         True, True),
        ("quay.io/openshift", ["quay.io/openshift"], False, False),
    ])
    assert [s.source for s in sets] == ["quay.io", "registry.access.redhat.com"]
    quay, redhat = sets
    assert quay.mirrors == (Mirror("quay.io", False),)  # source and mirror the same
    assert redhat.mirrors == (Mirror("example.io/example", True),  # tag resolving wins
                              Mirror("mirror.example.com/redhat", True))
    assert redhat.never_contact_source  # NeverContactSource wins
    assert hosts_toml(MirrorSet("quay.io", (), False), {}) == b""
