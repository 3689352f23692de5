"""Times fla's gated delta rule kernels on the MoM core forward at docs/perf.md's three shapes
(E = 4, top-2, shared memory on, float32): `kernel` is one varlen call over every memory's gathered
segments, `whole` adds what momlab's forward also does (router softmax/top-k, gather, weighted mix).
Float32 dot precision comes from the environment (TRITON_F32_DEFAULT). Every case is warmed up
(Triton autotunes then) before any is timed; with BENCH_QUIET_FILE set, the timed repetitions wait
until that file exists (other jobs on the GPU are done), at most BENCH_QUIET_WAIT seconds, and each
row says whether the GPU was then free of them (`alone`). Prints one JSON line a row."""
import json
import os
import sys
import time

import torch
from fla.ops.gated_delta_rule import chunk_gated_delta_rule, fused_recurrent_gated_delta_rule

SHAPES = {"standard": (4, 8192, 8, 128, 128), "long": (1, 65536, 8, 128, 128), "small heads": (8, 2048, 16, 64, 64)}
E, TOPK, dev = 4, 2, "cuda"
kernels = {"chunk": chunk_gated_delta_rule, "fused_recurrent": fused_recurrent_gated_delta_rule}


def inputs(B, T, H, dk, dv):
    """Per-memory inputs as docs/perf.md's bench draws them: unit keys, g in [-0.2, -0.001], beta in (0.05, 0.95)."""
    n = E + 1  # the routed memories, then the shared one
    k = torch.nn.functional.normalize(torch.randn(n, B, T, H, dk, device=dev), dim=-1)
    return dict(q=torch.randn(B, T, H, dk, device=dev), k=k, v=torch.randn(n, B, T, H, dv, device=dev),
                g=-torch.empty(n, B, T, H, device=dev).uniform_(0.001, 0.2),
                beta=torch.empty(n, B, T, H, device=dev).uniform_(0.05, 0.95), z=torch.randn(B, T, E, device=dev))


def route(x, B, T):
    """Top-k routing and the gather order: (memory, batch)-major segments, tokens in time order."""
    p = torch.softmax(x["z"], -1)
    w, idx = p.topk(TOPK, -1)
    w = w / w.sum(-1, keepdim=True)
    mem = torch.cat([idx.reshape(B, T * TOPK), torch.full((B, T), E, device=dev)], 1)   # [B, T*(k+1)]
    tok = torch.cat([torch.arange(T, device=dev).repeat_interleave(TOPK), torch.arange(T, device=dev)]).expand(B, -1)
    bat = torch.arange(B, device=dev)[:, None].expand_as(mem)
    order = (mem * B + bat).flatten().argsort(stable=True)
    mem, tok, bat = mem.flatten()[order], tok.flatten()[order], bat.flatten()[order]
    counts = torch.bincount(mem * B + bat, minlength=(E + 1) * B)
    cu = torch.cat([torch.zeros(1, dtype=torch.long, device=dev), counts.cumsum(0)])
    assert (counts > 0).all(), "a memory got no token: varlen segments would be empty"
    wt = torch.cat([w.reshape(B, T * TOPK), torch.ones(B, T, device=dev)], 1).flatten()[order]
    return mem, tok, bat, cu, wt


def gather(x, mem, tok, bat):
    g = lambda n: x[n][mem, bat, tok][None]
    return dict(q=x["q"][bat, tok][None], k=g("k"), v=g("v"), g=g("g"), beta=g("beta"))


def run(kernel, y, cu, dk):
    return kernel(**y, scale=dk ** -0.5, cu_seqlens=cu, use_qk_l2norm_in_kernel=False)[0]


def whole(kernel, x, B, T, H, dk, dv):
    mem, tok, bat, cu, wt = route(x, B, T)
    o = run(kernel, gather(x, mem, tok, bat), cu, dk)[0]
    out = torch.zeros(B * T, H, dv, device=dev)
    return out.index_add_(0, bat * T + tok, o * wt[:, None, None]).view(B, T, H, dv)


def timed(fn, reps=10):
    fn(); torch.cuda.synchronize()                # one more warm-up right before the timed runs
    ms = []
    for _ in range(reps):
        a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        a.record(); fn(); b.record(); torch.cuda.synchronize()
        ms.append(a.elapsed_time(b))
    return sorted(ms)[len(ms) // 2], ms


def wait_quiet():
    path = os.environ.get("BENCH_QUIET_FILE")
    if not path:
        return True
    deadline = time.time() + float(os.environ.get("BENCH_QUIET_WAIT", "600"))
    while not os.path.exists(path) and time.time() < deadline:
        time.sleep(1)
    return os.path.exists(path)


prec = os.environ.get("TRITON_F32_DEFAULT", "tf32 (Triton's default)")
cases = []
for name in sys.argv[2:] or SHAPES:
    B, T, H, dk, dv = SHAPES[name]
    x = inputs(B, T, H, dk, dv)
    mem, tok, bat, cu, _ = route(x, B, T)
    y = gather(x, mem, tok, bat)
    for kname in sys.argv[1].split(","):
        kernel = kernels[kname]
        cases.append((name, kname, "kernel", lambda kernel=kernel, y=y, cu=cu, dk=dk: run(kernel, y, cu, dk)))
        cases.append((name, kname, "whole", lambda kernel=kernel, x=x, B=B, T=T, H=H, dk=dk, dv=dv: whole(kernel, x, B, T, H, dk, dv)))
t0 = time.time()
for *_, fn in cases:
    for _ in range(3):
        fn()
torch.cuda.synchronize()
warmup_s = round(time.time() - t0, 1)
alone = wait_quiet()
for name, kname, part, fn in cases:
    med, ms = timed(fn)
    print(json.dumps(dict(shape=name, kernel=kname, part=part, precision=prec, median_ms=round(med, 3),
                          ms=[round(m, 3) for m in ms], gpu=torch.cuda.get_device_name(0), alone=alone,
                          warmup_and_autotune_s=warmup_s)), flush=True)
