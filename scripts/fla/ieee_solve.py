"""Runs a Python script (argv[1:]) as __main__ with the triangular solve inside fla's chunked gated
delta rule forward (fla/ops/gated_delta_rule/chunk_fwd.py, SOLVE_TRIL_DOT_PRECISION, which fla fixes
to 'tf32' on GPUs that have TF32, whatever TRITON_F32_DEFAULT says) switched to 'ieee': with
TRITON_F32_DEFAULT=ieee, every dot of the forward is then IEEE float32."""
import runpy
import sys

import triton.language as tl
import fla.ops.gated_delta_rule.chunk_fwd as chunk_fwd

chunk_fwd.SOLVE_TRIL_DOT_PRECISION = tl.constexpr("ieee")
sys.argv = sys.argv[1:]
runpy.run_path(sys.argv[0], run_name="__main__")
