#!/usr/bin/env bash
# The package as a user gets it: `npm pack`, installed into a fresh project next to vitest, then
# the compiled CLI (plain Node, no tsx), the type declarations of every entry point and a user's
# own vitest suite (test/package/) importing momlab/properties.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
export XDG_RUNTIME_DIR=${XDG_RUNTIME_DIR:-/tmp}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

cd "$repo"
npm pack --silent --pack-destination "$work" >/dev/null
tgz=$(ls "$work"/momlab-*.tgz)
vitest=$(node -p "require('./package.json').devDependencies.vitest")

mkdir "$work/app" && cd "$work/app"
echo '{ "name": "momlab-pack-check", "private": true, "type": "module" }' > package.json
cp "$repo"/test/package/* .
npm install --no-audit --no-fund --loglevel=error "$tgz" "vitest@$vitest"
if [ -e node_modules/tsx ]; then echo "pack-check: tsx was installed with the package; it must not be a runtime dependency" >&2; exit 1; fi

npx --no-install momlab --help
npx --no-install momlab trace --tokens 2
# the repository's compiler on the user's side (test/package/tsconfig.json: strict, no DOM lib):
# every entry point and its types resolve
node "$repo/node_modules/typescript/bin/tsc" -p tsconfig.json
npx --no-install vitest run
