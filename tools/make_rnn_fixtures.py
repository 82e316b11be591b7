#!/usr/bin/env python3
"""PyTorch golden fixtures for the sequence layers, in the format of tools/make_fixtures.py.

    python3 tools/make_rnn_fixtures.py --out tests/fixtures/golden

Each case is an nn.Sequential of PyTorch modules; `Select` is `x.select(dim, index)` in a wrapper,
and ids reach `nn.Embedding` as floats (as scratchnet stores them) turned into `long`. Ids are not
differentiable, so grad_x is zero.
"""
import argparse
import os
import sys

import torch
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


def build(text):
    return eval("nn.Sequential(" + text + ")",
                {"nn": nn, "Embedding": Embedding, "Select": Select, "Linear": nn.Linear,
                 "Tanh": nn.Tanh})


def id_sequences(vocab):
    def data(n, shape, classes):
        x = torch.randint(0, vocab, (n, *shape)).to(torch.float32)
        return x, torch.randint(0, classes, (n,))
    return data


CASES = {
    "embedding_select": dict(
        model="Embedding(7, 4, padding_idx=2), Select(1, -1), Tanh(), Linear(4, 3)",
        input_shape=[5], loss="cross-entropy", optimizer=mf.sgd(0.1, momentum=0.9),
        batch_size=4, n=10, epochs=2, seed=11, data=id_sequences(7), outs=3),
    "embedding_select_adam": dict(
        model="Embedding(6, 3), Select(1, 2), Linear(3, 2)",
        input_shape=[4], loss="cross-entropy", optimizer=mf.adam(0.01),
        batch_size=3, n=7, epochs=2, seed=12, data=id_sequences(6), outs=2),
}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=mf.DEFAULT_OUT)
    args = ap.parse_args()
    mf.build = build
    mf.resolve = lambda text, shape: text
    mf.CASES.clear()
    mf.CASES.update(CASES)
    mf.command_for = lambda out, name: f"python3 tools/make_rnn_fixtures.py --out {out}"
    save_npy = mf.save_npy

    def save_zero_for_ids(path, t, dtype):
        # Ids get no gradient (xb.grad is None): ∂L/∂x is zero, of the first batch's shape.
        save_npy(path, torch.zeros(batch_shape) if t is None else t, dtype)

    mf.save_npy = save_zero_for_ids
    for name, c in CASES.items():
        batch_shape = (c["batch_size"], *c["input_shape"])
        mf.make_case(name, args.out)

if __name__ == "__main__":
    main()
