"""A CPU stand-in for the `fla` package: docs/examples/verify_with_fla.py runs unchanged with this
folder first on PYTHONPATH, fla's core kernels replaced by fla's own plain-PyTorch references
(fla/ops/gated_delta_rule/naive.py, loaded from $FLA_SRC, the `fla/` folder of an fla checkout).
MomAttention needs Triton and a GPU and is not offered. scripts/fla/naive-check.sh runs it."""
