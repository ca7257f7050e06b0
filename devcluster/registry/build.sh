#!/usr/bin/env bash
# Builds the distribution registry (the CNCF reference OCI registry) from its pinned Go module
# (github.com/distribution/distribution/v3, a `tool` in go.mod) into a per-version cache outside
# the repo, once per machine, the way helm/build.sh builds helm. The tests push their images into
# it and pull from it, so image resolution and pulls are real. Prints the folder holding the
# binary as its last line.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=versions.env
. "$here/versions.env"

cache_root=${ACI_CONNECTOR_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/aci-connector}
# The key covers the module files too, so a regenerated go.sum never reuses a stale binary.
key=$(cat "$here/versions.env" "$here/go.mod" "$here/go.sum" | sha256sum | cut -c1-12)
out="$cache_root/registry/${REGISTRY_VERSION}-${key}"

complete() { [ -x "$out/registry" ]; }

if complete; then
  echo "reusing built registry in $out" >&2
  echo "$out"
  exit 0
fi

command -v go >/dev/null || { echo "go is required to build the registry (Debian: apt-get install golang, or the machine's Go)" >&2; exit 1; }

# Build under a lock so two runs on one machine never build the same folder at once.
mkdir -p "$cache_root/registry"
exec 9>"$cache_root/registry/.build.lock"
flock 9
if complete; then echo "reusing built registry in $out" >&2; echo "$out"; exit 0; fi

mod=github.com/distribution/distribution/v3
grep -q "^tool $mod/cmd/registry$" "$here/go.mod" || { echo "$here/go.mod has no tool directive for the registry" >&2; exit 1; }
# The module's own version must be the pin, or the binary would claim a version it is not.
modver=$(cd "$here" && go list -m -f '{{.Version}}' "$mod")
[ "$modver" = "$REGISTRY_VERSION" ] || { echo "go.mod pins the registry at $modver but versions.env says $REGISTRY_VERSION" >&2; exit 1; }

tmp="$out.tmp.$$"
rm -rf "$tmp"; mkdir -p "$tmp"
trap 'rm -rf "$tmp"' EXIT

# The same version stamp the registry's Makefile sets.
ldflags="-s -w -X $mod/version.version=${REGISTRY_VERSION} -X $mod/version.mainpkg=$mod"

start=$(date +%s)
echo "building registry ${REGISTRY_VERSION} into $out (first time on this machine: a few minutes)" >&2
export GOFLAGS="${GOFLAGS:-} -mod=mod -trimpath"
export CGO_ENABLED=0
(cd "$here" && nice -n 10 go build -ldflags "$ldflags" -o "$tmp/registry" "$mod/cmd/registry")
test -x "$tmp/registry" || { echo "build did not produce the registry" >&2; exit 1; }
"$tmp/registry" --version >&2
rm -rf "$out"; mv "$tmp" "$out"; trap - EXIT
echo "built registry in $(( $(date +%s) - start ))s: $out" >&2
echo "$out"
