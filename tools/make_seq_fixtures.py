#!/usr/bin/env python3
"""PyTorch golden fixtures for sequence data: integer token ids `[N, T]` (saved as int64, as a user
would) and one class target per step `[N, T]`, in the format of tools/make_fixtures.py.

    python3 tools/make_seq_fixtures.py --out tests/fixtures/golden

The loss is cross-entropy over every position, `F.cross_entropy(out.reshape(-1, C), y.reshape(-1))`
(the mean over N·T). Models are built as in tools/make_rnn_fixtures.py; ids get no gradient, so
grad_x is zero.
"""
import argparse
import os
import sys

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import make_fixtures as mf  # noqa: E402
import make_rnn_fixtures as mr  # noqa: E402


def per_step(vocab):
    """Ids in 0..vocab and a target per step: the next id (the last step's is random)."""
    def data(n, shape, classes):
        x = torch.randint(0, vocab, (n, *shape))
        y = torch.cat([x[:, 1:], torch.randint(0, classes, (n, 1))], dim=1) % classes
        return x.to(torch.float32), y
    return data


CASES = {
    "embedding_steps": dict(
        model="Embedding(7, 5, padding_idx=0), Linear(5, 7)",
        input_shape=[6], loss="cross-entropy", optimizer=mf.sgd(0.5, momentum=0.9),
        batch_size=4, n=10, epochs=2, seed=21, data=per_step(7), outs=7),
    # A character-level language model in small (char-lstm's shape): the LSTM's whole output
    # sequence [N, T, H] goes to the Linear head, logits [N, T, C].
    "embedding_lstm_steps": dict(
        model="Embedding(9, 6), LSTM(6, 8), Linear(8, 9)",
        input_shape=[5], loss="cross-entropy", optimizer=mf.adam(0.01),
        batch_size=4, n=10, epochs=2, seed=22, data=per_step(9), outs=9),
}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=mf.DEFAULT_OUT)
    args = ap.parse_args()
    mf.build = mr.build
    mf.resolve = lambda text, shape: text
    mf.CASES.clear()
    mf.CASES.update(CASES)
    mf.command_for = lambda out, name: f"python3 tools/make_seq_fixtures.py --out {out}"
    mf.loss_fn = lambda kind: (
        lambda out, y: F.cross_entropy(out.reshape(-1, out.shape[-1]), y.reshape(-1)))
    save_npy = mf.save_npy

    def save(path, t, dtype):
        if t is None:  # ids get no gradient: ∂L/∂x is zero, of the first batch's shape
            t = torch.zeros(batch_shape)
        if os.path.basename(path) == "x.npy":  # token ids as integers
            dtype = np.int64
        save_npy(path, t, dtype)

    mf.save_npy = save
    for name, c in CASES.items():
        batch_shape = (c["batch_size"], *c["input_shape"])
        mf.make_case(name, args.out)


if __name__ == "__main__":
    main()
