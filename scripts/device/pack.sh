#!/usr/bin/env bash
# Packs what a run on a bare GPU machine (NVIDIA driver, but no Node.js, no Vulkan loader, no network)
# needs into .device/ (git-ignored) of the project checkout: a Node.js binary, the Dawn WebGPU addon,
# the Vulkan loader, and one bundled .mjs per entry file (about 30 MB).
# Usage (from the project root, after npm install):  scripts/device/pack.sh bench/gpu.ts [more entries]
# Then copy .device/ to the GPU machine and run there, from the directory holding it:
#   bash .device/run.sh .device/gpu.mjs --sizes large --out results/
set -euo pipefail
root=$(git rev-parse --show-toplevel)
cd "$root"
out=.device
mkdir -p "$out/node_modules"
# Node.js: the same binary as here, compressed (.device/ travels to the GPU machine whole)
[ -f "$out/node.xz" ] || xz -T2 -6 -c "$(readlink -f "$(command -v node)")" > "$out/node.xz"
# Dawn addon: the JS of the webgpu package, and its linux-x64 binary compressed
if [ ! -f "$out/dawn.node.xz" ]; then
  rm -rf "$out/node_modules/webgpu"
  cp -r node_modules/webgpu "$out/node_modules/webgpu"
  rm -rf "$out/node_modules/webgpu/dist"/{darwin-universal,win32-x64,win32-arm64,linux-arm64}
  xz -T2 -6 -c node_modules/webgpu/dist/linux-x64/dawn.node > "$out/dawn.node.xz"
  rm -f "$out/node_modules/webgpu/dist/linux-x64/dawn.node"
  for dep in debug ms; do [ -d "node_modules/$dep" ] && cp -r "node_modules/$dep" "$out/node_modules/"; done
fi
# Vulkan loader and the GL dispatch libraries that NVIDIA's Vulkan driver needs (the device machine has neither)
if ! ls "$out"/gl/libvulkan1_*.deb >/dev/null 2>&1; then
  mkdir -p "$out/gl" /tmp/amd64/partial
  o='-oAPT::Architecture=amd64 -oAPT::Architectures=amd64 -oDir::State::Lists=/tmp/amd64'
  apt-get $o update -qq >/dev/null 2>&1 || true
  (cd "$out/gl" && apt-get $o download libvulkan1 libegl1 libglvnd0 libopengl0 libgl1 libglx0 libgles2 >/dev/null 2>&1)
fi
# Bundle each entry into one ESM file; webgpu stays external (resolved from .device/node_modules)
esb=node_modules/.bin/esbuild
[ -x "$esb" ] || esb="npx --yes esbuild"
for entry in "$@"; do
  name=$(basename "${entry%.*}")
  $esb "$entry" --bundle --platform=node --format=esm --target=node20 --external:webgpu \
    --banner:js="import { createRequire as __cr } from 'module'; const require = __cr(import.meta.url);" \
    --outfile="$out/$name.mjs" --log-level=warning
done
cat > "$out/run.sh" <<'RUN'
#!/usr/bin/env bash
# Runs on the device machine: unpack the loader, Node and Dawn, then run node with the given arguments.
set -e
here=$(cd "$(dirname "$0")" && pwd)
for f in "$here"/gl/*.deb; do dpkg -x "$f" /; done; ldconfig
icd=/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json
[ -f "$icd" ] && export VK_DRIVER_FILES=$icd
export XDG_RUNTIME_DIR=${XDG_RUNTIME_DIR:-/tmp}
mkdir -p /tmp/n
[ -x /tmp/n/node ] || { xz -dc "$here/node.xz" > /tmp/n/node; chmod +x /tmp/n/node; }
d="$here/node_modules/webgpu/dist/linux-x64/dawn.node"
[ -f "$d" ] || xz -dc "$here/dawn.node.xz" > "$d"
exec /tmp/n/node "$@"
RUN
chmod +x "$out/run.sh"
# a dawn.node unpacked by a local trial of run.sh would travel uncompressed: drop it
rm -f "$out/node_modules/webgpu/dist/linux-x64/dawn.node"
du -sh "$out"
