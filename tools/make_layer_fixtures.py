#!/usr/bin/env python3
"""Make the PyTorch golden fixtures for BatchNorm, Residual and the newer activations and pools.

Same files and format as tools/make_fixtures.py (whose helpers this script uses), into the same
tests/fixtures/golden/<case>/ directories, plus:

- `after.safetensors` holds the whole state_dict after training: parameters and the BatchNorm
  buffers running_mean, running_var and num_batches_tracked (int64, as PyTorch writes it).
- `out_after.npy`: float32 output of the trained model in eval mode (running statistics) on all x.

Unlike make_fixtures.py, training starts again from the initial state after the first-batch
gradient is taken: that forward ran in train mode and moved the running statistics.

Run from the repository root:

    python3 tools/make_layer_fixtures.py                 # all cases
    python3 tools/make_layer_fixtures.py --case bn2d_cnn # one case

Residual(...) is this module (PyTorch has none); its state_dict keys are nn.Sequential's:

    class Residual(nn.Sequential):
        def forward(self, x):
            return x + super().forward(x)
"""

import argparse
import json
import math
import os
import re
import sys

import numpy as np
import torch
import torch.nn as nn
from safetensors.torch import save_file

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import make_fixtures as mf  # noqa: E402


class Residual(nn.Sequential):
    def forward(self, x):
        return x + super().forward(x)


NAMES = mf.NAMES + ["BatchNorm1d", "BatchNorm2d", "Residual", "GELU", "SiLU", "ELU", "Identity",
                    "Dropout2d", "AdaptiveAvgPool2d"]
_NAME_RE = re.compile(r"\b(" + "|".join(NAMES) + r")\b(\s*\()?")


def build(text):
    """nn.Sequential from model text (no '?')."""
    assert "?" not in text, text

    def sub(m):
        name, paren = m.group(1), m.group(2)
        qual = name if name in ("Parallel", "Residual") else "nn." + name
        return qual + "(" if paren else qual + "()"
    py = _NAME_RE.sub(sub, text)
    return eval("nn.Sequential(" + py + ")",
                {"nn": nn, "Parallel": mf.Parallel, "Residual": Residual})


mf.build = build  # so that mf.resolve runs the layers it does not know

# A bias just before BatchNorm has a gradient of exactly 0 in exact arithmetic (the mean removes
# it), so both libraries compute rounding noise for it, and Adam turns noise into full steps: the
# layers before BatchNorm have bias=False, as in real networks.
CASES = {
    "bn1d_mlp": dict(
        model="Linear(6,8,bias=False), BatchNorm1d(8), ReLU, Linear(8,3)",
        input_shape=[6], loss="cross-entropy", optimizer=mf.sgd(0.1, momentum=0.9),
        batch_size=4, n=10, epochs=2, seed=21, data=mf.normal_classes, outs=3),
    "bn1d_sequence": dict(
        model="BatchNorm1d(3, eps=0.001, momentum=0.3), Flatten, Linear(15,4)",
        input_shape=[3, 5], loss="mse", optimizer=mf.sgd(0.05),
        batch_size=3, n=8, epochs=3, seed=22, data=mf.normal_regression, outs=4),
    "bn2d_cnn": dict(
        model="Conv2d(1,4,3,padding=1,bias=False), BatchNorm2d(4), ReLU, MaxPool2d(2), Flatten, "
              "Linear(?,5)",
        input_shape=[1, 8, 8], loss="cross-entropy", optimizer=mf.sgd(0.05, momentum=0.9),
        batch_size=5, n=12, epochs=2, seed=23, data=mf.images, outs=5),
    "residual_bn": dict(
        model="Conv2d(2,4,3,padding=1), Residual(Conv2d(4,4,3,padding=1,bias=False), "
              "BatchNorm2d(4), ReLU, Conv2d(4,4,3,padding=1,bias=False), BatchNorm2d(4)), ReLU, "
              "AdaptiveAvgPool2d(1), Flatten, Linear(4,3)",
        input_shape=[2, 6, 6], loss="cross-entropy", optimizer=mf.adam(0.01),
        batch_size=4, n=10, epochs=2, seed=24, data=mf.normal_classes, outs=3),
    "activations": dict(
        model="Linear(5,8), GELU, Linear(8,8), GELU(approximate='tanh'), Linear(8,8), SiLU, "
              "Linear(8,8), ELU, Linear(8,8), ELU(alpha=0.5), Identity, Linear(8,3)",
        input_shape=[5], loss="mse", optimizer=mf.sgd(0.1),
        batch_size=5, n=10, epochs=2, seed=25, data=mf.normal_regression, outs=3),
    "adaptive_pool": dict(
        model="Conv2d(1,3,3), AdaptiveAvgPool2d((2,3)), ELU, Dropout2d(0.0), Flatten, Linear(18,2)",
        input_shape=[1, 7, 9], loss="mse", optimizer=mf.sgd(0.1),
        batch_size=4, n=8, epochs=2, seed=26, data=mf.normal_regression, outs=2),
}


def make_case(name, out):
    c = CASES[name]
    shape, B, N, E = c["input_shape"], c["batch_size"], c["n"], c["epochs"]
    text = mf.resolve(c["model"], shape)

    torch.manual_seed(c["seed"])
    model = build(text)
    x, y = c["data"](N, shape, c["outs"])
    x = x.to(torch.float32).contiguous()
    y = y.contiguous()
    crit = mf.loss_fn(c["loss"])
    init = mf.snapshot(model)

    model.eval()
    with torch.no_grad():
        out_all = model(x)

    model.train()
    xb = x[:B].clone().requires_grad_(True)
    model.zero_grad()
    loss = crit(model(xb), y[:B])
    loss.backward()
    grads = {k: p.grad.detach().clone().contiguous() for k, p in model.named_parameters()}

    model.load_state_dict(init)  # the first-batch forward moved the running statistics
    model.zero_grad()
    opt = mf.make_optimizer(c["optimizer"], model.parameters())
    steps = 0
    for _ in range(E):
        for i in range(0, N, B):
            opt.zero_grad()
            crit(model(x[i:i + B]), y[i:i + B]).backward()
            opt.step()
            steps += 1
    assert steps == E * math.ceil(N / B)
    model.eval()
    with torch.no_grad():
        out_after = model(x)

    d = os.path.join(out, name)
    os.makedirs(d, exist_ok=True)
    meta = {"model": text}
    save_file(init, os.path.join(d, "init.safetensors"), metadata=meta)
    save_file(grads, os.path.join(d, "grads.safetensors"), metadata=meta)
    save_file(mf.snapshot(model), os.path.join(d, "after.safetensors"), metadata=meta)
    mf.save_npy(os.path.join(d, "x.npy"), x, np.float32)
    mf.save_npy(os.path.join(d, "y.npy"), y,
                np.int64 if c["loss"] == "cross-entropy" else np.float32)
    mf.save_npy(os.path.join(d, "out.npy"), out_all, np.float32)
    mf.save_npy(os.path.join(d, "out_after.npy"), out_after, np.float32)
    mf.save_npy(os.path.join(d, "grad_x.npy"), xb.grad, np.float32)
    with open(os.path.join(d, "loss.json"), "w") as f:
        json.dump({"loss": loss.item()}, f)
        f.write("\n")
    case = {"model": text, "input_shape": shape, "loss": c["loss"], "optimizer": c["optimizer"],
            "batch_size": B, "steps": steps, "epochs": E, "n": N, "seed": c["seed"],
            "torch_version": torch.__version__,
            "command": f"python3 tools/make_layer_fixtures.py --case {name}"}
    with open(os.path.join(d, "case.json"), "w") as f:
        json.dump(case, f, indent=2)
        f.write("\n")
    print(f"{name}: N={N} B={B} steps={steps} loss={loss.item():.6g} model: {text}")


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", default=os.path.join(mf.REPO, mf.DEFAULT_OUT), help="output directory")
    p.add_argument("--case", choices=sorted(CASES), help="only this case (default: all)")
    a = p.parse_args(argv)
    torch.set_default_dtype(torch.float32)
    for name in [a.case] if a.case else list(CASES):
        make_case(name, a.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
