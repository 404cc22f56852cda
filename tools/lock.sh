#!/usr/bin/env bash
# Regenerates the hash-locked requirement files under requirements/ from the ranges in
# pyproject.toml, with uv (itself installed from requirements/tools.txt, hash-checked, into
# .venv-lock). The lock files are plain pip requirement files, so installing them needs
# nothing but pip: `pip install --require-hashes --no-deps -r requirements/<file>.txt`.
#
#   requirements/dev.txt      runtime + test tools + build backend (tools/setup.sh, CI)
#   requirements/runtime.txt  runtime only, same versions as dev.txt (the Dockerfile)
#   requirements/build.txt    the build backend only, same version (the Dockerfile)
#   requirements/tools.txt    uv itself (this script)
#
# The files are universal: one resolution with environment markers for every platform
# and every Python >= 3.11, so the lock made here installs in the image too.
#
#   tools/lock.sh            keep every pin the ranges still allow; add what is new
#   tools/lock.sh --upgrade  move every pin to the newest release the ranges allow
set -euo pipefail
cd "$(dirname "$0")/.."
export PIP_DISABLE_PIP_VERSION_CHECK=1

upgrade=()
case "${1:-}" in
    --upgrade) upgrade=(--upgrade) ;;
    "") ;;
    *) echo "usage: $0 [--upgrade]" >&2; exit 2 ;;
esac

venv=.venv-lock
stamp=$venv/.installed-$(sha256sum requirements/tools.txt | cut -c1-16)
if [ ! -e "$stamp" ]; then
    rm -rf "$venv"
    python3 -m venv "$venv"
    "$venv/bin/pip" install -q --require-hashes --no-deps -r requirements/tools.txt
    touch "$stamp"
fi

compile() {
    "$venv/bin/uv" pip compile -q --universal --python-version 3.11 --generate-hashes \
        "${upgrade[@]}" "$@"
}
compile pyproject.toml --extra test requirements/build.in -o requirements/dev.txt
compile pyproject.toml -c requirements/dev.txt -o requirements/runtime.txt
compile requirements/build.in -c requirements/dev.txt -o requirements/build.txt
compile requirements/tools.in -o requirements/tools.txt
echo "lock: requirements/{dev,runtime,build,tools}.txt written"
git diff --stat -- requirements/ 2>/dev/null || true
