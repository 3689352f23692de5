"""Does fla's MomAttention compute the same function in training mode as in eval mode? On vector
sets (argv[1:]) it prints (JSON, a line each) layer.y's error ratio against momlab for: eval mode
(as docs/examples/verify_with_fla.py runs it), training mode, and training mode with the short
convolutions given the memory segments' cu_seqlens (which fla passes in eval mode and drops in
training: `if self.training: conv_cu_seqlens = None` in fla/layers/mom.py). Tensor.argsort is made
stable throughout, so that fla's unstable token sort (docs/fla-crosscheck.md) does not mix in."""
import json
import sys

import torch

dev = "cuda" if torch.cuda.is_available() else "cpu"
from safetensors.torch import load_file
import fla.layers.mom as mom
from fla.layers import MomAttention

original_argsort = torch.Tensor.argsort
torch.Tensor.argsort = lambda self, *a, **k: original_argsort(self, *a, **{**k, "stable": True})
segments = {}
original_upad = mom._upad_input


def upad_recording_segments(*args, **kwargs):
    out = original_upad(*args, **kwargs)
    segments["cu_seqlens"] = out[6][0].to(torch.long).unique()   # as forward() derives cu_seqlens
    return out


mom._upad_input = upad_recording_segments


def with_segments(conv):
    forward = conv.forward

    def patched(x, cache=None, output_final_state=False, cu_seqlens=None, **kw):
        return forward(x=x, cache=cache, output_final_state=output_final_state,
                       cu_seqlens=segments["cu_seqlens"] if cu_seqlens is None else cu_seqlens, **kw)
    conv.forward = patched


def probe(vec):
    manifest = json.load(open(f"{vec}/manifest.json"))
    cfg = manifest["config"]
    inputs = load_file(f"{vec}/inputs.safetensors")
    x = inputs["layer.hidden_states"].to(dev)
    mask = inputs["layer.attention_mask"].to(dev).long() if "layer.attention_mask" in inputs else None
    ref = load_file(f"{vec}/expected.safetensors")["layer.y"].to(dev)
    layer = MomAttention(mode="chunk", **cfg).to(dev).float()
    layer.load_state_dict(load_file(f"{vec}/weights.safetensors"))
    err = lambda y: ((ref - y).pow(2).mean().sqrt() / (ref.pow(2).mean().sqrt() + 1e-8)).item()
    report = dict(vectors=vec, T=x.shape[1], conv_size=cfg["conv_size"], device=torch.cuda.get_device_name(0) if dev == "cuda" else "cpu")
    with torch.no_grad():
        report["err_eval"] = err(layer.eval()(x, attention_mask=mask)[0])
        report["err_train"] = err(layer.train()(x, attention_mask=mask)[0])
        for conv in (layer.q_conv1d, layer.k_conv1d, layer.v_conv1d):
            with_segments(conv)
        report["err_train_conv_per_segment"] = err(layer.train()(x, attention_mask=mask)[0])
        report["min_segment"] = int((segments["cu_seqlens"][1:] - segments["cu_seqlens"][:-1]).min())
    print(json.dumps(report), flush=True)


for vec in sys.argv[1:]:
    probe(vec)
