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
# the bench, compiled: the reference and the GPU forward, decode and backward at small sizes
npx --no-install momlab bench --sizes small > bench.log 2>&1 || { cat bench.log >&2; echo "pack-check: momlab bench failed" >&2; exit 1; }
grep -q 'gated-delta recurrent, dk = dv = 64' bench.log || { cat bench.log >&2; echo "pack-check: momlab bench printed no reference row" >&2; exit 1; }
echo "bench: $(grep -c '^|' bench.log) table rows"
# the learn page from the installed package: prebuilt assets served on 127.0.0.1
npx --no-install momlab learn > learn.log 2>&1 &
learn=$!
url=
for _ in $(seq 1 600); do
  url=$(grep -o 'http://127\.0\.0\.1:[0-9]*/' learn.log | head -n 1 || true)
  [ -n "$url" ] && break
  kill -0 $learn 2>/dev/null || break
  sleep 0.2
done
[ -n "$url" ] || { cat learn.log >&2; echo "pack-check: momlab learn printed no URL" >&2; exit 1; }
node -e 'const u = process.argv[1]; Promise.all([fetch(u), fetch(u + "page.js")]).then(async ([a, b]) => { const page = await b.text(); if (!a.ok || !b.ok || page.length < 10000) { console.error(`pack-check: learn served ${a.status} / ${b.status}, page.js ${page.length} bytes`); process.exit(1); } console.log(`learn: / and page.js (${page.length} bytes) served at ${u}`); })' "$url"
kill $learn
