#!/usr/bin/env bash
# Builds the connector's image with podman from the Dockerfile, on the local Debian 13 bases
# of base.sh (no container registry is reachable here, so none is ever pulled: --pull=never).
#
#   devcluster/image/build.sh [-t IMAGE] [-C CONTEXT] [-- PODMAN_GLOBAL_ARGS...]
#     -t  the image name (default localhost/aci-connector:<package.json version>)
#     -C  the build context, a checkout (default this one)
#     --  global podman flags selecting a store (--root …, --runroot …); none: podman's default
# Prints the image name as its last line.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
context=$(cd "$here/../.." && pwd)
image=""
while [ $# -gt 0 ]; do
  case "$1" in
    -t) image=$2; shift 2 ;;
    -C) context=$(cd "$2" && pwd); shift 2 ;;
    --) shift; break ;;
    *) echo "usage: $0 [-t IMAGE] [-C CONTEXT] [-- PODMAN_GLOBAL_ARGS...]" >&2; exit 2 ;;
  esac
done
podman_args=("$@")
if [ -z "$image" ]; then
  version=$(sed -n 's/^  "version": "\(.*\)",$/\1/p' "$context/package.json" | head -1)
  image="localhost/aci-connector:${version:-dev}"
fi

bases=$("$here/base.sh" "${podman_args[@]}")
base=$(sed -n 's/^BASE=//p' <<<"$bases")
build_base=$(sed -n 's/^BUILD_BASE=//p' <<<"$bases")
[ -n "$base" ] && [ -n "$build_base" ] || { echo "base.sh printed no base images" >&2; exit 1; }

# The CAs the host's npm trusts (npm's cafile, else NODE_EXTRA_CA_CERTS): behind a TLS-inspecting
# proxy, as on this machine, the registry's chain ends in a local CA that Debian's bundle in the
# base lacks. The file is mounted for the build stage only (a path, no secret; the final stage
# never sees it). BUILD_CA_FILE overrides; BUILD_CA_FILE=none mounts nothing.
ca_args=()
ca=${BUILD_CA_FILE:-$(npm config get cafile 2>/dev/null || true)}
case "$ca" in null | undefined | "") ca=${NODE_EXTRA_CA_CERTS:-} ;; esac
if [ -n "$ca" ] && [ "$ca" != none ] && [ -r "$ca" ]; then
  ca_args=(--volume "$ca:/run/aci-build-ca.crt:ro" --build-arg NPM_CONFIG_CAFILE=/run/aci-build-ca.crt)
fi

start=$SECONDS
echo "building $image from $context on $base" >&2
# Host network: the build's npm ci reaches the npm registry the way the host's does
# (a private store has no container network of its own configured).
podman "${podman_args[@]}" build --pull=never --network host "${ca_args[@]}" \
  --build-arg "BASE=$base" --build-arg "BUILD_BASE=$build_base" \
  -t "$image" -f "$context/Dockerfile" "$context" >&2
echo "built $image in $((SECONDS - start)) s" >&2
echo "$image"
