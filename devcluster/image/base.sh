#!/usr/bin/env bash
# Local base images for the connector's image, built from Debian packages: no container
# registry is reachable here, so `node:20-bookworm-slim` (the Dockerfile's default) cannot
# be pulled. One debootstrap (minbase) of Debian 13 (trixie), then two roots:
#   runtime  minbase + ca-certificates + this machine's own Node.js  -> the image's BASE (what ships)
#   build    minbase + Debian's nodejs (20.19) and npm                -> the image's BUILD_BASE (npm ci, tsc)
# Why the machine's Node at run time (docs/decisions.md): the connector under Debian 13's nodejs
# (built against the system's libuv 1.50, OpenSSL 3.5, llhttp 9.2) died on its first node status
# update with node-fetch's "Premature close"; the machine's Node is the one every test runs on.
# The roots are cached per ISO week (and Node version) outside the repo, like
# scripts/fresh-machine-check's, as tarballs; each podman store imports them once.
#
#   devcluster/image/base.sh [PODMAN_GLOBAL_ARGS...]
# prints two lines, "BASE=<image>" and "BUILD_BASE=<image>", after importing both into the
# podman store the arguments select (none: podman's default store).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
# shellcheck source=../../scripts/lib.sh
. "$root/scripts/lib.sh"

SUITE=trixie
# Bump when the recipe below changes (it is part of the cache key and the image tag).
RECIPE=v2
week=$(date -u +%G-W%V)
node_bin=$(readlink -f "$(command -v node)")
node_version=$("$node_bin" --version)
key="debian13-$RECIPE-node${node_version#v}-$week"
cache_root=${ACI_CONNECTOR_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/aci-connector}
dir="$cache_root/image-base/$key"

[ "$(id -u)" -eq 0 ] || { echo "devcluster/image/base.sh needs root (debootstrap, chroot)" >&2; exit 1; }

# The Debian mirror this machine's apt already uses (taken from its sources, not named here).
mirror() {
  local uri
  uri=$(grep -hE '^\s*URIs:' /etc/apt/sources.list.d/*.sources 2>/dev/null | awk '{print $2}' | grep -v -- '-security' | head -1 || true)
  [ -n "$uri" ] || uri=$(grep -hE '^\s*deb\s' /etc/apt/sources.list 2>/dev/null | awk '{print $2}' | grep -v -- '-security' | head -1 || true)
  [ -n "$uri" ] || { echo "no Debian mirror found in /etc/apt" >&2; exit 1; }
  echo "$uri"
}

# Files an image needs no copy of: apt's downloads and indexes, docs, man pages.
slim() { # slim ROOT
  rm -rf "$1"/var/cache/apt/archives/*.deb "$1"/var/cache/apt/*.bin "$1"/var/lib/apt/lists/* \
    "$1"/usr/share/doc/* "$1"/usr/share/man/* "$1"/usr/share/info/* "$1"/var/log/*.log "$1"/var/log/apt/*
}

pack() { # pack ROOT TARBALL
  tar --numeric-owner -C "$1" -cf "$2.partial" . && mv "$2.partial" "$2"
}

# Runs apt-get inside ROOT with /dev, /proc and DNS, in a private mount namespace so
# nothing stays mounted if this script dies.
chroot_apt() { # chroot_apt ROOT ARGS...
  local r=$1; shift
  cp /etc/resolv.conf "$r/etc/resolv.conf"
  unshare --mount --propagation private bash -c '
    set -e; r=$1; shift
    mount --rbind /dev "$r/dev"; mount -t proc proc "$r/proc"
    chroot "$r" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin DEBIAN_FRONTEND=noninteractive apt-get "$@"
  ' bash "$r" "$@"
  : > "$r/etc/resolv.conf"
}

mkdir -p "$cache_root/image-base"
exec 8>"$cache_root/image-base/.lock"
flock 8
if [ ! -f "$dir/.complete" ]; then
  command -v debootstrap >/dev/null || {
    step "installing debootstrap (builds the image's local base)"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends debootstrap >/dev/null
  }
  step "building the image's Debian 13 base roots with debootstrap (once a week)"
  rm -rf "$dir" "$dir.tmp"
  mkdir -p "$dir.tmp"
  r="$dir.tmp/root"
  log="$cache_root/image-base/debootstrap.log"
  nice -n 10 debootstrap --variant=minbase --include=ca-certificates "$SUITE" "$r" "$(mirror)" >"$log" 2>&1 || {
    tail -20 "$log" >&2; exit 1; }
  slim "$r"
  # The runtime root: this machine's Node (a self-contained build: glibc and libstdc++ only).
  install -m 0755 "$node_bin" "$r/usr/local/bin/node"
  chroot "$r" /usr/local/bin/node --version >/dev/null
  pack "$r" "$dir.tmp/runtime.tar"
  rm -f "$r/usr/local/bin/node"
  # The build root: Debian's nodejs and npm.
  chroot_apt "$r" update -qq
  chroot_apt "$r" install -y -qq --no-install-recommends nodejs npm >>"$log" 2>&1 || { tail -20 "$log" >&2; exit 1; }
  echo "    Debian $SUITE's Node.js for the build: $(chroot "$r" /usr/bin/node --version)" >&2
  slim "$r"
  pack "$r" "$dir.tmp/build.tar"
  rm -rf "$r"
  echo "$node_version" > "$dir.tmp/node-version"
  touch "$dir.tmp/.complete"
  mv "$dir.tmp" "$dir"
  # Older weeks' roots are stale.
  find "$cache_root/image-base" -maxdepth 1 -name 'debian13-*' ! -path "$dir" -exec rm -rf {} +
fi

# Import into the chosen podman store (once per store and week).
import() { # import TARBALL IMAGE
  if ! podman "${PODMAN_ARGS[@]}" image exists "$2"; then
    podman "${PODMAN_ARGS[@]}" import --quiet \
      --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
      --change 'CMD ["/usr/bin/node"]' "$1" "$2" >/dev/null
  fi
}
PODMAN_ARGS=("$@")
base="localhost/aci-connector-base/runtime:$key"
build="localhost/aci-connector-base/build:$key"
import "$dir/runtime.tar" "$base"
import "$dir/build.tar" "$build"
flock -u 8
echo "BASE=$base"
echo "BUILD_BASE=$build"
