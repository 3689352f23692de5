#!/usr/bin/env bash
# fla's Triton kernels on CPU (Triton's interpreter, scripts/fla/interpret.py) against momlab:
# the runs of docs/fla-crosscheck.md, "fla's Triton kernels on CPU".
#   PYTHONPATH=<torch, triton 3.6, numpy < 2.3, einops, transformers, safetensors>:<fla checkout> \
#     scripts/fla/interpret-check.sh VECDIR GRADDIR OUTDIR
# VECDIR from scripts/fla/make-vectors.sh, GRADDIR from scripts/fla/make-grad-vectors.sh.
set -uo pipefail
cd "$(dirname "$0")/../.."
vec=${1:?usage: interpret-check.sh VECDIR GRADDIR OUTDIR} grad=${2:?} out=${3:?}
python3 -c 'import torch, triton, einops, transformers, safetensors, fla' 2>/dev/null ||
  { echo "interpret-check: python3 needs torch, triton, einops, transformers, safetensors and fla (PYTHONPATH)" >&2; exit 2; }
mkdir -p "$out"
run() { python3 -W ignore scripts/fla/interpret.py "$@"; }
example=docs/examples/verify_with_fla.py stable=scripts/fla/stable_argsort.py
check() { echo "== $*"; npx tsx src/cli/main.ts verify "$@" | tail -4; }
status=0
run $example "$vec/a-doc-T37" "$out/a-doc-T37.safetensors" chunk >/dev/null
run $stable $example "$vec/a-doc-T37" "$out/a-doc-T37.stable.safetensors" chunk >/dev/null
check --vectors "$vec/a-doc-T37" --outputs "$out/a-doc-T37.safetensors" --only core.,layer.y,layer.router_logits   # layer.y fails: the sort
check --vectors "$vec/a-doc-T37" --outputs "$out/a-doc-T37.stable.safetensors" --only core.,layer.y,layer.router_logits || status=1
run $example "$grad/suite16" "$out/suite16" chunk >/dev/null
check --vectors "$grad/suite16" --outputs "$out/suite16" || status=1
for set in b-doc-T300 d-single-T70 varlen-T70 varlen-T40; do
  run $stable $example "$grad/$set" "$out/$set.stable.safetensors" chunk >/dev/null
  check --vectors "$grad/$set" --outputs "$out/$set.stable.safetensors" --only core.,layer.y,layer.router_logits,layer.jvp. || status=1
done
run scripts/fla/train_probe.py "$vec/b-doc-T300" "$vec/g-hd64-T129" "$vec/c-top1-T100"
exit $status
