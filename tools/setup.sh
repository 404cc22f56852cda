#!/usr/bin/env bash
# Idempotent setup for a fresh machine: system packages, the Python virtualenv, and the
# test control plane binaries (built from Go modules once, cached under ~/.cache/syncer).
set -euo pipefail
cd "$(dirname "$0")/.."
case "${1:-}" in
    --latest) mode=latest ;;
    "") mode=lock ;;
    *) echo "usage: $0 [--latest]" >&2; exit 2 ;;
esac

# System packages (Debian). Only installed when missing, so reruns are instant.
need=()
for pkg in git openssh-client openssh-server gnupg libnss-wrapper; do
    dpkg -s "$pkg" >/dev/null 2>&1 || need+=("$pkg")
done
if [ ${#need[@]} -gt 0 ]; then
    echo "setup: installing ${need[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq && apt-get install -y -qq "${need[@]}" >/dev/null
fi

# Python virtualenvs. Every package comes from a hash-locked file under requirements/
# (tools/lock.sh writes them); pip installs exactly those versions and nothing else
# (--require-hashes --no-deps), then syncer itself, editable, with the locked build
# backend. A changed lock or pyproject.toml rebuilds the virtualenv from scratch, so
# nothing from an earlier lock lingers.
#   tools/setup.sh            .venv from requirements/dev.txt (make setup, make test, CI)
#   tools/setup.sh --latest   .venv-latest from the newest releases pyproject.toml allows
#                             (make test-latest: find a breaking upstream release on purpose)
export PIP_DISABLE_PIP_VERSION_CHECK=1
if [ "$mode" = latest ]; then
    echo "setup: .venv-latest from the newest releases pyproject.toml's ranges allow"
    rm -rf .venv-latest
    python3 -m venv .venv-latest
    .venv-latest/bin/pip install -q --upgrade pip
    .venv-latest/bin/pip install -q --upgrade --upgrade-strategy eager -e '.[test]'
    .venv-latest/bin/pip list --format=freeze >.venv-latest/versions.txt
    echo "setup: newest releases installed (.venv-latest/versions.txt):"
    grep -iE '^(cryptography|paramiko|kubernetes|gitpython|ruamel.yaml|pytest|mypy|ruff)==' \
        .venv-latest/versions.txt | tr '\n' ' '
    echo
else
    stamp=.venv/.installed-$(cat pyproject.toml requirements/dev.txt | sha256sum | cut -c1-16)
    if [ ! -e "$stamp" ]; then
        echo "setup: installing Python packages from requirements/dev.txt (hash-checked)"
        rm -rf .venv
        python3 -m venv .venv
        .venv/bin/pip install -q --require-hashes --no-deps -r requirements/dev.txt
        .venv/bin/pip install -q --no-deps --no-build-isolation -e .
        .venv/bin/pip check >/dev/null || { .venv/bin/pip check >&2; exit 1; }
        touch "$stamp"
    fi
fi

# Test control plane: kube-apiserver, kubectl and etcd built from Go modules (no registry
# ships kube-apiserver), plus node-check and openshift-check (the real components' own
# validation, for the simulators), cached per version under ~/.cache/syncer/kube/; seconds
# when cached. The Go version needed is the highest `go` line of the tools' go.mod files.
need_go=$(awk '$1 == "go" { print $2 }' tools/kube/go.mod tools/openshift/go.mod | sort -V | tail -1)
have_go=$(go env GOVERSION 2>/dev/null | sed 's/^go//') || have_go=""
if [ -z "$have_go" ] || [ "$(printf '%s\n%s\n' "$need_go" "$have_go" | sort -V | head -1)" != "$need_go" ]; then
    echo "setup: Go $need_go or newer is required to build the test control plane" \
         "(tools/kube, tools/openshift); found: $(go version 2>/dev/null || echo none)." \
         "Install it from https://go.dev/dl/ and run make setup again." >&2
    exit 1
fi
./tools/kube/build.sh
./tools/openshift/build.sh
