#!/usr/bin/env bash
# Here (Node), after a device run: checks every outputs file DIR/<config>.<kernel>.safetensors with
# `momlab verify` against VECDIR/<config> and prints one markdown row per file:
#   scripts/fla/verify-all.sh VECDIR DIR PRECISION-LABEL
# Columns: error ratios (docs/spec.md §9) of core.o, the worst core.final_state.*, layer.y and
# layer.router_logits, then verify's verdict at the manifest's 1e-4 and at --precision tf32 (6e-3, fla's bound).
set -uo pipefail
cd "$(dirname "$0")/../.."
vecs=$1 dir=$2 label=$3
verdict() { case $1 in 0) echo pass ;; 1) echo FAIL ;; *) echo "error $1" ;; esac; }
for f in "$dir"/*.safetensors; do
  base=$(basename "$f" .safetensors) config=${base%.*} kernel=${base##*.}
  args=(--vectors "$vecs/$config" --outputs "$f" --only core.,layer.y,layer.router_logits)
  report=$(npx tsx src/cli/main.ts verify "${args[@]}" 2>&1); rc=$?
  npx tsx src/cli/main.ts verify "${args[@]}" --precision tf32 >/dev/null 2>&1; rc6=$?
  echo "$report" | awk -v c="$config" -v k="$kernel" -v l="$label" -v r1="$(verdict $rc)" -v r6="$(verdict $rc6)" '
    $1 == "core.o" { o = $2 } $1 == "layer.y" { y = $2 } $1 == "layer.router_logits" { z = $2 }
    $1 ~ /^core\.final_state\./ { if (s == "" || $2 + 0 > s + 0) s = $2 }
    END { printf "| %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", c, k, l, o, s, y, z, r1, r6 }'
  [ "$rc" -gt 1 ] && echo "$report" >&2
done
