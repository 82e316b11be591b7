#!/usr/bin/env python3
"""scratchnet's LSTM against PyTorch's nn.LSTM, side by side: row-lstm and a char-LSTM.

Run from the repository root after `cargo build --release`:

    python3 tools/bench_rnn.py                          # both models, 2 then 1 thread, 3 rounds
    python3 tools/bench_rnn.py --model row-lstm --threads 2 --rounds 5 --limit 10000

The model is the issue's row-by-row classifier, `Flatten(1, 2), LSTM(28, 128), Select(1, -1),
Linear(128, 10)` on [1, 28, 28] images (28 steps of 28 pixels). Both sides train it as
tools/bench_pytorch.py trains its models (batch 50, SGD lr 0.1, cross-entropy, a fixed order): ours
with `scratchnet bench --model TEXT --json`, PyTorch's with `bench_pytorch.bench_one` on the same
model built from `nn.LSTM(28, 128, batch_first=True)`.

`char-lstm` is the issue's character model at V = 60, `Embedding(60, 64), LSTM(64, 256),
Linear(256, 60)`, on `--char-seqs` random sequences of 64 token ids whose targets are 64 ids too
(cross-entropy over all N·64 positions, batch 50, SGD lr 0.1, no shuffling): ours with
`scratchnet train --data X.npy:Y.npy` (the first epoch is a warm-up; the "train … s" of the others
are timed), PyTorch's the same way in its own process.

The two sides run in turn, each in its own process, `--rounds` times; the table shows the median
epoch time of each side over all its epochs and the ratio scratchnet / PyTorch. The machine is
shared: compare only numbers from one run.
"""

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TEXT = "Flatten(1, 2), LSTM(28, 128), Select(1, -1), Linear(128, 10)"
VOCAB, SEQ = 60, 64
CHAR_TEXT = f"Embedding({VOCAB}, 64), LSTM(64, 256), Linear(256, {VOCAB})"


def pytorch_one(threads, repeats, limit):
    """One PyTorch measurement in this process, printed as a JSON line."""
    sys.path.insert(0, os.path.join(ROOT, "tools"))
    import bench_pytorch as bp

    r = bp.bench_one("row-lstm", threads, repeats, limit, bp.DEFAULT_DATA_DIR)
    print(json.dumps(r))


def char_data(dirname, seqs):
    """Random token ids X, Y: [seqs, SEQ] int64, saved as X.npy and Y.npy; returns the paths."""
    import numpy as np

    rng = np.random.default_rng(0)
    paths = [os.path.join(dirname, n) for n in ("X.npy", "Y.npy")]
    for p in paths:
        np.save(p, rng.integers(0, VOCAB, (seqs, SEQ)).astype(np.int64))
    return paths


def char_pytorch_one(threads, repeats, x_path, y_path):
    """PyTorch's char-LSTM epochs (after one warm-up epoch) in this process, as a JSON line."""
    import numpy as np
    import torch
    from torch import nn

    class CharLstm(nn.Module):
        def __init__(self):
            super().__init__()
            self.emb = nn.Embedding(VOCAB, 64)
            self.lstm = nn.LSTM(64, 256, batch_first=True)
            self.out = nn.Linear(256, VOCAB)

        def forward(self, x):
            return self.out(self.lstm(self.emb(x))[0])

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    x, y = torch.from_numpy(np.load(x_path)), torch.from_numpy(np.load(y_path))
    model, loss_fn = CharLstm(), nn.CrossEntropyLoss()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    times = []
    for epoch in range(1 + repeats):
        t0 = time.perf_counter()
        for i in range(0, x.shape[0], 50):
            opt.zero_grad()
            loss = loss_fn(model(x[i:i + 50]).reshape(-1, VOCAB), y[i:i + 50].reshape(-1))
            loss.backward()
            opt.step()
        if epoch > 0:
            times.append(time.perf_counter() - t0)
    print(json.dumps({"epoch_seconds": times}))


def char_ours(binary, threads, repeats, x_path, y_path, out_dir):
    """Our char-LSTM epochs (after one warm-up epoch), from `scratchnet train`'s epoch lines."""
    cmd = [binary, "--threads", threads, "train", "--data", f"{x_path}:{y_path}", "--model",
           CHAR_TEXT, "--epochs", str(1 + repeats), "--batch-size", "50", "--lr", "0.1",
           "--no-shuffle", "--out", os.path.join(out_dir, "char.safetensors")]
    p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=ROOT)
    if p.returncode != 0:
        raise SystemExit(f"failed (exit {p.returncode}): {' '.join(cmd)}\n{p.stdout}")
    times = [float(t) for t in re.findall(r"\|\s+train ([0-9.]+) s", p.stdout)]
    return times[1:]


def run_json(cmd):
    p = subprocess.run(cmd, stdout=subprocess.PIPE, text=True, cwd=ROOT)
    if p.returncode != 0:
        raise SystemExit(f"failed (exit {p.returncode}): {' '.join(cmd)}")
    return [json.loads(l) for l in p.stdout.splitlines() if l.startswith("{")][0]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="row-lstm,char-lstm", help="row-lstm, char-lstm or both")
    ap.add_argument("--threads", default="2,1", help="thread counts, comma-separated")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--repeats", type=int, default=1, help="timed epochs per process")
    ap.add_argument("--limit", type=int, default=10000, help="row-lstm: training images per epoch")
    ap.add_argument("--char-seqs", type=int, default=1000, help="char-lstm: sequences per epoch")
    ap.add_argument("--bin", default=os.path.join(ROOT, "target/release/scratchnet"))
    ap.add_argument("--one-pytorch", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--one-char-pytorch", nargs=2, help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.one_pytorch:
        pytorch_one(int(a.threads), a.repeats, a.limit)
        return
    if a.one_char_pytorch:
        char_pytorch_one(int(a.threads), a.repeats, *a.one_char_pytorch)
        return
    tmp = tempfile.TemporaryDirectory()
    x_path, y_path = char_data(tmp.name, a.char_seqs)
    for model in a.model.split(","):
        if model == "row-lstm":
            print(f"row-lstm: {TEXT} on Fashion-MNIST, {a.limit} images per epoch, batch 50, "
                  "SGD lr 0.1")
        elif model == "char-lstm":
            print(f"char-lstm: {CHAR_TEXT} on {a.char_seqs} random sequences of {SEQ} ids, "
                  "batch 50, SGD lr 0.1")
        else:
            raise SystemExit(f"unknown --model {model!r}: row-lstm or char-lstm")
        print("threads  scratchnet s/epoch  PyTorch s/epoch  ratio  (medians; rounds alternate)")
        for threads in a.threads.split(","):
            ours, theirs = [], []
            for _ in range(a.rounds):
                if model == "row-lstm":
                    r = run_json([a.bin, "--threads", threads, "bench", "--model", TEXT,
                                  "--repeats", str(a.repeats), "--limit", str(a.limit), "--json"])
                    ours += r["epoch_seconds"]
                    r = run_json([sys.executable, __file__, "--one-pytorch", "--threads", threads,
                                  "--repeats", str(a.repeats), "--limit", str(a.limit)])
                else:
                    ours += char_ours(a.bin, threads, a.repeats, x_path, y_path, tmp.name)
                    r = run_json([sys.executable, __file__, "--one-char-pytorch", x_path, y_path,
                                  "--threads", threads, "--repeats", str(a.repeats)])
                theirs += r["epoch_seconds"]
            o, t = statistics.median(ours), statistics.median(theirs)
            print(f"{threads:>7}  {o:18.3f}  {t:15.3f}  {o / t:5.2f}   "
                  f"(ours {[round(x, 3) for x in ours]}, PyTorch {[round(x, 3) for x in theirs]})")


if __name__ == "__main__":
    main()
