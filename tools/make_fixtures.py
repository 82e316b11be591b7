#!/usr/bin/env python3
"""Make the PyTorch golden fixtures that scratchnet's layers, losses and optimizers must match.

Install (any recent PyTorch; see tests/fixtures/golden/README.md for the version last used):

    pip install torch safetensors numpy

Run from the repository root:

    python3 tools/make_fixtures.py                       # all cases into tests/fixtures/golden/
    python3 tools/make_fixtures.py --case seed_cnn       # one case
    python3 tools/make_fixtures.py --out DIR --case NAME # elsewhere
    python3 tools/make_fixtures.py --verify              # re-check what is on disk

Everything is float32 on the CPU and seeded per case (`torch.manual_seed(seed)` before the
model is built, then the data are drawn), so a rerun writes byte-identical files.

Each case is a directory `<out>/<case>/` holding:

- `case.json`: {"model": model text (the part inside nn.Sequential(...)), "input_shape": per-sample
  dims, "loss": "mse" | "cross-entropy" | "quadratic", "optimizer": {"kind": "sgd", "lr", "momentum",
  "dampening", "weight_decay", "nesterov"} or {"kind": "adam", "lr", "beta1", "beta2", "eps",
  "weight_decay"}, "batch_size": B, "steps": K (optimizer steps in all), "epochs": E, "n": N,
  "seed", "torch_version", "command": the command line that regenerates this case}
- `init.safetensors`: the initial `state_dict()` (metadata {"model": model text}).
- `x.npy`: float32 inputs, shape (N, *input_shape).
- `y.npy`: int64 class indices (cross-entropy) or float32 targets shaped like the output.
- `out.npy`: float32 output of the initial model (eval mode) on all of x.
- `loss.json`: {"loss": float} loss of the initial model on the first batch x[:B], y[:B].
- `grad_x.npy`: float32 d loss / d x for that first batch, shape (B, *input_shape).
- `grads.safetensors`: parameter gradients of that first-batch loss (same keys as the state_dict).
- `after.safetensors`: the state_dict after `epochs` epochs over x, y in order, batches of B
  (last one smaller when N % B != 0, as DataLoader(shuffle=False)), one
  `zero_grad(); loss.backward(); step()` per batch.

Losses: "mse" = nn.MSELoss() (mean over all elements); "cross-entropy" = nn.CrossEntropyLoss()
on logits (mean over the batch); "quadratic" = 0.5 * ((a - y)**2).sum(dim=1).mean().

Model text uses bare PyTorch names (Linear, Conv2d, MaxPool2d, AvgPool2d, Flatten, ReLU,
LeakyReLU, Sigmoid, Tanh, Softmax, Dropout, Sequential) plus `Parallel(a, b, ...)`: branches on the
same input, outputs concatenated along dim 1. A top-level `Linear(?,k)` gets its in_features
from running the layers before it; the stored text always has the number.
"""

import argparse
import json
import math
import os
import re
import shlex
import sys

import numpy as np
import torch
import torch.nn as nn
from safetensors.torch import load_file, save_file

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_OUT = os.path.join("tests", "fixtures", "golden")


class Parallel(nn.ModuleList):
    """Branches applied to the same input; outputs concatenated along dim 1."""

    def __init__(self, *mods):
        super().__init__(mods)

    def forward(self, x):
        return torch.cat([m(x) for m in self], dim=1)


NAMES = ["Linear", "Conv2d", "MaxPool2d", "AvgPool2d", "Flatten", "ReLU", "LeakyReLU",
         "Sigmoid", "Tanh", "Softmax", "Dropout", "Sequential", "Parallel"]
_NAME_RE = re.compile(r"\b(" + "|".join(NAMES) + r")\b(\s*\()?")


def _to_python(text):
    def sub(m):
        name, paren = m.group(1), m.group(2)
        qual = name if name == "Parallel" else "nn." + name
        return qual + "(" if paren else qual + "()"
    return _NAME_RE.sub(sub, text)


def build(text):
    """nn.Sequential from model text (no '?')."""
    assert "?" not in text, text
    return eval("nn.Sequential(" + _to_python(text) + ")", {"nn": nn, "Parallel": Parallel})


def split_top(text):
    """Split model text on commas at parenthesis depth 0."""
    items, depth, cur = [], 0, ""
    for ch in text:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        if ch == "," and depth == 0:
            items.append(cur.strip())
            cur = ""
        else:
            cur += ch
    items.append(cur.strip())
    return items


def resolve(text, input_shape):
    """Replace each top-level `Linear(?,k)` with the in_features the layers before it produce."""
    items = split_top(text)
    for i, item in enumerate(items):
        if "?" in item:
            assert item.replace(" ", "").startswith("Linear(?"), item
            with torch.random.fork_rng():
                prefix = build(", ".join(items[:i])).eval()
                with torch.no_grad():
                    h = prefix(torch.zeros(1, *input_shape))
            assert h.dim() == 2, f"{item}: input to it has shape {tuple(h.shape)}"
            items[i] = item.replace("?", str(h.shape[1]), 1)
    return ", ".join(items)


# ---------------------------------------------------------------------------------------------
# Cases


def sgd(lr, momentum=0.0, dampening=0.0, weight_decay=0.0, nesterov=False):
    return {"kind": "sgd", "lr": lr, "momentum": momentum, "dampening": dampening,
            "weight_decay": weight_decay, "nesterov": nesterov}


def adam(lr, beta1=0.9, beta2=0.999, eps=1e-8, weight_decay=0.0):
    return {"kind": "adam", "lr": lr, "beta1": beta1, "beta2": beta2, "eps": eps,
            "weight_decay": weight_decay}


def images(n, shape, classes):
    return torch.rand(n, *shape), torch.randint(0, classes, (n,), dtype=torch.int64)


def nielsen_data(n, shape, classes):
    x = torch.rand(n, *shape)
    y = nn.functional.one_hot(torch.randint(0, classes, (n,)), classes).to(torch.float32)
    return x, y


def normal_regression(n, shape, outs):
    return torch.randn(n, *shape), torch.randn(n, outs)


def uniform_targets(n, shape, outs):
    return torch.randn(n, *shape), torch.rand(n, outs)


def normal_classes(n, shape, classes):
    return torch.randn(n, *shape), torch.randint(0, classes, (n,), dtype=torch.int64)


def cubic(n, shape, _outs):
    x = torch.rand(n, 2) * 2 - 1  # columns: x, y ~ U(-1, 1)
    t = ((x[:, 0] + 4) ** 3 + 4 * x[:, 1]) / 100
    return x, t.unsqueeze(1)


CASES = {
    "mlp": dict(
        model="Flatten, Linear(784,512), ReLU, Linear(512,512), ReLU, Linear(512,10)",
        input_shape=[1, 28, 28], loss="cross-entropy", optimizer=sgd(0.1),
        batch_size=4, n=8, epochs=1, seed=1, data=images, outs=10),
    "seed_cnn": dict(
        model="Conv2d(1,8,3,stride=2), ReLU, Conv2d(8,8,3,stride=2), ReLU, Flatten, Linear(288,10)",
        input_shape=[1, 28, 28], loss="cross-entropy", optimizer=sgd(0.1, momentum=0.9),
        batch_size=5, n=12, epochs=2, seed=2, data=images, outs=10),
    "lenet": dict(
        model="Conv2d(1,32,3,padding=1), ReLU, MaxPool2d(2), Conv2d(32,64,3,padding=1), ReLU, "
              "MaxPool2d(2), Flatten, Linear(3136,128), ReLU, Linear(128,10)",
        input_shape=[1, 28, 28], loss="cross-entropy", optimizer=adam(1e-3),
        batch_size=3, n=6, epochs=1, seed=3, data=images, outs=10),
    "nielsen": dict(
        model="Flatten, Linear(784,30), Sigmoid, Linear(30,10), Sigmoid",
        input_shape=[1, 28, 28], loss="quadratic", optimizer=sgd(3.0),
        batch_size=10, n=30, epochs=1, seed=4, data=nielsen_data, outs=10),
    "conv_stride3_pad2": dict(
        model="Conv2d(3,4,(3,2),stride=3,padding=2), Tanh, Conv2d(4,5,2,stride=(1,2),padding=(1,0)), "
              "LeakyReLU(0.1), Flatten, Linear(?,6)",
        input_shape=[3, 11, 8], loss="mse",
        optimizer=sgd(0.05, momentum=0.9, nesterov=True, weight_decay=1e-3),
        batch_size=4, n=10, epochs=2, seed=5, data=normal_regression, outs=6),
    "pools": dict(
        model="Conv2d(2,6,3,padding=1), ReLU, MaxPool2d(2), Conv2d(6,4,3), Sigmoid, AvgPool2d((2,1)), "
              "Flatten, Linear(?,3), Softmax(dim=1)",
        input_shape=[2, 13, 10], loss="mse",
        optimizer=adam(0.01, beta1=0.8, beta2=0.99, eps=1e-6, weight_decay=0.01),
        batch_size=4, n=9, epochs=2, seed=6, data=uniform_targets, outs=3),
    "leaky_tanh_mlp": dict(
        model="Linear(5,16), LeakyReLU, Linear(16,16), Tanh, Linear(16,3)",
        input_shape=[5], loss="mse", optimizer=sgd(0.1, momentum=0.5, dampening=0.1),
        batch_size=7, n=20, epochs=3, seed=7, data=normal_regression, outs=3),
    "parallel": dict(
        model="Conv2d(1,2,3), Parallel(Sequential(Conv2d(2,3,3,padding=1), ReLU), Conv2d(2,2,1)), "
              "Flatten, Linear(?,4)",
        input_shape=[1, 6, 7], loss="cross-entropy", optimizer=sgd(0.05),
        batch_size=3, n=7, epochs=2, seed=8, data=normal_classes, outs=4),
    "regression": dict(
        model="Linear(2,7), ReLU, Linear(7,7), ReLU, Linear(7,3), ReLU, Linear(3,1)",
        input_shape=[2], loss="mse", optimizer=sgd(0.01),
        batch_size=10, n=40, epochs=2, seed=9, data=cubic, outs=1),
}


def loss_fn(kind):
    if kind == "mse":
        return nn.MSELoss()
    if kind == "cross-entropy":
        return nn.CrossEntropyLoss()
    if kind == "quadratic":
        return lambda a, y: 0.5 * ((a - y) ** 2).sum(dim=1).mean()
    raise ValueError(kind)


def make_optimizer(spec, params):
    if spec["kind"] == "sgd":
        return torch.optim.SGD(params, lr=spec["lr"], momentum=spec["momentum"],
                               dampening=spec["dampening"], weight_decay=spec["weight_decay"],
                               nesterov=spec["nesterov"])
    if spec["kind"] == "adam":
        return torch.optim.Adam(params, lr=spec["lr"], betas=(spec["beta1"], spec["beta2"]),
                                eps=spec["eps"], weight_decay=spec["weight_decay"])
    raise ValueError(spec["kind"])


def snapshot(model):
    return {k: v.detach().clone().contiguous() for k, v in model.state_dict().items()}


def save_npy(path, t, dtype):
    np.save(path, np.ascontiguousarray(t.detach().numpy().astype(dtype)))


def command_for(out, name):
    rel = os.path.relpath(os.path.abspath(out), REPO)
    out_arg = out if rel.startswith("..") else rel
    return f"python3 tools/make_fixtures.py --out {shlex.quote(out_arg)} --case {name}"


def make_case(name, out):
    c = CASES[name]
    shape, B, N, E = c["input_shape"], c["batch_size"], c["n"], c["epochs"]
    text = resolve(c["model"], shape)

    torch.manual_seed(c["seed"])
    model = build(text)
    x, y = c["data"](N, shape, c["outs"])
    x = x.to(torch.float32).contiguous()
    y = y.contiguous()
    crit = loss_fn(c["loss"])
    init = snapshot(model)

    model.eval()
    with torch.no_grad():
        out_all = model(x)
    if c["loss"] != "cross-entropy":
        assert y.shape == out_all.shape, (name, y.shape, out_all.shape)

    model.train()
    xb = x[:B].clone().requires_grad_(True)
    model.zero_grad()
    loss = crit(model(xb), y[:B])
    loss.backward()
    grads = {k: p.grad.detach().clone().contiguous() for k, p in model.named_parameters()}
    assert set(grads) == set(init), (name, set(init) ^ set(grads))

    model.zero_grad()
    opt = make_optimizer(c["optimizer"], model.parameters())
    steps = 0
    for _ in range(E):
        for i in range(0, N, B):
            opt.zero_grad()
            crit(model(x[i:i + B]), y[i:i + B]).backward()
            opt.step()
            steps += 1
    assert steps == E * math.ceil(N / B)

    d = os.path.join(out, name)
    os.makedirs(d, exist_ok=True)
    meta = {"model": text}
    save_file(init, os.path.join(d, "init.safetensors"), metadata=meta)
    save_file(grads, os.path.join(d, "grads.safetensors"), metadata=meta)
    save_file(snapshot(model), os.path.join(d, "after.safetensors"), metadata=meta)
    save_npy(os.path.join(d, "x.npy"), x, np.float32)
    save_npy(os.path.join(d, "y.npy"), y, np.int64 if c["loss"] == "cross-entropy" else np.float32)
    save_npy(os.path.join(d, "out.npy"), out_all, np.float32)
    save_npy(os.path.join(d, "grad_x.npy"), xb.grad, np.float32)
    with open(os.path.join(d, "loss.json"), "w") as f:
        json.dump({"loss": loss.item()}, f)
        f.write("\n")
    case = {"model": text, "input_shape": shape, "loss": c["loss"], "optimizer": c["optimizer"],
            "batch_size": B, "steps": steps, "epochs": E, "n": N, "seed": c["seed"],
            "torch_version": torch.__version__, "command": command_for(out, name)}
    with open(os.path.join(d, "case.json"), "w") as f:
        json.dump(case, f, indent=2)
        f.write("\n")
    print(f"{name}: N={N} B={B} steps={steps} loss={loss.item():.6g} model: {text}")


def verify_case(name, out):
    """Reload a case from disk and check it is self-consistent."""
    d = os.path.join(out, name)
    with open(os.path.join(d, "case.json")) as f:
        case = json.load(f)
    text = case["model"]
    assert "?" not in text, (name, text)
    model = build(text)
    sd = load_file(os.path.join(d, "init.safetensors"))
    model.load_state_dict(sd, strict=True)
    model.eval()
    x = torch.from_numpy(np.load(os.path.join(d, "x.npy")))
    y = np.load(os.path.join(d, "y.npy"))
    out_npy = np.load(os.path.join(d, "out.npy"))
    assert x.dtype == torch.float32 and list(x.shape[1:]) == case["input_shape"], name
    assert out_npy.dtype == np.float32, name
    assert y.dtype == (np.int64 if case["loss"] == "cross-entropy" else np.float32), name
    with torch.no_grad():
        again = model(x).numpy()
    assert np.array_equal(again, out_npy), (name, np.abs(again - out_npy).max())
    gx = np.load(os.path.join(d, "grad_x.npy"))
    assert gx.shape == (case["batch_size"], *case["input_shape"]) and gx.dtype == np.float32, name
    for f in ("grads", "after"):
        t = load_file(os.path.join(d, f + ".safetensors"))
        assert list(t) == list(sd) or set(t) == set(sd), (name, f)
        assert all(t[k].shape == sd[k].shape and t[k].dtype == torch.float32 for k in sd), (name, f)
    n = x.shape[0]
    assert case["steps"] == case["epochs"] * math.ceil(n / case["batch_size"]), name
    print(f"{name}: ok")


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", default=None,
                   help=f"output directory (default: {DEFAULT_OUT} under the repository root)")
    p.add_argument("--case", choices=sorted(CASES), help="only this case (default: all)")
    p.add_argument("--verify", action="store_true", help="check the fixtures on disk, write nothing")
    a = p.parse_args(argv)
    out = a.out if a.out is not None else os.path.join(REPO, DEFAULT_OUT)
    names = [a.case] if a.case else list(CASES)
    torch.set_default_dtype(torch.float32)
    for name in names:
        (verify_case if a.verify else make_case)(name, out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
