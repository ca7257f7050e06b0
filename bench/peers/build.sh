#!/usr/bin/env bash
# Builds one peer of the benchmark (kwok or vk) from its pinned Go module into a
# per-version cache outside the repo, once per machine, like devcluster/kube/build.sh.
# Usage: build.sh kwok|vk   Prints the binary's path as its last line.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
tool=${1:?usage: build.sh kwok|vk}
case "$tool" in
  kwok) pkg=sigs.k8s.io/kwok/cmd/kwok; mod=sigs.k8s.io/kwok; bin=kwok ;;
  vk) pkg=github.com/virtual-kubelet/virtual-kubelet/cmd/virtual-kubelet; mod=github.com/virtual-kubelet/virtual-kubelet; bin=virtual-kubelet ;;
  *) echo "unknown peer $tool (kwok or vk)" >&2; exit 2 ;;
esac
dir="$here/$tool"
# The version is the one go.mod pins (the tool's own module line).
version=$(awk -v m="$mod" '$1==m {print $2} $2==m {print $3}' "$dir/go.mod" | head -1)
[ -n "$version" ] || { echo "no version of $mod in $dir/go.mod" >&2; exit 1; }
cache_root=${ACI_CONNECTOR_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/aci-connector}
key=$(cat "$dir/go.mod" "$dir/go.sum" | sha256sum | cut -c1-12)
out="$cache_root/$tool/${version}-${key}"

# KWOK runs with kwokctl's default stages (node-initialize, node-heartbeat, pod-ready,
# pod-complete, pod-delete), read from the module's own files next to the binary.
stages() {
  [ "$tool" = kwok ] || return 0
  [ -s "$out/stages.yaml" ] && return 0
  local src; src=$(cd "$dir" && go list -m -f '{{.Dir}}' "$mod")/kustomize/stage
  local f first=1
  for f in node/fast/node-initialize.yaml node/heartbeat/node-heartbeat.yaml pod/fast/pod-ready.yaml pod/fast/pod-complete.yaml pod/fast/pod-delete.yaml; do
    [ $first = 1 ] || echo '---'; first=0; cat "$src/$f"
  done > "$out/stages.yaml.$$" && mv "$out/stages.yaml.$$" "$out/stages.yaml"
}

if [ -x "$out/$bin" ]; then stages; echo "reusing $tool $version in $out" >&2; echo "$out/$bin"; exit 0; fi
command -v go >/dev/null || { echo "go is required to build $tool" >&2; exit 1; }

mkdir -p "$cache_root/$tool"
exec 9>"$cache_root/$tool/.build.lock"
flock 9
if [ -x "$out/$bin" ]; then stages; echo "reusing $tool $version in $out" >&2; echo "$out/$bin"; exit 0; fi

tmp="$out.tmp.$$"
rm -rf "$tmp"; mkdir -p "$tmp"
trap 'rm -rf "$tmp"' EXIT
start=$(date +%s)
echo "building $tool $version into $out (first time on this machine: a few minutes)" >&2
export GOFLAGS="${GOFLAGS:-} -mod=mod -trimpath"
export CGO_ENABLED=0
(cd "$dir" && go build -ldflags "-s -w" -o "$tmp/$bin" "$pkg")
test -x "$tmp/$bin"
rm -rf "$out"; mv "$tmp" "$out"; trap - EXIT
stages
echo "built $tool $version in $(( $(date +%s) - start ))s: $out" >&2
echo "$out/$bin"
