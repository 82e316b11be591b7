"""The PyTorch half of `scratchnet compare` (embedded in the binary; run by it, not by hand).

argv: checkpoint, model text, trace directory written by scratchnet (x.npy, r.npy, out_I.npy,
gin_I.npy for each top-level layer I, grad_NAME.npy for each parameter). Builds the same
nn.Sequential, loads the checkpoint strictly, runs x through it layer by layer, takes
L = sum(r * y) backward, and prints how far scratchnet's outputs and gradients are from torch's.
"""
import sys

import numpy as np
import torch
from safetensors.torch import load_file
from torch import nn

ckpt, text, trace = sys.argv[1:4]
names = {k: getattr(nn, k) for k in dir(nn) if k[:1].isupper()}
try:
    # The text was parsed by scratchnet already: layer names, called with literal arguments or
    # bare (`ReLU` for `ReLU()`).
    items = eval(f"({text},)", {"__builtins__": {}}, names)
    model = nn.Sequential(*[m() if isinstance(m, type) else m for m in items])
except Exception as e:  # noqa: BLE001 - any failure here means torch has no such layer
    sys.exit(f"torch.nn cannot build '{text}': {e}")
model.load_state_dict(load_file(ckpt), strict=True)
model.eval()

x = torch.from_numpy(np.load(f"{trace}/x.npy")).requires_grad_(True)
inputs, h = [], x
for layer in model:
    inputs.append(h)
    h = layer(h)
    h.retain_grad()
r = torch.from_numpy(np.load(f"{trace}/r.npy"))
(h * r).sum().backward()


def diff(ours, theirs):
    theirs = theirs.detach().numpy().astype(np.float64)
    ours = ours.astype(np.float64).reshape(theirs.shape)
    d = np.abs(ours - theirs).max()
    return d, d / max(np.abs(theirs).max(), 1e-12)


rows = []
worst = 0.0
outputs = inputs[1:] + [h]
for i, layer in enumerate(model):
    out = diff(np.load(f"{trace}/out_{i}.npy"), outputs[i])
    gin = diff(np.load(f"{trace}/gin_{i}.npy"), inputs[i].grad)
    params = [diff(np.load(f"{trace}/grad_{i}.{n}.npy"), p.grad) for n, p in layer.named_parameters()]
    gp = max(params, key=lambda d: d[1]) if params else None
    worst = max([worst, out[1], gin[1]] + [p[1] for p in params])
    rows.append((str(i), repr(layer).split("\n")[0], out, gin, gp))

w = max(len(r[1]) for r in rows)
fmt = lambda d: "—" if d is None else f"{d[0]:.2e} ({d[1]:.1e})"  # noqa: E731
print(f"{'#':<3} {'layer':<{w}}  {'output max|Δ| (rel)':>22}  {'∂L/∂input max|Δ| (rel)':>24}  {'∂L/∂params max|Δ| (rel)':>25}")
for i, name, out, gin, gp in rows:
    print(f"{i:<3} {name:<{w}}  {fmt(out):>22}  {fmt(gin):>24}  {fmt(gp):>25}")
print(f"largest relative difference: {worst:.1e} (L = sum(r * output), r random; torch {torch.__version__})")
