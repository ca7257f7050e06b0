#!/usr/bin/env bash
# Builds etcd, kube-apiserver, kube-controller-manager, kube-scheduler and kubectl
# from the pinned Go modules into a per-version cache outside the repo, once per
# machine. Prints the folder holding the binaries as its last line.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=versions.env
. "$here/versions.env"

cache_root=${ACI_CONNECTOR_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/aci-connector}
# The key covers the module files too, so a regenerated go.sum never reuses stale binaries.
key=$(cat "$here/versions.env" "$here/go.mod" "$here/go.sum" "$here/../etcd/go.mod" "$here/../etcd/go.sum" "$here/../etcd/main.go" | sha256sum | cut -c1-12)
out="$cache_root/kube/${KUBE_VERSION}-etcd-${ETCD_VERSION}-${key}"
bins=(etcd kube-apiserver kube-controller-manager kube-scheduler kubectl)

complete() { for b in "${bins[@]}"; do [ -x "$out/$b" ] || return 1; done; }

if complete; then
  echo "reusing built control plane binaries in $out" >&2
  echo "$out"
  exit 0
fi

command -v go >/dev/null || { echo "go is required to build the control plane (Debian: apt-get install golang, or the machine's Go)" >&2; exit 1; }

# Build under a lock so two runs on one machine never build the same folder at once.
mkdir -p "$cache_root/kube"
exec 9>"$cache_root/kube/.build.lock"
flock 9
if complete; then echo "reusing built control plane binaries in $out" >&2; echo "$out"; exit 0; fi

tmp="$out.tmp.$$"
rm -rf "$tmp"; mkdir -p "$tmp"
trap 'rm -rf "$tmp"' EXIT

minor=${KUBE_VERSION#v1.}; minor=${minor%%.*}
vpkg=k8s.io/component-base/version
ldflags="-s -w -X $vpkg.gitVersion=${KUBE_VERSION} -X $vpkg.gitMajor=1 -X $vpkg.gitMinor=${minor} -X $vpkg.gitTreeState=clean -X $vpkg.buildDate=1970-01-01T00:00:00Z"

start=$(date +%s)
progress() { # go build -v names each package as it compiles; count them so a person sees it moving
  local n=0 line
  while IFS= read -r line; do
    # A package path has no spaces; anything else (compiler errors, go's messages) is shown as is.
    case "$line" in
      *" "*) echo "$line" >&2 ;;
      *) n=$((n+1)); if (( n % 200 == 0 )); then echo "  [$1] $n packages compiled ($(( $(date +%s) - start ))s)" >&2; fi ;;
    esac
  done
}

echo "building control plane ${KUBE_VERSION} and etcd ${ETCD_VERSION} into $out (first time on this machine: several minutes)" >&2
export GOFLAGS="${GOFLAGS:-} -mod=mod -trimpath"
export CGO_ENABLED=0
(cd "$here/../etcd" && go build -v -ldflags "-s -w" -o "$tmp/etcd" . 2>&1) | progress etcd
test -x "$tmp/etcd"
(cd "$here" && go build -v -ldflags "$ldflags" -o "$tmp/" \
  k8s.io/kubernetes/cmd/kube-apiserver k8s.io/kubernetes/cmd/kube-controller-manager \
  k8s.io/kubernetes/cmd/kube-scheduler k8s.io/kubernetes/cmd/kubectl 2>&1) | progress kube
for b in "${bins[@]}"; do test -x "$tmp/$b" || { echo "build did not produce $b" >&2; exit 1; }; done
rm -rf "$out"; mv "$tmp" "$out"; trap - EXIT
echo "built control plane in $(( $(date +%s) - start ))s: $out" >&2
echo "$out"
