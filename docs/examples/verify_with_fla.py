"""
Produce an outputs file for `momlab verify` from fla's kernels (documentation: momlab does not
depend on Python). Usage:

    npx momlab vectors --config cfg.json --seed 1 --out vec/
    python docs/examples/verify_with_fla.py vec/ outputs.safetensors [chunk|fused_recurrent]
    npx momlab verify --vectors vec/ --outputs outputs.safetensors --only core.,layer.y,layer.router_logits --precision tf32

The third argument picks fla's kernel for the core form: `chunk` (chunk_gated_delta_rule, the
default) or `fused_recurrent` (fused_recurrent_gated_delta_rule, token by token). The layer is
fla's MomAttention, which itself runs token by token for T <= 64 in eval mode and chunked above.
--precision tf32 because fla's chunked Triton kernels use TF32 dots on float32 inputs
(docs/vectors.md); with TRITON_F32_DEFAULT=ieee in the environment they compute in float32
and the default --precision fp32 applies (docs/fla-crosscheck.md).
The layer's inference state is left out: fla keeps the MoM states and the short-conv states
inside its Cache object in its own layout. To check them too, export
  - `layer.final_state.{e}` / `.shared`                [B, H, dk, dv], the memory states;
  - `layer.conv_cache.{q,k,v}.{e}` / `.shared`         the conv states, per projection and memory:
    [B, C, conv_size] as fla keeps them (C = H*dk for q, k; H*dv for v), or [B, C, conv_size-1].
fla's conv state holds conv_size inputs, the oldest of which is never used again; momlab keeps
conv_size-1 and `momlab verify` compares fla's last conv_size-1 columns by itself
(docs/vectors.md, "Conv cache layout"); check them alone with `--only layer.conv_cache.`.
"""
import json
import sys

import torch
from safetensors.torch import load_file, save_file
from fla.layers import MomAttention
from fla.ops.gated_delta_rule import chunk_gated_delta_rule, fused_recurrent_gated_delta_rule

vec, out_path = sys.argv[1], sys.argv[2]
kernels = {"chunk": chunk_gated_delta_rule, "fused_recurrent": fused_recurrent_gated_delta_rule}
name = sys.argv[3] if len(sys.argv) > 3 else "chunk"
if name not in kernels:
    print(f"unknown kernel {name!r}: use chunk or fused_recurrent", file=sys.stderr)
    sys.exit(2)
kernel = kernels[name]
manifest = json.load(open(f"{vec}/manifest.json"))
cfg, core = manifest["config"], manifest["core"]
B, T, H, E, K = core["B"], core["T"], core["H"], core["E"], core["topk"]
dk, dv = core["dk"], core["dv"]
dev = "cuda"
x = {n: t.to(dev) for n, t in load_file(f"{vec}/inputs.safetensors").items()}
outputs = {}

# ---- core form: gated delta rule per memory over its own tokens, mixed after (docs/spec.md §4) ----
probs = torch.softmax(x["core.router_logits"].double(), dim=-1)
w, idx = probs.topk(K, dim=-1)                       # [B, T, K]; ties: see docs/vectors.md
w = (w / w.sum(-1, keepdim=True)).float()
o = torch.zeros(B, T, H, dv, device=dev)


def run(mem, b, ts):
    """fla's kernel on memory `mem`'s tokens ts of sequence b: o [n, H, dv], state [H, dk, dv]."""
    pick = lambda n: x[f"core.{n}.{mem}"][b:b + 1, ts].contiguous()
    ob, ht = kernel(
        q=x["core.q"][b:b + 1, ts].contiguous(), k=pick("k"), v=pick("v"), g=pick("g"), beta=pick("beta"),
        scale=dk ** -0.5, output_final_state=True, use_qk_l2norm_in_kernel=False,  # k is unit already; q is not normalised
    )
    return ob[0], ht[0]


for e in range(E):
    state = torch.zeros(B, H, dk, dv, device=dev)
    for b in range(B):
        chosen = idx[b] == e                          # [T, K]
        ts = chosen.any(-1).nonzero().squeeze(-1)     # memory e's tokens, in time order
        if len(ts) == 0:
            continue                                  # no token: the state does not move
        ob, state[b] = run(e, b, ts)
        o[b, ts] += (w[b, ts] * chosen[ts]).sum(-1)[:, None, None] * ob
    outputs[f"core.final_state.{e}"] = state
if core["shared"]:
    state = torch.zeros(B, H, dk, dv, device=dev)
    for b in range(B):
        ob, state[b] = run("shared", b, torch.arange(T, device=dev))
        o[b] += ob
    outputs["core.final_state.shared"] = state
outputs["core.o"] = o

# ---- the layer: fla's MomAttention with the vectors' weights ----
layer = MomAttention(mode="chunk", **cfg).to(dev).float().eval()
layer.load_state_dict(load_file(f"{vec}/weights.safetensors"))
with torch.no_grad():
    y, _, _, router_logits = layer(x["layer.hidden_states"])
outputs["layer.y"] = y
outputs["layer.router_logits"] = router_logits.view(B, T, E)

save_file({n: t.float().contiguous().cpu() for n, t in outputs.items()}, out_path)
print(f"wrote {out_path}: {', '.join(sorted(outputs))}")
