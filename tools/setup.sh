#!/usr/bin/env bash
# Idempotent setup for a fresh machine: system packages, the Python virtualenv, and the
# test control plane binaries (built from Go modules once, cached under ~/.cache/syncer).
set -euo pipefail
cd "$(dirname "$0")/.."

# System packages (Debian). Only installed when missing, so reruns are instant.
need=()
for pkg in git openssh-client openssh-server gnupg; do
    dpkg -s "$pkg" >/dev/null 2>&1 || need+=("$pkg")
done
if [ ${#need[@]} -gt 0 ]; then
    echo "setup: installing ${need[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq && apt-get install -y -qq "${need[@]}" >/dev/null
fi

# Python virtualenv with syncer and its test tools.
if [ ! -x .venv/bin/python ]; then
    python3 -m venv .venv
fi
stamp=.venv/.installed-$(sha256sum pyproject.toml | cut -c1-16)
if [ ! -e "$stamp" ]; then
    echo "setup: installing Python packages"
    .venv/bin/pip install -q --upgrade pip
    .venv/bin/pip install -q -e '.[test]'
    rm -f .venv/.installed-* && touch "$stamp"
fi

# Test control plane: kube-apiserver, kubectl and etcd built from Go modules (no registry
# ships kube-apiserver), cached per version under ~/.cache/syncer/kube/; seconds when cached.
go_minor=$(go env GOVERSION 2>/dev/null | sed -n 's/^go1\.\([0-9]*\).*/\1/p')
if [ -z "$go_minor" ] || [ "$go_minor" -lt 24 ]; then
    echo "setup: Go 1.24 or newer is required to build the test control plane" \
         "(kube-apiserver, etcd); found: $(go version 2>/dev/null || echo none)" >&2
    exit 1
fi
./tools/kube/build.sh
