#!/usr/bin/env bash
# Installs Debian's `chromium` (headless, with a software WebGPU adapter behind
# --enable-unsafe-webgpu) for test/learn-browser.test.ts, when it is missing and the machine is
# Debian with root. Elsewhere it prints what to install and goes on: the browser test then skips,
# except under CI, where it fails.
set -euo pipefail
if [ -x /usr/bin/chromium ]; then exit 0; fi
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null && grep -qs '^ID=debian' /etc/os-release; then
  echo "momlab: installing Debian's chromium (for the learn page's browser test)" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >&2
  apt-get install -y -qq chromium >&2
  exit 0
fi
echo "momlab: /usr/bin/chromium is missing; on Debian install it with: apt-get install chromium (the learn page's browser test needs it)" >&2
exit 0
