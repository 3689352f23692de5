#!/usr/bin/env bash
# Writes momlab vectors for every config of scripts/fla/configs.json into DIR/<name>/ (seed 1).
set -euo pipefail
cd "$(dirname "$0")/../.."
out=${1:?usage: scripts/fla/make-vectors.sh DIR}
for name in $(node -e 'console.log(Object.keys(require("./scripts/fla/configs.json")).join(" "))'); do
  node -e 'const c=require("./scripts/fla/configs.json")[process.argv[1]]; require("fs").writeFileSync(process.argv[2], JSON.stringify(c.config))' "$name" "/tmp/fla-cfg-$name.json"
  read -r batch tokens < <(node -e 'const c=require("./scripts/fla/configs.json")[process.argv[1]]; console.log(c.batch, c.tokens)' "$name")
  npx tsx src/cli/main.ts vectors --config "/tmp/fla-cfg-$name.json" --seed 1 --batch "$batch" --tokens "$tokens" --out "$out/$name"
done
