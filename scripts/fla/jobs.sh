#!/usr/bin/env bash
# On the GPU machine, from the repository root, with .fla/ carried (fla/, whl/ and the vectors):
#   bash scripts/fla/jobs.sh JOBFILE SECONDS
# starts every line of JOBFILE ("LABEL PRECISION COMMAND...", PRECISION tf32 for Triton's default
# float32 dots or ieee for TRITON_F32_DEFAULT=ieee) at once, each stopped after SECONDS; $J in a
# command is /tmp/jobs, where outputs go. Each job's output is /tmp/jobs/LABEL.log; /tmp/jobs goes to
# $OUT/jobs.tar after every job (a stopped call keeps what finished), and /tmp/jobs/quiet is
# touched when all are done (scripts/fla/bench.py waits for it before timing).
set -uo pipefail
jobfile=$1 limit=$2
[ -d /tmp/site/einops ] || python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site .fla/whl/*.whl || exit 1
export PYTHONPATH=/tmp/site:$PWD/.fla PYTHONUNBUFFERED=1 TRITON_PRINT_AUTOTUNING=1 J=/tmp/jobs
mkdir -p "$J"
one() {
  local label=$1 prec=$2; shift 2
  local t0=$SECONDS
  if [ "$prec" = ieee ]; then export TRITON_F32_DEFAULT=ieee; else unset TRITON_F32_DEFAULT; fi
  timeout "$limit" bash -c "$*" >"$J/$label.log" 2>&1
  echo "$label $prec rc=$? wall_s=$((SECONDS - t0))" | tee -a "$J/runs.txt"
  flock "$J/.lock" bash -c "tar -cf '$OUT/jobs.tar.tmp' --exclude=.lock -C '$J' . 2>/dev/null; mv '$OUT/jobs.tar.tmp' '$OUT/jobs.tar'"
}
while read -r label prec cmd; do
  [ -z "$label" ] || [ "${label:0:1}" = "#" ] || one "$label" "$prec" "$cmd" &
done <"$jobfile"
wait
touch "$J/quiet"
