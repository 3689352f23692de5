"""Why fla's MomAttention disagrees with momlab on vector sets (argv[1:]): runs the layer as
docs/examples/verify_with_fla.py does, once as fla ships it and once with Tensor.argsort made
stable, and prints (JSON) layer.y's error ratio against momlab for both, the tokens each memory
got, and whether the argsort in fla.layers.mom.transform reorders tokens of one memory (a line each)."""
import json
import sys

import torch
from safetensors.torch import load_file
from fla.layers import MomAttention


def probe(vec):
    cfg = json.load(open(f"{vec}/manifest.json"))["config"]
    x = load_file(f"{vec}/inputs.safetensors")["layer.hidden_states"].cuda()
    ref = load_file(f"{vec}/expected.safetensors")["layer.y"].cuda()
    layer = MomAttention(mode="chunk", **cfg).cuda().float().eval()
    layer.load_state_dict(load_file(f"{vec}/weights.safetensors"))
    err = lambda y: ((ref - y).pow(2).mean().sqrt() / (ref.pow(2).mean().sqrt() + 1e-8)).item()

    # the key fla sorts (transform): batch * (E') + memory, one entry per (token, choice), in token order
    with torch.no_grad():
        _, sel = torch.softmax(layer.gate(x), -1).topk(cfg["topk"], -1)
    B = x.shape[0]
    sel = sel.reshape(B, -1)
    combined = (torch.arange(B, device="cuda")[:, None] * (sel.max() + 1) + sel).reshape(-1)
    unstable, stable = combined.argsort(), combined.argsort(stable=True)
    report = dict(vectors=vec, sort_len=combined.numel(), gpu=torch.cuda.get_device_name(0),
                  tokens_per_memory=torch.bincount(combined).tolist(),
                  argsort_reorders_equal_keys=bool((unstable != stable).any()),
                  unstable_order=unstable.tolist(), stable_order=stable.tolist())
    with torch.no_grad():
        report["err_as_shipped"] = err(layer(x)[0])
        original = torch.Tensor.argsort
        torch.Tensor.argsort = lambda self, *a, **k: original(self, *a, **{**k, "stable": True})
        report["err_stable_argsort"] = err(layer(x)[0])
        torch.Tensor.argsort = original
        report["err_as_shipped_again"] = err(layer(x)[0])
    print(json.dumps(report), flush=True)


for vec in sys.argv[1:]:
    probe(vec)
