#!/usr/bin/env python3
"""The README's accuracy table: each (model, epochs) trained on the full Fashion-MNIST for several
seeds by scratchnet and by PyTorch (tools/accuracy_pytorch.py) with the same settings (batch 50,
SGD lr 0.1, cross-entropy), as a markdown table. Takes a few minutes; needs PyTorch.

    python3 tools/accuracy_table.py --runs seed-cnn:1:3,mlp:5:6
"""
import argparse
import os
import re
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LINE = re.compile(r"train loss [\d.]+\s+accuracy \d+/\d+ \(([\d.]+)%\).*test loss [\d.]+\s+accuracy \d+/\d+ \(([\d.]+)%\)")


def last_epoch(out):
    """(train %, test %) of the last per-epoch line a run printed."""
    hits = [LINE.search(l) for l in out.splitlines()]
    hits = [h for h in hits if h]
    if not hits:
        raise SystemExit(f"no epoch line in:\n{out}")
    return float(hits[-1][1]), float(hits[-1][2])


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", default="seed-cnn:1:3,mlp:5:6", help="model:epochs:seeds, comma-separated")
    ap.add_argument("--scratchnet", default=os.path.join(ROOT, "target", "release", "scratchnet"))
    a = ap.parse_args()
    print("| model, epochs | seeds | test accuracy, scratchnet | test accuracy, PyTorch | "
          "mean train accuracy, scratchnet / PyTorch |")
    print("| --- | --- | --- | --- | --- |")
    with tempfile.TemporaryDirectory() as tmp:
        for run in a.runs.split(","):
            model, epochs, seeds = run.split(":")
            ours, theirs = [], []
            for seed in range(int(seeds)):
                print(f"{model} seed {seed}", file=sys.stderr)
                out = subprocess.run(
                    [a.scratchnet, "train", "--data", "fashion-mnist", "--model", model, "--epochs",
                     epochs, "--seed", str(seed), "--quiet", "--out", os.path.join(tmp, "m.safetensors")],
                    stdout=subprocess.PIPE, check=True).stdout.decode()
                ours.append(last_epoch(out))
                out = subprocess.run(
                    [sys.executable, os.path.join(ROOT, "tools", "accuracy_pytorch.py"), "--model", model,
                     "--epochs", epochs, "--seed", str(seed)],
                    stdout=subprocess.PIPE, check=True).stdout.decode()
                theirs.append(last_epoch(out))

            def cell(runs):
                tests = [t for _, t in runs]
                return ", ".join(f"{t:.2f}" for t in tests) + f" — mean **{sum(tests) / len(tests):.2f}%**"

            def train_mean(runs):
                return sum(r for r, _ in runs) / len(runs)

            print(f"| {model}, {epochs} | 0–{int(seeds) - 1} | {cell(ours)} | {cell(theirs)} | "
                  f"{train_mean(ours):.2f}% / {train_mean(theirs):.2f}% |")


if __name__ == "__main__":
    main()
