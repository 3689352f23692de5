#!/usr/bin/env bash
# Writes the gradient vector sets of docs/fla-crosscheck.md into DIR: two edge suites with --grad
# (suite16: the default sizes with random initial states; suite64: dk = dv = 64, one head, E 3,
# top-2) and, with --grad, the layer configs of scripts/fla/configs.json above T = 64 (fla's
# MomAttention has a backward there only) and two left-padded layer batches (--lengths).
set -euo pipefail
cd "$(dirname "$0")/../.."
out=${1:?usage: scripts/fla/make-grad-vectors.sh DIR}
m() { npx tsx src/cli/main.ts vectors "$@"; }
m --suite edge --grad --initial-state random --seed 1 --out "$out/suite16" &
m --suite edge --grad --dk 64 --dv 64 --heads 1 --memories 3 --topk 2 --seed 2 --out "$out/suite64" &
cfg() { node -e 'const c=require("./scripts/fla/configs.json")[process.argv[1]]; require("fs").writeFileSync(process.argv[2], JSON.stringify(c.config))' "$1" "/tmp/fla-cfg-$1.json"; echo "/tmp/fla-cfg-$1.json"; }
size() { node -e 'const c=require("./scripts/fla/configs.json")[process.argv[1]]; console.log("--batch", c.batch, "--tokens", c.tokens)' "$1"; }
for name in b-doc-T300 c-top1-T100 d-single-T70 f-single-T200 g-hd64-T129 j-hd128-T65; do
  # shellcheck disable=SC2046
  m --config "$(cfg "$name")" $(size "$name") --grad --seed 1 --out "$out/$name" &
done
m --config "$(cfg a-doc-T37)" --lengths 5,70,1,37 --grad --seed 1 --out "$out/varlen-T70" &
m --config "$(cfg a-doc-T37)" --lengths 9,40,1,33 --seed 1 --out "$out/varlen-T40" &
wait
