#!/usr/bin/env bash
# Runs docs/examples/verify_with_fla.py, unchanged, on CPU with fla's own plain-PyTorch references
# in place of its Triton kernels (scripts/fla/naive_fla: fla/ops/gated_delta_rule/naive.py's
# naive_chunk_gated_delta_rule as `chunk`, naive_recurrent_gated_delta_rule as `fused_recurrent`),
# over edge suites with gradients, and checks the outputs with `momlab verify`:
#   FLA_SRC=path/to/fla PYTHONPATH=<torch, einops, safetensors> scripts/fla/naive-check.sh WORKDIR
# FLA_SRC is the `fla/` folder of an fla checkout. Needs python3 with torch, einops and safetensors.
set -uo pipefail
cd "$(dirname "$0")/../.."
work=${1:?usage: scripts/fla/naive-check.sh WORKDIR}
: "${FLA_SRC:?set FLA_SRC to the fla/ folder of an fla checkout}"
python3 -c 'import torch, einops, safetensors' 2>/dev/null || { echo "naive-check: python3 needs torch, einops and safetensors (PYTHONPATH)" >&2; exit 2; }
export PYTHONPATH=scripts/fla/naive_fla${PYTHONPATH:+:$PYTHONPATH}
mkdir -p "$work"
m() { npx tsx src/cli/main.ts vectors "$@" --force >/dev/null; }
m --suite edge --grad --initial-state random --seed 1 --out "$work/suite16"
m --suite edge --grad --dk 64 --dv 64 --heads 1 --memories 3 --topk 2 --seed 2 --out "$work/suite64"
status=0
for suite in suite16 suite64; do
  for kernel in chunk fused_recurrent; do
    out="$work/out/$suite.$kernel"
    python3 docs/examples/verify_with_fla.py "$work/$suite" "$out" "$kernel" 2>&1 | grep -v '^wrote' | sort -u
    only=(); [ "$kernel" = fused_recurrent ] && only=(--only core.o,core.final_state)
    echo "== $suite, fla's naive $kernel, momlab verify --precision fp32"
    npx tsx src/cli/main.ts verify --vectors "$work/$suite" --outputs "$out" "${only[@]}" || status=1
  done
done
exit $status
