"""Runs a Python script (argv[1:]) as __main__ with torch.Tensor.argsort made stable: fla's
MomAttention as it would be with the fix `combined.argsort(stable=True)` (docs/fla-crosscheck.md)."""
import runpy
import sys

import torch

unstable = torch.Tensor.argsort
torch.Tensor.argsort = lambda self, *a, **k: unstable(self, *a, **{**k, "stable": True})
sys.argv = sys.argv[1:]
runpy.run_path(sys.argv[0], run_name="__main__")
