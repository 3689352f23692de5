"""
Produce an outputs file for `momlab verify` from flash-linear-attention's (fla) kernels
(documentation: momlab itself does not depend on Python). Usage:

    npx momlab vectors --config cfg.json --seed 1 --out vec/                 # core form and layer
    python docs/examples/verify_with_fla.py vec/ outputs.safetensors [chunk|fused_recurrent]
    npx momlab verify --vectors vec/ --outputs outputs.safetensors --only core.,layer.y,layer.router_logits --precision tf32

    npx momlab vectors --suite edge --grad --seed 1 --out suite/             # the edge suite
    python docs/examples/verify_with_fla.py suite/ out/ chunk                # out/<case>.safetensors
    npx momlab verify --vectors suite/ --outputs out/ --precision tf32

The third argument picks fla's kernel for the core form (docs/spec.md §4): `chunk`
(chunk_gated_delta_rule, the default) or `fused_recurrent` (fused_recurrent_gated_delta_rule,
token by token). Each memory's kernel call gets that memory's tokens of one sequence, in time
order, from the memory's initial state (`core.h0.*` when the vectors have one); with
`core.cu_seqlens` (`--lengths`, `varlen`) each sequence is its own call. The layer is fla's
MomAttention (docs/spec.md §6), which itself runs token by token for T <= 64 in eval mode and
chunked above; a left-padded batch passes `layer.attention_mask` to it.

Gradients: vectors written with `--grad` carry upstream gradients; the script then also writes
fla's autograd gradients of L = sum(do * o) + sum(dht * final_state) in momlab's names
(core.dq, core.drouter_logits, core.d<input>.*, core.dh0.*; docs/vectors.md). fla's
fused_recurrent_gated_delta_rule has no backward, so gradients come with `chunk` only. Layer vectors
with `--grad` carry `layer.dy` and random directions `layer.dir.*`: the script writes
`layer.jvp.<name>` = sum(dL/d<name> * dir) for L = sum(dy * y), from MomAttention's autograd in eval
mode, which fla can only do above T = 64 (its token-by-token path below has no backward, and its
training mode runs the short convolution across memory segments, a different function;
docs/fla-crosscheck.md).

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
import os
import sys

import torch
from safetensors.torch import load_file, save_file
from fla.layers import MomAttention
from fla.ops.gated_delta_rule import chunk_gated_delta_rule, fused_recurrent_gated_delta_rule

KERNELS = {"chunk": chunk_gated_delta_rule, "fused_recurrent": fused_recurrent_gated_delta_rule}
WITH_BACKWARD = {"chunk"}
INPUTS = ("k", "v", "g", "beta")                     # the gated delta rule's per-memory inputs
dev = "cuda" if torch.cuda.is_available() else "cpu"


def refuse(message):
    print(message, file=sys.stderr)
    sys.exit(2)


def core_outputs(x, core, name):
    """fla's kernel on each memory's tokens, mixed after the read-out (docs/spec.md §4)."""
    if core.get("rule", "gated-delta") != "gated-delta":
        refuse(f"the vectors are for rule {core['rule']!r}; fla's gated delta rule kernels compute 'gated-delta'")
    if core.get("mix", "after") != "after":
        refuse("the vectors read out after mixing the states (--mix before); fla's kernels read each memory alone")
    kernel = KERNELS[name]
    B, T, H, E, K = core["B"], core["T"], core["H"], core["E"], core["topk"]
    dk, dv = core["dk"], core["dv"]
    grad = "core.do" in x and name in WITH_BACKWARD
    if "core.do" in x and not grad:
        print(f"gradients left out: fla's {name} kernel has no backward (use chunk)", file=sys.stderr)
    cu = x.get("core.cu_seqlens")
    seqs = [(0, int(a), int(b)) for a, b in zip(cu[:-1], cu[1:])] if cu is not None else [(b, 0, T) for b in range(B)]
    slots = [str(e) for e in range(E)] + (["shared"] if core["shared"] else [])

    leaves = {}                                      # gradient name -> leaf tensor

    def leaf(grad_name, tensor):
        leaves[grad_name] = tensor.clone().requires_grad_(grad)
        return leaves[grad_name]

    q = leaf("core.dq", x["core.q"])
    logits = leaf("core.drouter_logits", x["core.router_logits"])
    mem = {s: {n: leaf(f"core.d{n}.{s}", x[f"core.{n}.{s}"]) for n in INPUTS} for s in slots}
    h0 = {s: leaf(f"core.dh0.{s}", x.get(f"core.h0.{s}", torch.zeros(len(seqs), H, dk, dv, device=dev))) for s in slots}

    p = torch.softmax(logits.double(), dim=-1)
    # top-k by p, ties to the lower index (a stable sort; torch.topk does not promise the order)
    idx = torch.sort(p.detach(), dim=-1, descending=True, stable=True).indices[..., :K]
    w = p.gather(-1, idx)
    w = (w / w.sum(-1, keepdim=True)).float()        # [B, T, K]
    o = torch.zeros(B, T, H, dv, device=dev)
    final = {}
    for s in slots:
        states = []
        for n, (b, bos, eos) in enumerate(seqs):
            if s == "shared":
                ts, weight = torch.arange(bos, eos, device=dev), None
            else:
                chosen = idx[b, bos:eos] == int(s)                    # [L, K]
                ts = bos + chosen.any(-1).nonzero().squeeze(-1)       # the memory's tokens, in time order
                weight = (w[b, ts] * chosen[ts - bos]).sum(-1)
            if len(ts) == 0:
                states.append(h0[s][n])                               # no token: the state does not move
                continue
            pick = lambda t: t[b:b + 1, ts].contiguous()
            ob, ht = kernel(
                q=pick(q), k=pick(mem[s]["k"]), v=pick(mem[s]["v"]), g=pick(mem[s]["g"]), beta=pick(mem[s]["beta"]),
                scale=dk ** -0.5, initial_state=h0[s][n:n + 1].contiguous(), output_final_state=True,
                use_qk_l2norm_in_kernel=False,                        # k is unit already; q is not normalised
            )
            part = ob[0] if weight is None else weight[:, None, None] * ob[0]
            o = o.index_put((torch.full_like(ts, b), ts), part, accumulate=True)
            states.append(ht[0])
        final[s] = torch.stack(states)                                # [N, H, dk, dv]
    out = {"core.o": o, **{f"core.final_state.{s}": final[s] for s in slots}}
    if grad:
        loss = (o.double() * x["core.do"].double()).sum()
        loss = loss + sum((final[s].double() * x[f"core.dht.{s}"].double()).sum() for s in slots)
        grads = torch.autograd.grad(loss, list(leaves.values()), allow_unused=True)
        for (grad_name, t), g in zip(leaves.items(), grads):
            out[grad_name] = torch.zeros_like(t) if g is None else g
    return out


def layer_outputs(vec, x, cfg, B, T, E):
    """fla's MomAttention with the vectors' weights; with `layer.dy`, its gradients along layer.dir.*."""
    layer = MomAttention(mode="chunk", **cfg).to(dev).float().eval()
    layer.load_state_dict(load_file(f"{vec}/weights.safetensors"))
    grad = "layer.dy" in x
    if grad and T <= 64:
        print(f"layer gradients left out: MomAttention has no backward at T = {T} <= 64 in eval mode", file=sys.stderr)
        grad = False
    hidden = x["layer.hidden_states"].clone().requires_grad_(grad)
    mask = x.get("layer.attention_mask")
    with torch.set_grad_enabled(grad):
        y, _, _, router_logits = layer(hidden, attention_mask=None if mask is None else mask.long())
    out = {"layer.y": y, "layer.router_logits": router_logits.view(B, T, E)}
    if grad:
        params = dict(layer.named_parameters())
        names = ["hidden_states"] + [n for n in params if f"layer.dir.{n}" in x]
        tensors = [hidden] + [params[n] for n in names[1:]]
        loss = (y.double() * x["layer.dy"].double()).sum()
        grads = torch.autograd.grad(loss, tensors, allow_unused=True)
        for n, g in zip(names, grads):
            jvp = torch.zeros((), dtype=torch.float64, device=dev) if g is None else (g.double() * x[f"layer.dir.{n}"].double()).sum()
            out[f"layer.jvp.{n}"] = jvp.reshape(1)
    return out


def one(vec, out_path, name):
    manifest = json.load(open(f"{vec}/manifest.json"))
    core = manifest["core"]
    x = {n: t.to(dev) for n, t in load_file(f"{vec}/inputs.safetensors").items()}
    outputs = core_outputs(x, core, name)
    if "config" in manifest:
        outputs.update(layer_outputs(vec, x, manifest["config"], manifest["batch"], manifest["tokens"], core["E"]))
    save_file({n: t.detach().float().contiguous().cpu() for n, t in outputs.items()}, out_path)
    print(f"wrote {out_path}: {', '.join(sorted(outputs))}")


if __name__ == "__main__":
    if len(sys.argv) not in (3, 4):
        refuse("usage: verify_with_fla.py VECTORS_DIR OUTPUTS [chunk|fused_recurrent]")
    vec, out_path = sys.argv[1], sys.argv[2]
    name = sys.argv[3] if len(sys.argv) > 3 else "chunk"
    if name not in KERNELS:
        refuse(f"unknown kernel {name!r}: use chunk or fused_recurrent")
    if os.path.exists(f"{vec}/index.json"):                          # an edge suite: one outputs file per case
        os.makedirs(out_path, exist_ok=True)
        for case in json.load(open(f"{vec}/index.json"))["cases"]:
            one(f"{vec}/{case['dir']}", f"{out_path}/{case['name']}.safetensors", name)
    else:
        one(vec, out_path, name)
