#!/usr/bin/env bash
# Builds openshift-check (main.go) from this module, which pins github.com/openshift/api,
# into the same cache directory as the test control plane (tools/kube/build.sh
# --bin-dir), and prints where the module's CRD manifests are. Cached: a rebuild only
# when go.mod, go.sum or a .go file change.
#
#   tools/openshift/build.sh             build (no-op when cached)
#   tools/openshift/build.sh --api-dir   print the directory of the pinned openshift/api
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
cd "$here"
api_dir() {
    go list -mod=mod -m -json github.com/openshift/api |
        python3 -c 'import json,sys; print(json.load(sys.stdin)["Dir"])'
}
if [[ "${1:-}" == --api-dir ]]; then
    go mod download github.com/openshift/api
    api_dir
    exit 0
fi
bin_dir=$("$here/../kube/build.sh" --bin-dir)
stamp=$( (cat go.mod go.sum ./*.go; go env GOVERSION) | sha256sum | cut -c1-16)
if [[ -x $bin_dir/openshift-check && "$(cat "$bin_dir/.openshift-stamp" 2>/dev/null)" == "$stamp" ]]; then
    echo "build.sh: openshift-check is cached in $bin_dir"
    exit 0
fi
mkdir -p "$bin_dir"
CGO_ENABLED=0 go build -buildvcs=false -trimpath -o "$bin_dir/openshift-check" .
echo "$stamp" >"$bin_dir/.openshift-stamp"
echo "build.sh: built openshift-check into $bin_dir (openshift/api in $(api_dir))"
