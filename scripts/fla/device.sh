#!/usr/bin/env bash
# On the GPU machine, from the repository root, with .fla/ carried (fla/, whl/, vec/):
#   bash scripts/fla/device.sh PRECISION SECONDS [JOBS]
# runs docs/examples/verify_with_fla.py, unchanged, on every .fla/vec/<config> with both core
# kernels, under Triton's default float32 dot precision (PRECISION=tf32) or TRITON_F32_DEFAULT=ieee,
# JOBS at a time, each run stopped after SECONDS (KERNELS="chunk" runs only the chunked core,
# VECS=".fla/vec/c-top1-T100/ ..." only those configs). All configs' chunk runs go first, so that
# the later runs find the layer's kernels tuned in Triton's cache. Outputs and logs go to
# $OUT/<precision>.tar, rewritten after every run so that a stopped call keeps what finished.
set -uo pipefail
here=$(dirname "$0") example=${EXAMPLE:-docs/examples/verify_with_fla.py}
prec=$1 limit=$2 jobs=${3:-4} kernels=${KERNELS:-chunk fused_recurrent}
[ -d /tmp/site/einops ] || python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site .fla/whl/*.whl || exit 1
export PYTHONPATH=/tmp/site:$PWD/.fla PYTHONUNBUFFERED=1 TRITON_PRINT_AUTOTUNING=1
[ "$prec" = ieee ] && export TRITON_F32_DEFAULT=ieee
work=/tmp/fla-$prec; mkdir -p "$work"
one() {  # one config, one core kernel: the example's outputs, its log, and its wall time
  local vec=$1 kernel=$2 name; name=$(basename "$vec").$kernel
  local t0=$SECONDS
  timeout "$limit" python3 "$example" "$vec" "$work/$name.safetensors" "$kernel" >"$work/$name.log" 2>&1
  echo "$name rc=$? wall_s=$((SECONDS - t0))" | tee -a "$work/runs.txt"
  flock "$work" bash -c "tar -cf '$OUT/$prec.tar.tmp' -C '$work' . && mv '$OUT/$prec.tar.tmp' '$OUT/$prec.tar'"
}
export -f one; export work limit here example prec
for k in $kernels; do for v in ${VECS:-.fla/vec/*/}; do echo "${v%/} $k"; done; done |
  xargs -P "$jobs" -L 1 bash -c 'one "$0" "$1"'
