#!/usr/bin/env python3
"""Example 09 (examples/09_csv_table.rs) against scikit-learn's MLPClassifier on the same split.

For every seed, runs the example (which writes <out>/<table>_train.csv and <table>_test.csv from
scikit-learn's bundled file, cut by --split-seed 0, and trains Linear(F,32), ReLU, Linear(32,C) with
Adam lr 0.01, batch 16, 100 epochs on standardised features), then fits
StandardScaler + MLPClassifier(hidden_layer_sizes=(32,), adam, learning_rate_init=0.01,
batch_size=16, max_iter=100, random_state=seed) on the same two files, and prints both test
accuracies side by side with their medians; also the example with --no-standardize.

    pip install scikit-learn
    cargo build --release --example 09_csv_table
    python3 tools/csv_compare.py --table wine --seeds 5
"""

import argparse
import csv
import re
import statistics
import subprocess
import warnings

import numpy as np
from sklearn.neural_network import MLPClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler


def read(path):
    with open(path) as f:
        rows = list(csv.reader(f))
    x = np.array([[float(v) for v in r[:-1]] for r in rows[1:]])
    return x, np.array([r[-1] for r in rows[1:]])


def example(a, seed, extra):
    out = subprocess.run(
        [a.bin, "--table", a.table, "--out", a.out, "--seed", str(seed), "--quiet"] + extra,
        check=True, capture_output=True, text=True,
    ).stdout
    return float(re.findall(r"\(([\d.]+)%\)", out.splitlines()[-1])[-1])


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--table", default="wine", choices=["wine", "breast_cancer"])
    p.add_argument("--out", default="runs/tables")
    p.add_argument("--seeds", type=int, default=5)
    p.add_argument("--bin", default="target/release/examples/09_csv_table")
    a = p.parse_args()
    ours, raw, theirs = [], [], []
    print(f"{a.table}: test accuracy (%) on the same split, per seed")
    print(f"{'seed':>6}  {'scratchnet':>10}  {'MLPClassifier':>13}  {'scratchnet raw':>14}")
    for seed in range(a.seeds):
        ours.append(example(a, seed, []))
        raw.append(example(a, seed, ["--no-standardize"]))
        xtr, ytr = read(f"{a.out}/{a.table}_train.csv")
        xte, yte = read(f"{a.out}/{a.table}_test.csv")
        clf = make_pipeline(
            StandardScaler(),
            MLPClassifier(hidden_layer_sizes=(32,), learning_rate_init=0.01, batch_size=16,
                          max_iter=100, random_state=seed),
        )
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # max_iter reached before tol: as intended
            clf.fit(xtr, ytr)
        theirs.append(100.0 * clf.score(xte, yte))
        print(f"{seed:>6}  {ours[-1]:>10.2f}  {theirs[-1]:>13.2f}  {raw[-1]:>14.2f}")
    print(f"{'median':>6}  {statistics.median(ours):>10.2f}  {statistics.median(theirs):>13.2f}  "
          f"{statistics.median(raw):>14.2f}   ({len(xtr)} training rows, {len(xte)} test rows)")


if __name__ == "__main__":
    main()
