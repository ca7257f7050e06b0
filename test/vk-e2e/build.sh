#!/usr/bin/env bash
# Builds Virtual Kubelet's e2e suite (main_test.go around the pinned module's test/e2e package)
# into a per-version cache outside the repo, once per machine, under a lock, like
# devcluster/kube/build.sh. Prints the test binary's path as its last line.
set -euo pipefail
dir=$(cd "$(dirname "$0")" && pwd)
mod=github.com/virtual-kubelet/virtual-kubelet
version=$(awk -v m="$mod" '$1==m {print $2} $2==m {print $3}' "$dir/go.mod" | head -1)
[ -n "$version" ] || { echo "no version of $mod in $dir/go.mod" >&2; exit 1; }
cache_root=${ACI_CONNECTOR_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/aci-connector}
key=$(cat "$dir/go.mod" "$dir/go.sum" "$dir/main_test.go" | sha256sum | cut -c1-12)
out="$cache_root/vk-e2e/${version}-${key}"
bin=vk-e2e.test

if [ -x "$out/$bin" ]; then echo "reusing vk-e2e $version in $out" >&2; echo "$out/$bin"; exit 0; fi
command -v go >/dev/null || { echo "go is required to build Virtual Kubelet's e2e suite" >&2; exit 1; }

mkdir -p "$cache_root/vk-e2e"
exec 9>"$cache_root/vk-e2e/.build.lock"
flock 9
if [ -x "$out/$bin" ]; then echo "reusing vk-e2e $version in $out" >&2; echo "$out/$bin"; exit 0; fi

tmp="$out.tmp.$$"
rm -rf "$tmp"; mkdir -p "$tmp"
trap 'rm -rf "$tmp"' EXIT
start=$(date +%s)
echo "building Virtual Kubelet's e2e suite $version into $out (first time on this machine: a few minutes)" >&2
export GOFLAGS="${GOFLAGS:-} -mod=mod -trimpath"
export CGO_ENABLED=0
(cd "$dir" && nice -n 10 go test -c -ldflags "-s -w" -o "$tmp/$bin" .)
test -x "$tmp/$bin"
rm -rf "$out"; mv "$tmp" "$out"; trap - EXIT
echo "built vk-e2e $version in $(( $(date +%s) - start ))s: $out" >&2
echo "$out/$bin"
