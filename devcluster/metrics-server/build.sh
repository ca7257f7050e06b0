#!/usr/bin/env bash
# Builds metrics-server from the pinned Go module (sigs.k8s.io/metrics-server, a `tool` in
# go.mod) into a per-version cache outside the repo, once per machine, the way helm/build.sh
# builds Helm. Prints the folder holding the binary as its last line.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=versions.env
. "$here/versions.env"

cache_root=${ACI_CONNECTOR_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/aci-connector}
# The key covers the module files too, so a regenerated go.sum never reuses a stale binary.
key=$(cat "$here/versions.env" "$here/go.mod" "$here/go.sum" | sha256sum | cut -c1-12)
out="$cache_root/metrics-server/${METRICS_SERVER_VERSION}-${key}"

complete() { [ -x "$out/metrics-server" ]; }

if complete; then
  echo "reusing built metrics-server in $out" >&2
  echo "$out"
  exit 0
fi

command -v go >/dev/null || { echo "go is required to build metrics-server (Debian: apt-get install golang, or the machine's Go)" >&2; exit 1; }

# Build under a lock so two runs on one machine never build the same folder at once.
mkdir -p "$cache_root/metrics-server"
exec 9>"$cache_root/metrics-server/.build.lock"
flock 9
if complete; then echo "reusing built metrics-server in $out" >&2; echo "$out"; exit 0; fi

grep -q "^tool sigs.k8s.io/metrics-server/cmd/metrics-server$" "$here/go.mod" || { echo "$here/go.mod has no tool directive for metrics-server" >&2; exit 1; }
# The module's own version must be the pin, or the binary would claim a version it is not.
modver=$(cd "$here" && go list -m -f '{{.Version}}' sigs.k8s.io/metrics-server)
[ "$modver" = "$METRICS_SERVER_VERSION" ] || { echo "go.mod pins metrics-server $modver but versions.env says $METRICS_SERVER_VERSION" >&2; exit 1; }

tmp="$out.tmp.$$"
rm -rf "$tmp"; mkdir -p "$tmp"
trap 'rm -rf "$tmp"' EXIT

# The version stamp metrics-server's Makefile sets (client-go's version package).
ldflags="-s -w -X k8s.io/client-go/pkg/version.gitVersion=${METRICS_SERVER_VERSION} -X k8s.io/client-go/pkg/version.gitTreeState=clean"

start=$(date +%s)
echo "building metrics-server ${METRICS_SERVER_VERSION} into $out (first time on this machine: a few minutes)" >&2
export GOFLAGS="${GOFLAGS:-} -mod=mod -trimpath"
export CGO_ENABLED=0
(cd "$here" && nice -n 10 go build -ldflags "$ldflags" -o "$tmp/metrics-server" sigs.k8s.io/metrics-server/cmd/metrics-server)
test -x "$tmp/metrics-server" || { echo "build did not produce metrics-server" >&2; exit 1; }
"$tmp/metrics-server" --version >&2 || true
rm -rf "$out"; mv "$tmp" "$out"; trap - EXIT
echo "built metrics-server in $(( $(date +%s) - start ))s: $out" >&2
echo "$out"
