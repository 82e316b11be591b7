#!/usr/bin/env python3
"""scratchnet on a CSV table against scikit-learn's MLPClassifier, on the same split.

Writes one of the tables scikit-learn ships (wine: 178 rows, 13 features from 0.1 to 1680;
breast_cancer: 569 rows, 30 features) as <out>/<name>_train.csv and <name>_test.csv with a header
row and class names, then trains
  - scikit-learn: StandardScaler + MLPClassifier(hidden_layer_sizes=(H,), adam, lr 0.01), and
  - scratchnet:   `train --data <name>_train.csv --test-data <name>_test.csv` with Linear(F,H), ReLU,
                  Linear(H,C), adam, lr 0.01 (features standardised by default),
and prints both test accuracies, over several seeds (median and range).

    pip install scikit-learn
    cargo build --release
    python3 tools/table_compare.py wine --seeds 5
"""

import argparse
import os
import re
import statistics
import subprocess
import sys

import numpy as np
from sklearn import datasets
from sklearn.model_selection import train_test_split
from sklearn.neural_network import MLPClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler


def write_csv(path, names, x, y, target, classes):
    with open(path, "w") as f:
        f.write(",".join(names + [target]) + "\n")
        for row, c in zip(x, y):
            f.write(",".join(repr(float(v)) for v in row) + "," + classes[c] + "\n")


def main():
    p = argparse.ArgumentParser()
    p.add_argument("name", choices=["wine", "breast_cancer"])
    p.add_argument("--out", default="runs/tables")
    p.add_argument("--hidden", type=int, default=32)
    p.add_argument("--epochs", type=int, default=100)
    p.add_argument("--seeds", type=int, default=5)
    p.add_argument("--bin", default="target/release/scratchnet")
    a = p.parse_args()
    os.makedirs(a.out, exist_ok=True)
    d = getattr(datasets, f"load_{a.name}")()
    names = [n.replace(" ", "_") for n in d.feature_names]
    classes = [str(c) for c in d.target_names]
    xtr, xte, ytr, yte = train_test_split(
        d.data, d.target, test_size=0.25, stratify=d.target, random_state=0
    )
    train = os.path.join(a.out, f"{a.name}_train.csv")
    test = os.path.join(a.out, f"{a.name}_test.csv")
    write_csv(train, names, xtr, ytr, "class", classes)
    write_csv(test, names, xte, yte, "class", classes)
    print(f"{a.name}: {len(ytr)} training rows, {len(yte)} test rows, {len(names)} features "
          f"(ranges {d.data.min(0).min():.3g} .. {d.data.max(0).max():.4g}), classes {classes}")

    ours, theirs, raw = [], [], []
    model = f"Linear({len(names)},{a.hidden}), ReLU, Linear({a.hidden},{len(classes)})"
    for seed in range(a.seeds):
        clf = make_pipeline(
            StandardScaler(),
            MLPClassifier(hidden_layer_sizes=(a.hidden,), learning_rate_init=0.01,
                          max_iter=a.epochs, batch_size=16, random_state=seed),
        )
        import warnings
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            clf.fit(xtr, ytr)
        theirs.append(100.0 * clf.score(xte, yte))
        for extra, acc in (([], ours), (["--no-standardize"], raw)):
            out = subprocess.run(
                [a.bin, "train", "--data", train, "--test-data", test, "--model", model,
                 "--optimizer", "adam", "--lr", "0.01", "--batch-size", "16",
                 "--epochs", str(a.epochs), "--seed", str(seed), "--quiet",
                 "--out", os.path.join(a.out, f"{a.name}.safetensors")] + extra,
                check=True, capture_output=True, text=True,
            ).stdout
            last = [l for l in out.splitlines() if l.startswith("epoch")][-1]
            acc.append(float(re.findall(r"\(([\d.]+)%\)", last)[-1]))
    for label, v in (("scikit-learn MLPClassifier + StandardScaler", theirs),
                     ("scratchnet (standardised)", ours),
                     ("scratchnet --no-standardize", raw)):
        print(f"{label:45s} test accuracy median {statistics.median(v):6.2f}%  "
              f"range {min(v):.2f}–{max(v):.2f}%  ({len(v)} seeds)")


if __name__ == "__main__":
    sys.exit(main())
