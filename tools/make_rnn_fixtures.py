#!/usr/bin/env python3
"""PyTorch golden fixtures for the sequence layers, in the format of tools/make_fixtures.py.

    python3 tools/make_rnn_fixtures.py --out tests/fixtures/golden
    python3 tools/make_rnn_fixtures.py --interchange target/release/scratchnet

Each case is an nn.Sequential of PyTorch modules; `Select` is `x.select(dim, index)` in a wrapper,
and ids reach `nn.Embedding` as floats (as scratchnet stores them) turned into `long`. Ids are not
differentiable, so grad_x is zero. `RNN`, `LSTM` and `GRU` are the documented way to use
PyTorch's in a Sequential, the module itself (same state_dict keys) with `batch_first=True`
passing on `output` only:

    class LSTM(nn.LSTM):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, batch_first=True, **kwargs)

        def forward(self, x):
            return super().forward(x)[0]

Besides make_fixtures.py's files, each case has `out_after.npy`: the trained model's output on all
x. `--interchange BIN` checks the other direction: BIN (scratchnet) trains every recurrent case
through the CLI contract, and PyTorch loads the file it saves with `load_state_dict(strict=True)`
and must find the weights of `after.safetensors` and the same outputs.
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile

import numpy as np
import torch
from safetensors.torch import load_file
from torch import nn

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import make_fixtures as mf  # noqa: E402


class Select(nn.Module):
    """scratchnet's Select(dim, index): no parameters."""

    def __init__(self, dim, index):
        super().__init__()
        self.dim, self.index = dim, index

    def forward(self, x):
        return x.select(self.dim, self.index)


class Embedding(nn.Embedding):
    """nn.Embedding taking float ids; the state_dict key stays `weight`."""

    def forward(self, x):
        return super().forward(x.long())


def batch_first(base):
    """`base` (nn.RNN, nn.LSTM, nn.GRU) with batch_first=True, returning `output` only."""

    class Recurrent(base):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, batch_first=True, **kwargs)

        def forward(self, x):
            return super().forward(x)[0]

    Recurrent.__name__ = base.__name__
    return Recurrent


RNN, LSTM, GRU = batch_first(nn.RNN), batch_first(nn.LSTM), batch_first(nn.GRU)


def build(text):
    return eval("nn.Sequential(" + text + ")",
                {"nn": nn, "Embedding": Embedding, "Select": Select, "Linear": nn.Linear,
                 "Tanh": nn.Tanh, "RNN": RNN, "LSTM": LSTM, "GRU": GRU})


def id_sequences(vocab):
    def data(n, shape, classes):
        x = torch.randint(0, vocab, (n, *shape)).to(torch.float32)
        return x, torch.randint(0, classes, (n,))
    return data


def sequences(n, shape, classes):
    return torch.randn(n, *shape), torch.randint(0, classes, (n,))


CASES = {
    "embedding_select": dict(
        model="Embedding(7, 4, padding_idx=2), Select(1, -1), Tanh(), Linear(4, 3)",
        input_shape=[5], loss="cross-entropy", optimizer=mf.sgd(0.1, momentum=0.9),
        batch_size=4, n=10, epochs=2, seed=11, data=id_sequences(7), outs=3),
    "embedding_select_adam": dict(
        model="Embedding(6, 3), Select(1, 2), Linear(3, 2)",
        input_shape=[4], loss="cross-entropy", optimizer=mf.adam(0.01),
        batch_size=3, n=7, epochs=2, seed=12, data=id_sequences(6), outs=2),
    "rnn_tanh": dict(
        model="RNN(3, 5), Select(1, -1), Linear(5, 3)",
        input_shape=[4, 3], loss="cross-entropy", optimizer=mf.sgd(0.1, momentum=0.9),
        batch_size=4, n=10, epochs=2, seed=31, data=sequences, outs=3),
    "rnn_relu_bi_2layer": dict(
        model="RNN(3, 4, num_layers=2, nonlinearity='relu', bidirectional=True), Select(1, -1), "
              "Linear(8, 3)",
        input_shape=[5, 3], loss="cross-entropy", optimizer=mf.adam(0.01),
        batch_size=4, n=9, epochs=2, seed=32, data=sequences, outs=3),
    "lstm": dict(
        model="LSTM(3, 5), Select(1, -1), Linear(5, 3)",
        input_shape=[6, 3], loss="cross-entropy", optimizer=mf.sgd(0.1, momentum=0.9),
        batch_size=4, n=10, epochs=2, seed=33, data=sequences, outs=3),
    "lstm_bi_2layer": dict(
        model="LSTM(4, 3, num_layers=2, bidirectional=True), Select(1, 0), Linear(6, 2)",
        input_shape=[5, 4], loss="cross-entropy", optimizer=mf.adam(0.01),
        batch_size=3, n=8, epochs=2, seed=34, data=sequences, outs=2),
    "gru_2layer": dict(
        model="GRU(3, 4, num_layers=2), Select(1, -1), Linear(4, 3)",
        input_shape=[5, 3], loss="cross-entropy", optimizer=mf.sgd(0.1, momentum=0.9),
        batch_size=4, n=10, epochs=2, seed=35, data=sequences, outs=3),
    "gru_bi_nobias": dict(
        model="GRU(3, 4, bias=False, bidirectional=True), Select(1, -1), Linear(8, 3)",
        input_shape=[4, 3], loss="cross-entropy", optimizer=mf.adam(0.01),
        batch_size=4, n=9, epochs=2, seed=36, data=sequences, outs=3),
    "rnn_tanh_bi_embedding": dict(
        model="Embedding(7, 4), RNN(4, 5, bidirectional=True), Select(1, -1), Linear(10, 3)",
        input_shape=[5], loss="cross-entropy", optimizer=mf.sgd(0.05, momentum=0.9),
        batch_size=4, n=10, epochs=2, seed=37, data=id_sequences(7), outs=3),
}


def save_trained_output(name, out):
    """`out_after.npy`: the model of `after.safetensors` on all of x, in eval mode."""
    d = os.path.join(out, name)
    with open(os.path.join(d, "case.json")) as f:
        text = json.load(f)["model"]
    model = build(text)
    model.load_state_dict(load_file(os.path.join(d, "after.safetensors")), strict=True)
    model.eval()
    with torch.no_grad():
        y = model(torch.from_numpy(np.load(os.path.join(d, "x.npy"))))
    np.save(os.path.join(d, "out_after.npy"), y.numpy().astype(np.float32))


def cli_flags(case):
    """scratchnet train flags for a case's loss, optimiser, epochs and batch size."""
    o = case["optimizer"]
    flags = ["--loss", case["loss"], "--epochs", str(case["epochs"]),
             "--batch-size", str(case["batch_size"]), "--optimizer", o["kind"], "--lr", str(o["lr"])]
    if o["kind"] == "sgd":
        flags += ["--momentum", str(o["momentum"])]
    return flags


def interchange(binary, out):
    """Ours → PyTorch: the file scratchnet saves after training loads into PyTorch's module."""
    for name in CASES:
        d = os.path.join(out, name)
        with open(os.path.join(d, "case.json")) as f:
            case = json.load(f)
        if not any(r in case["model"] for r in ("RNN", "LSTM", "GRU")):
            continue
        with tempfile.TemporaryDirectory() as tmp:
            ours = os.path.join(tmp, "ours.safetensors")
            subprocess.run([binary, "train", "--init", os.path.join(d, "init.safetensors"),
                            "--data", f"{d}/x.npy:{d}/y.npy", "--no-shuffle", "--quiet",
                            "--out", ours, *cli_flags(case)], check=True, capture_output=True)
            model = build(case["model"])
            model.load_state_dict(load_file(ours), strict=True)
        model.eval()
        after = load_file(os.path.join(d, "after.safetensors"))
        for k, v in model.state_dict().items():
            update = (load_file(os.path.join(d, "init.safetensors"))[k] - after[k]).abs().max()
            err = (v - after[k]).abs().max()
            assert err <= 1e-3 * update + 1e-7, (name, k, float(err), float(update))
        with torch.no_grad():
            y = model(torch.from_numpy(np.load(os.path.join(d, "x.npy")))).numpy()
        want = np.load(os.path.join(d, "out_after.npy"))
        assert np.allclose(y, want, rtol=1e-4, atol=1e-4), (name, np.abs(y - want).max())
        print(f"{name}: PyTorch loads scratchnet's trained file (strict); weights and outputs agree")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=mf.DEFAULT_OUT)
    ap.add_argument("--case", choices=sorted(CASES), help="only this case (default: all)")
    ap.add_argument("--interchange", metavar="BIN",
                    help="check that PyTorch loads what BIN (scratchnet) trains; write nothing")
    args = ap.parse_args()
    if args.interchange:
        interchange(args.interchange, args.out)
        return
    mf.build = build
    mf.resolve = lambda text, shape: text
    mf.CASES.clear()
    mf.CASES.update(CASES)
    mf.command_for = \
        lambda out, name: f"python3 tools/make_rnn_fixtures.py --out {out} --case {name}"
    save_npy = mf.save_npy

    def save_zero_for_ids(path, t, dtype):
        # Ids get no gradient (xb.grad is None): ∂L/∂x is zero, of the first batch's shape.
        save_npy(path, torch.zeros(batch_shape) if t is None else t, dtype)

    mf.save_npy = save_zero_for_ids
    for name, c in CASES.items():
        if args.case not in (None, name):
            continue
        batch_shape = (c["batch_size"], *c["input_shape"])
        mf.make_case(name, args.out)
        save_trained_output(name, args.out)

if __name__ == "__main__":
    main()
