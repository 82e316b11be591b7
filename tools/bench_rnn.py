#!/usr/bin/env python3
"""scratchnet's LSTM against PyTorch's nn.LSTM, side by side, on Fashion-MNIST read row by row.

Run from the repository root after `cargo build --release`:

    python3 tools/bench_rnn.py                          # row-lstm, 2 then 1 thread, 3 rounds
    python3 tools/bench_rnn.py --threads 2 --rounds 5 --limit 10000

The model is the issue's row-by-row classifier, `Flatten(1, 2), LSTM(28, 128), Select(1, -1),
Linear(128, 10)` on [1, 28, 28] images (28 steps of 28 pixels). Both sides train it as
tools/bench_pytorch.py trains its models (batch 50, SGD lr 0.1, cross-entropy, a fixed order): ours
with `scratchnet bench --model TEXT --json`, PyTorch's with `bench_pytorch.bench_one` on the same
model built from `nn.LSTM(28, 128, batch_first=True)`. The two sides run in turn, each in its own
process, `--rounds` times; the table shows the median epoch time of each side over all its epochs
and the ratio scratchnet / PyTorch. The machine is shared: compare only numbers from one run.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TEXT = "Flatten(1, 2), LSTM(28, 128), Select(1, -1), Linear(128, 10)"


def row_lstm():
    """PyTorch's twin of TEXT."""
    from torch import nn

    class LastStep(nn.Module):
        def __init__(self):
            super().__init__()
            self.lstm = nn.LSTM(28, 128, batch_first=True)

        def forward(self, x):
            return self.lstm(x.flatten(1, 2))[0][:, -1]

    return nn.Sequential(LastStep(), nn.Linear(128, 10))


def pytorch_one(threads, repeats, limit):
    """One PyTorch measurement in this process, printed as a JSON line."""
    sys.path.insert(0, os.path.join(ROOT, "tools"))
    import bench_pytorch as bp

    bp.build_model = lambda name: row_lstm()
    bp.train_flops_per_sample = lambda model: 0.0
    r = bp.bench_one("row-lstm", threads, repeats, limit, bp.DEFAULT_DATA_DIR)
    print(json.dumps(r))


def run_json(cmd):
    p = subprocess.run(cmd, stdout=subprocess.PIPE, text=True, cwd=ROOT)
    if p.returncode != 0:
        raise SystemExit(f"failed (exit {p.returncode}): {' '.join(cmd)}")
    return [json.loads(l) for l in p.stdout.splitlines() if l.startswith("{")][0]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--threads", default="2,1", help="thread counts, comma-separated")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--repeats", type=int, default=1, help="timed epochs per process")
    ap.add_argument("--limit", type=int, default=10000, help="training images per epoch")
    ap.add_argument("--bin", default=os.path.join(ROOT, "target/release/scratchnet"))
    ap.add_argument("--one-pytorch", action="store_true", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.one_pytorch:
        pytorch_one(int(a.threads), a.repeats, a.limit)
        return
    print(f"{TEXT} on Fashion-MNIST, {a.limit} images per epoch, batch 50, SGD lr 0.1")
    print("threads  scratchnet s/epoch  PyTorch s/epoch  ratio  (medians; rounds alternate)")
    for threads in a.threads.split(","):
        ours, theirs = [], []
        for _ in range(a.rounds):
            r = run_json([a.bin, "--threads", threads, "bench", "--model", TEXT, "--repeats",
                          str(a.repeats), "--limit", str(a.limit), "--json"])
            ours += r["epoch_seconds"]
            r = run_json([sys.executable, __file__, "--one-pytorch", "--threads", threads,
                          "--repeats", str(a.repeats), "--limit", str(a.limit)])
            theirs += r["epoch_seconds"]
        o, t = statistics.median(ours), statistics.median(theirs)
        print(f"{threads:>7}  {o:18.3f}  {t:15.3f}  {o / t:5.2f}   "
              f"(ours {[round(x, 3) for x in ours]}, PyTorch {[round(x, 3) for x in theirs]})")


if __name__ == "__main__":
    main()
