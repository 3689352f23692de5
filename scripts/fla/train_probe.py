"""Does fla's MomAttention compute the same function in training mode as in eval mode? On vector
sets (argv[1:], T > 64, where eval mode also runs the chunked kernel) it prints (JSON, a line each)
layer.y's error ratio against momlab in eval mode and in training mode. Above T = 64 the two modes
differ in one line of fla/layers/mom.py, `if self.training: conv_cu_seqlens = None`: training mode
runs the short convolutions over all memories' gathered tokens as one sequence, eval mode over each
memory's segment (and pads segments shorter than the conv, which these vector sets do not have).
Tensor.argsort is made stable throughout, so that fla's unstable token sort does not mix in."""
import json
import sys

import torch
from safetensors.torch import load_file
from fla.layers import MomAttention

dev = "cuda" if torch.cuda.is_available() else "cpu"
unstable = torch.Tensor.argsort
torch.Tensor.argsort = lambda self, *a, **k: unstable(self, *a, **{**k, "stable": True})


def probe(vec):
    manifest = json.load(open(f"{vec}/manifest.json"))
    inputs = load_file(f"{vec}/inputs.safetensors")
    x = inputs["layer.hidden_states"].to(dev)
    mask = inputs["layer.attention_mask"].to(dev).long() if "layer.attention_mask" in inputs else None
    ref = load_file(f"{vec}/expected.safetensors")["layer.y"].to(dev)
    if x.shape[1] <= 64:
        raise SystemExit(f"{vec}: T = {x.shape[1]} <= 64, where eval mode runs another kernel; use T > 64")
    layer = MomAttention(mode="chunk", **manifest["config"]).to(dev).float()
    layer.load_state_dict(load_file(f"{vec}/weights.safetensors"))
    err = lambda y: ((ref - y).pow(2).mean().sqrt() / (ref.pow(2).mean().sqrt() + 1e-8)).item()
    report = dict(vectors=vec, T=x.shape[1], conv_size=manifest["config"]["conv_size"],
                  device=torch.cuda.get_device_name(0) if dev == "cuda" else "cpu")
    with torch.no_grad():
        _, chosen = torch.softmax(layer.gate(x), -1).topk(manifest["config"]["topk"], -1)
        E = manifest["config"]["num_memories"]
        counts = torch.stack([torch.bincount(c.flatten(), minlength=E) for c in chosen])   # [B, E]
        report["min_segment"] = int(counts[counts > 0].min())
        report["err_eval"] = err(layer.eval()(x, attention_mask=mask)[0])
        report["err_train"] = err(layer.train()(x, attention_mask=mask)[0])
    print(json.dumps(report), flush=True)


for vec in sys.argv[1:]:
    probe(vec)
