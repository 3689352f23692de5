#!/usr/bin/env bash
# Makes `npm start`, `npm test` and `npm run bench` work on a fresh machine:
#  1. npm dependencies, when node_modules is missing or older than the lock file;
#  2. a WebGPU adapter: where Dawn finds none and the machine is Debian bookworm with root,
#     Mesa's software Vulkan driver (lavapipe) from bookworm-backports (bookworm's own Mesa 22.3
#     is refused by Dawn). Elsewhere it prints what to install and goes on (GPU tests then fail
#     with a message that says the same).
set -euo pipefail
cd "$(dirname "$0")/.."
export XDG_RUNTIME_DIR=${XDG_RUNTIME_DIR:-/tmp}

if [ ! -d node_modules/webgpu ] || [ ! -d node_modules/vitest ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  echo "momlab: installing npm dependencies (npm ci)" >&2
  npm ci --no-audit --no-fund >&2
fi

probe() { timeout 120 node scripts/probe-gpu.mjs 2>/dev/null; }
if probe >/dev/null; then exit 0; fi

echo "momlab: no WebGPU adapter found" >&2
codename=$( (. /etc/os-release 2>/dev/null && echo "${VERSION_CODENAME:-}") || true)
if [ "$(id -u)" = 0 ] && [ "$codename" = bookworm ] && command -v apt-get >/dev/null; then
  echo "momlab: installing Mesa's software Vulkan driver (lavapipe) from bookworm-backports" >&2
  src=/etc/apt/sources.list.d/momlab-backports.sources
  if ! grep -rqs 'bookworm-backports' /etc/apt/sources.list /etc/apt/sources.list.d/; then
    # same archive and key as the main Debian source
    uri=$(awk '/^URIs:/ {print $2; exit}' /etc/apt/sources.list.d/debian.sources 2>/dev/null || true)
    key=$(awk '/^Signed-By:/ {print $2; exit}' /etc/apt/sources.list.d/debian.sources 2>/dev/null || true)
    cat > "$src" <<SRC
Types: deb
URIs: ${uri:-http://deb.debian.org/debian}
Suites: bookworm-backports
Components: main
Signed-By: ${key:-/usr/share/keyrings/debian-archive-keyring.gpg}
SRC
  fi
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >&2
  apt-get install -y -qq -t bookworm-backports mesa-vulkan-drivers libvulkan1 >&2
  if probe >&2; then exit 0; fi
  echo "momlab: the driver installed, but Dawn still finds no adapter" >&2
  exit 1
fi
cat >&2 <<MSG
momlab: to run the GPU side, install a Vulkan driver Dawn accepts, for example:
  Debian 12 (bookworm): enable bookworm-backports, then
      apt-get install -t bookworm-backports mesa-vulkan-drivers libvulkan1
  Debian 13 / Ubuntu 24.04 or newer: apt-get install mesa-vulkan-drivers libvulkan1
  or the vendor's Vulkan driver for your GPU. Then set XDG_RUNTIME_DIR (e.g. /tmp).
MSG
exit 0
