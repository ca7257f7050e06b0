#!/usr/bin/env bash
# Builds helm from the pinned Go module (helm.sh/helm/v3, a `tool` in go.mod) into a
# per-version cache outside the repo, once per machine, the way kube/build.sh builds
# the control plane. Prints the folder holding the binary as its last line.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=versions.env
. "$here/versions.env"

cache_root=${ACI_CONNECTOR_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/aci-connector}
# The key covers the module files too, so a regenerated go.sum never reuses a stale binary.
key=$(cat "$here/versions.env" "$here/go.mod" "$here/go.sum" | sha256sum | cut -c1-12)
out="$cache_root/helm/${HELM_VERSION}-${key}"

complete() { [ -x "$out/helm" ]; }

if complete; then
  echo "reusing built helm in $out" >&2
  echo "$out"
  exit 0
fi

command -v go >/dev/null || { echo "go is required to build helm (Debian: apt-get install golang, or the machine's Go)" >&2; exit 1; }

# Build under a lock so two runs on one machine never build the same folder at once.
mkdir -p "$cache_root/helm"
exec 9>"$cache_root/helm/.build.lock"
flock 9
if complete; then echo "reusing built helm in $out" >&2; echo "$out"; exit 0; fi

grep -q "^tool helm.sh/helm/v3/cmd/helm$" "$here/go.mod" || { echo "$here/go.mod has no tool directive for helm" >&2; exit 1; }
# The module's own version must be the pin, or the binary would claim a version it is not.
modver=$(cd "$here" && go list -m -f '{{.Version}}' helm.sh/helm/v3)
[ "$modver" = "$HELM_VERSION" ] || { echo "go.mod pins helm $modver but versions.env says $HELM_VERSION" >&2; exit 1; }

tmp="$out.tmp.$$"
rm -rf "$tmp"; mkdir -p "$tmp"
trap 'rm -rf "$tmp"' EXIT

# The same version stamps helm's Makefile sets: helm's own version, and the Kubernetes
# version lint and template assume, taken from the client-go it is built with.
k8s=$(cd "$here" && go list -m -f '{{.Version}}' k8s.io/client-go)   # v0.MINOR.PATCH
k8s_minor=${k8s#v0.}; k8s_minor=${k8s_minor%%.*}
ldflags="-s -w -X helm.sh/helm/v3/internal/version.version=${HELM_VERSION} -X helm.sh/helm/v3/internal/version.gitTreeState=clean"
for p in pkg/lint/rules pkg/chartutil; do
  ldflags+=" -X helm.sh/helm/v3/$p.k8sVersionMajor=1 -X helm.sh/helm/v3/$p.k8sVersionMinor=${k8s_minor}"
done

start=$(date +%s)
echo "building helm ${HELM_VERSION} into $out (first time on this machine: a few minutes)" >&2
export GOFLAGS="${GOFLAGS:-} -mod=mod -trimpath"
export CGO_ENABLED=0
(cd "$here" && go build -ldflags "$ldflags" -o "$tmp/helm" helm.sh/helm/v3/cmd/helm)
test -x "$tmp/helm" || { echo "build did not produce helm" >&2; exit 1; }
"$tmp/helm" version --short >&2
rm -rf "$out"; mv "$tmp" "$out"; trap - EXIT
echo "built helm in $(( $(date +%s) - start ))s: $out" >&2
echo "$out"
