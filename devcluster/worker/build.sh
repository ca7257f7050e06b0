#!/usr/bin/env bash
# Builds the worker node's kubelet from the pinned k8s.io/kubernetes module (the control
# plane's pin, ../kube/versions.env) into its own per-version cache outside the repo, once
# per machine. A cache of its own: the control plane's key (../kube/build.sh) is untouched.
# Prints the folder holding the binary as its last line.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=../kube/versions.env
. "$here/../kube/versions.env"

cache_root=${ACI_CONNECTOR_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/aci-connector}
key=$(cat "$here/../kube/versions.env" "$here/go.mod" "$here/go.sum" | sha256sum | cut -c1-12)
out="$cache_root/kubelet/${KUBE_VERSION}-${key}"

complete() { [ -x "$out/kubelet" ]; }
if complete; then echo "reusing built kubelet in $out" >&2; echo "$out"; exit 0; fi

command -v go >/dev/null || { echo "go is required to build the kubelet" >&2; exit 1; }
mkdir -p "$cache_root/kubelet"
exec 9>"$cache_root/kubelet/.build.lock"
flock 9
if complete; then echo "reusing built kubelet in $out" >&2; echo "$out"; exit 0; fi

tmp="$out.tmp.$$"
rm -rf "$tmp"; mkdir -p "$tmp"
trap 'rm -rf "$tmp"' EXIT
minor=${KUBE_VERSION#v1.}; minor=${minor%%.*}
vpkg=k8s.io/component-base/version
ldflags="-s -w -X $vpkg.gitVersion=${KUBE_VERSION} -X $vpkg.gitMajor=1 -X $vpkg.gitMinor=${minor} -X $vpkg.gitTreeState=clean -X $vpkg.buildDate=1970-01-01T00:00:00Z"
start=$(date +%s)
echo "building kubelet ${KUBE_VERSION} into $out (first time on this machine: several minutes)" >&2
# -mod=readonly: go.sum is complete (gen-gomod.sh tidies it); a build must never rewrite it.
export GOFLAGS="${GOFLAGS:-} -mod=readonly -trimpath"
export CGO_ENABLED=0
(cd "$here" && nice -n 10 go build -ldflags "$ldflags" -o "$tmp/kubelet" k8s.io/kubernetes/cmd/kubelet)
test -x "$tmp/kubelet" || { echo "build did not produce kubelet" >&2; exit 1; }
rm -rf "$out"; mv "$tmp" "$out"; trap - EXIT
echo "built kubelet in $(( $(date +%s) - start ))s: $out" >&2
echo "$out"
