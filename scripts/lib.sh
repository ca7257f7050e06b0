# Shared by scripts/test and scripts/demo: install steps, each a no-op when done.
# Each step says how long the one before it took.
step() {
  if [ -n "${_step_name:-}" ]; then printf '    (%s took %ss)\n' "$_step_name" $((SECONDS - _step_start)) >&2; fi
  _step_name=$*; _step_start=$SECONDS
  printf '\n==> %s\n' "$*" >&2
}

# Debian packages the project needs at run time. They are installed with
# --no-install-recommends, so every package that a tool only *recommends* but we
# rely on is named here too (a fresh machine has nothing else; .ci/fresh-machine proves it).
#   podman          the emulator's real containers (podman pods, podman build)
#   runc            podman's OCI runtime here: crun fails on these hybrid cgroups
#   conmon          podman's container monitor (a Depends of podman; named for the preflight)
#   catatonit       init binary of podman's local pause image, which `podman pod create` builds;
#                   podman only Recommends catatonit | tini | dumb-init
#   slirp4netns     pods' user-mode network; podman only Recommends it
#   uidmap          newuidmap/newgidmap for user namespaces; podman only Recommends it
#   netavark        podman's network backend; containers-common only Recommends it
#   busybox-static  the locally built test images (no registry is reachable)
#   iproute2        `ip` for the network namespaces tests create, and the emulator's VNet groups' veth pairs
#   git             gitRepo volumes in the emulator
#   ca-certificates TLS to the package registries npm and go use
#   debootstrap     the connector image's local Debian 13 base (devcluster/image/base.sh), since
#                   no container registry is reachable to pull node:20 from
#   containerd      the worker node's container runtime (devcluster/worker, `devcluster up --worker`);
#                   it runs containers with the runc above. catatonit is also its pause image.
#   containernetworking-plugins  the worker's CNI plugin (loopback only: no pod network here)
APT_PACKAGES=(podman runc conmon catatonit slirp4netns uidmap netavark busybox-static iproute2 git ca-certificates
  debootstrap containerd containernetworking-plugins)

ensure_system_packages() {
  local missing=() p
  for p in "${APT_PACKAGES[@]}"; do
    # Only scripts/fresh-machine-check sets this, to prove that a missing package is caught.
    case " ${ACI_APT_OMIT:-} " in *" $p "*) continue ;; esac
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
