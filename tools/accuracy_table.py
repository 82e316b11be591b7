#!/usr/bin/env python3
"""The README's accuracy table: each (model, epochs) trained on the full Fashion-MNIST for several
seeds by scratchnet and by PyTorch (tools/accuracy_pytorch.py) with the same settings (batch 50,
SGD lr 0.1, cross-entropy), as a markdown table. Takes a few minutes; needs PyTorch.

    python3 tools/accuracy_table.py --runs seed-cnn:1:3,mlp:5:6

The issue-12 recipe (AdamW, PyTorch's defaults, under OneCycleLR(max_lr=0.01) stepped per batch),
in full (10 epochs, 3 seeds, 60,000 images: hours on 2 cores), and as the README's reduced protocol
(the first 10,000 training images; the full 10,000 test images):

    python3 tools/accuracy_table.py --runs lenet:10:3,resnet:10:3 --optimizer adamw --one-cycle 0.01
    python3 tools/accuracy_table.py --runs lenet:3:3,resnet:3:3 --optimizer adamw --one-cycle 0.01 \
        --limit 10000
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
    ap.add_argument("--optimizer", default="sgd", choices=["sgd", "adamw"])
    ap.add_argument("--lr", type=float, help="the optimiser's lr (default: 0.1 for sgd, 0.001 for adamw)")
    ap.add_argument("--one-cycle", type=float, metavar="MAX_LR", help="OneCycleLR(max_lr=MAX_LR), per batch")
    ap.add_argument("--limit", type=int, help="train on the first N training images only")
    ap.add_argument("--scratchnet", default=os.path.join(ROOT, "target", "release", "scratchnet"))
    a = ap.parse_args()
    lr = a.lr if a.lr is not None else (0.001 if a.optimizer == "adamw" else 0.1)
    # The same recipe for both sides, as flags of each.
    ours_flags = ["--optimizer", a.optimizer, "--lr", str(lr)]
    theirs_flags = ["--optimizer", a.optimizer, "--lr", str(lr)]
    if a.one_cycle is not None:
        ours_flags += ["--lr-schedule", f"OneCycleLR(max_lr={a.one_cycle})"]
        theirs_flags += ["--one-cycle", str(a.one_cycle)]
    if a.limit is not None:
        ours_flags += ["--limit", str(a.limit)]
        theirs_flags += ["--limit", str(a.limit)]
    print("| model, epochs | seeds | test accuracy, scratchnet | test accuracy, PyTorch | "
          "mean train accuracy, scratchnet / PyTorch |")
    print("| --- | --- | --- | --- | --- |")
    recipe = "" if a.optimizer == "sgd" and a.one_cycle is None else (
        f", {a.optimizer}" + (f" + OneCycleLR({a.one_cycle})" if a.one_cycle is not None else ""))
    recipe += f", first {a.limit} images" if a.limit is not None else ""
    with tempfile.TemporaryDirectory() as tmp:
        for run in a.runs.split(","):
            model, epochs, seeds = run.split(":")
            ours, theirs = [], []
            for seed in range(int(seeds)):
                print(f"{model} seed {seed}", file=sys.stderr)
                out = subprocess.run(
                    [a.scratchnet, "train", "--data", "fashion-mnist", "--model", model, "--epochs",
                     epochs, "--seed", str(seed), "--quiet", "--out", os.path.join(tmp, "m.safetensors"), *ours_flags],
                    stdout=subprocess.PIPE, check=True).stdout.decode()
                ours.append(last_epoch(out))
                out = subprocess.run(
                    [sys.executable, os.path.join(ROOT, "tools", "accuracy_pytorch.py"), "--model", model,
                     "--epochs", epochs, "--seed", str(seed), *theirs_flags],
                    stdout=subprocess.PIPE, check=True).stdout.decode()
                theirs.append(last_epoch(out))
                # Each seed's (train %, test %) as it comes: a run cut short still says something.
                print(f"{model} seed {seed}: scratchnet {ours[-1]}, PyTorch {theirs[-1]}", file=sys.stderr)

            def cell(runs):
                tests = [t for _, t in runs]
                return ", ".join(f"{t:.2f}" for t in tests) + f" — mean **{sum(tests) / len(tests):.2f}%**"

            def train_mean(runs):
                return sum(r for r, _ in runs) / len(runs)

            print(f"| {model}, {epochs}{recipe} | 0–{int(seeds) - 1} | {cell(ours)} | {cell(theirs)} | "
                  f"{train_mean(ours):.2f}% / {train_mean(theirs):.2f}% |")


if __name__ == "__main__":
    main()
