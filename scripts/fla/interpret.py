"""Runs a Python script (argv[1:]) as __main__ under Triton's CPU interpreter (TRITON_INTERPRET=1),
so that fla's Triton kernels run without a GPU: autotuning takes each kernel's first config (there
is no GPU to time), and `for i in range(n)` inside a kernel yields Triton scalars, as compiled code
does, instead of Python ints (fla calls `.to()` on such loop variables). The interpreter computes
every `tl.dot` as a float32 numpy matmul, whatever the input precision: IEEE float32 throughout.
Needs numpy < 2.3 (the interpreter turns 1-element arrays into Python ints)."""
import builtins
import os
import runpy
import sys

os.environ["TRITON_INTERPRET"] = "1"
import numpy as np                                    # noqa: E402
import triton.language as tl                          # noqa: E402
import triton.runtime.autotuner as autotuner         # noqa: E402
import triton.runtime.interpreter as interpreter     # noqa: E402

autotuner.Autotuner.do_bench = property(lambda self: (lambda fn, quantiles=None, **kw: [1.0, 1.0, 1.0] if quantiles else 1.0))
depth = [0]
grid_call = interpreter.GridExecutor.__call__


def counted_call(self, *args, **kwargs):
    depth[0] += 1
    try:
        return grid_call(self, *args, **kwargs)
    finally:
        depth[0] -= 1


interpreter.GridExecutor.__call__ = counted_call


def kernel_range(*args):
    r = builtins.range(*(int(a) if hasattr(a, "handle") else a for a in args))
    if not depth[0]:
        return r
    return (tl.core.tensor(interpreter.TensorHandle(np.array([i], dtype=np.int32), tl.int32), tl.int32) for i in r)


plain_import = builtins.__import__


def patching_import(name, *args, **kwargs):
    module = plain_import(name, *args, **kwargs)
    if name.startswith("fla"):
        for loaded, m in list(sys.modules.items()):
            if loaded.startswith("fla.") and m is not None:
                m.range = kernel_range             # module-level: kernels resolve `range` in their globals
    return module


builtins.__import__ = patching_import
sys.argv = sys.argv[1:]
runpy.run_path(sys.argv[0], run_name="__main__")
