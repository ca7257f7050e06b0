# Shared by scripts/test and scripts/demo: install steps, each a no-op when done.
step() { printf '\n==> %s\n' "$*" >&2; }

# Debian packages the project needs at run time: podman with runc for the emulator's
# real containers, busybox-static for locally built test images, iproute2 and openssl.
APT_PACKAGES=(podman runc uidmap slirp4netns busybox-static iproute2 openssl git ca-certificates)

ensure_system_packages() {
  local missing=() p
  for p in "${APT_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
  done
  if [ ${#missing[@]} -gt 0 ]; then
    step "installing Debian packages: ${missing[*]}"
    local sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  fi
  command -v node >/dev/null || { echo "Node.js 20 or newer is required" >&2; exit 1; }
  command -v go >/dev/null || { echo "Go is required to build the control plane" >&2; exit 1; }
}

ensure_node_modules() {
  # npm ci only when the lock file changed since the last install, to keep warm runs fast.
  local stamp=node_modules/.aci-lock-hash want
  want=$(sha256sum package-lock.json | cut -c1-16)
  if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
    step "installing npm packages (npm ci)"
    npm ci --no-audit --no-fund --loglevel=error
    echo "$want" > "$stamp"
  fi
}
