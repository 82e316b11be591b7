#!/usr/bin/env python3
"""scratchnet against PyTorch, side by side, on this machine: one table per thread count.

Run from the repository root after `cargo build --release`:

    python3 tools/bench_compare.py                          # mlp, seed-cnn, lenet, resnet; 2 then 1 thread
    python3 tools/bench_compare.py --models mlp --threads 2 --repeats 5
    python3 tools/bench_compare.py --limit 6000 --repeats 1 # quick look
    python3 tools/bench_compare.py --models row-lstm,char-lstm --limit 5000 --rounds 3

row-lstm reads Fashion-MNIST row by row; char-lstm trains on `--text` (default
/usr/share/dict/words) cut into sequences of 64 characters, `--limit` of them (both sides read the
text the same way: see tools/bench_pytorch.py).

For each thread count it first measures the GEMM peak (`scratchnet bench --peak SIZE`), then for each
model runs `scratchnet bench --json` and `tools/bench_pytorch.py --one MODEL --json` in turn (each in
its own process, so peak RSS is per model), and prints seconds per training epoch (median of
`--repeats`), GFLOP/s, our share of the GEMM peak, peak RSS, and the ratio scratchnet / PyTorch with
the issue's target for it. When PyTorch is not installed its columns say so and our side still runs.
`--json FILE` also writes every raw result there.

The machine is shared and noisy: compare only numbers from one run of this script. `--rounds R`
runs the two sides in turn R times per model and takes the medians over all their epochs, so that a
neighbour who comes or goes during the run weighs on both sides alike:

    python3 tools/bench_compare.py --models lenet --threads 2 --repeats 3 --rounds 3
"""

import argparse
import time
import importlib.util
import json
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MODELS = ("mlp", "seed-cnn", "lenet", "resnet")
# The issue's targets for scratchnet / PyTorch epoch time, at 2 threads; at 1 thread: no slower.
TARGET_2T = {"mlp": 0.5, "seed-cnn": 0.2, "lenet": 0.5, "resnet": 0.5, "row-lstm": 0.5,
             "char-lstm": 0.5}


def json_lines(cmd):
    """Runs `cmd` and returns the JSON objects it printed, one per line (stderr passes through)."""
    p = subprocess.run(cmd, stdout=subprocess.PIPE, text=True, cwd=ROOT)
    if p.returncode != 0:
        raise SystemExit(f"failed (exit {p.returncode}): {' '.join(cmd)}")
    return [json.loads(line) for line in p.stdout.splitlines() if line.startswith("{")]


def pooled(runs):
    """One result from several runs of the same side and model: the median over all their epochs,
    the largest peak RSS, the last run's final loss."""
    times = sorted(x for r in runs for x in r["epoch_seconds"])
    mid = len(times) // 2
    median = times[mid] if len(times) % 2 else (times[mid - 1] + times[mid]) / 2
    out = dict(runs[-1])
    out.update(epoch_seconds=times, median_seconds=median,
               gflops=runs[-1]["gflop_per_epoch"] / median,
               peak_rss_mib=max(r["peak_rss_mib"] for r in runs))
    return out


def fmt(v, spec, missing="—"):
    return missing if v is None else format(v, spec)


def markdown(table, args):
    """The README's table: one row per thread count and model, and the GEMM peaks under it."""
    out = ["| threads | model | scratchnet | PyTorch | ratio | scratchnet GFLOP/s (% peak) | "
           "peak RSS, scratchnet / PyTorch |", "| --- | --- | --- | --- | --- | --- | --- |"]
    for t, peak, rows in table:
        for m, o, p in rows:
            ratio = o["median_seconds"] / p["median_seconds"] if p else None
            out.append(f"| {t} | {m} | {o['median_seconds']:.2f} s | "
                       f"{fmt(p and p['median_seconds'], '.2f')} s | {fmt(ratio, '.2f')} | "
                       f"{o['gflops']:.1f} ({100 * o['gflops'] / peak['gflops']:.0f}%) | "
                       f"{o['peak_rss_mib']:.0f} / {fmt(p and p['peak_rss_mib'], '.0f')} MiB |")
    peaks = ", ".join(f"{peak['gflops']:.1f} GFLOP/s on {t} thread{'s' if t > 1 else ''}"
                      for t, peak, _ in table)
    out.append("")
    out.append(f"GEMM peak in the same run: {peaks}. Epoch = median of "
               f"{args.repeats * max(1, args.rounds)} epochs per side, measured "
               f"{time.strftime('%Y-%m-%d')} on {os.cpu_count()} cores.")
    sys.stdout.write("\n".join(out) + "\n")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--models", default=",".join(MODELS))
    ap.add_argument("--threads", default="2,1", help="comma-separated thread counts, in order")
    ap.add_argument("--repeats", type=int, default=3, help="timed epochs per model (median)")
    ap.add_argument("--rounds", type=int, default=1,
                    help="run both sides this many times in turn per model; medians over all "
                         "their epochs (drift on a shared machine then hits both alike)")
    ap.add_argument("--limit", type=int, default=None, help="train on the first N images")
    ap.add_argument("--peak-size", type=int, default=2048, help="side of the square GEMM peak")
    ap.add_argument("--scratchnet", default=os.path.join(ROOT, "target", "release", "scratchnet"))
    ap.add_argument("--data-dir", default=None, help="passed to both sides")
    ap.add_argument("--text", default=None, help="char-lstm's text, passed to both sides")
    ap.add_argument("--json", metavar="FILE", help="also write all raw results to FILE")
    ap.add_argument("--markdown", action="store_true",
                    help="print only the README's table (for tools/readme.py --all)")
    args = ap.parse_args()
    table = []
    # With --markdown only the table is printed, at the end.
    say = (lambda *a, **k: None) if args.markdown else print

    if not os.path.exists(args.scratchnet):
        raise SystemExit(f"{args.scratchnet} not found: run `cargo build --release` first")
    have_torch = all(importlib.util.find_spec(m) for m in ("torch", "numpy"))
    if not have_torch:
        say("PyTorch is not installed (pip install torch numpy): skipping the PyTorch side")
    models = [m.strip() for m in args.models.split(",") if m.strip()]
    threads = [int(t) for t in args.threads.split(",")]
    extra = ["--limit", str(args.limit)] if args.limit else []
    ours_data = ["--data-dir", args.data_dir] if args.data_dir else []
    ours_data += ["--text", args.text] if args.text else []
    torch_data = ours_data

    raw = []
    for t in threads:
        peak = json_lines([args.scratchnet, "--threads", str(t), "bench", "--peak",
                           str(args.peak_size), "--repeats", "5", "--json"])[0]
        raw.append(peak)
        rows = []
        for m in models:
            ours_runs, their_runs = [], []
            for _ in range(max(1, args.rounds)):
                ours_runs.append(json_lines([args.scratchnet, "--threads", str(t), "bench",
                                             "--model", m, "--repeats", str(args.repeats),
                                             "--json"] + extra + ours_data)[0])
                if have_torch:
                    their_runs.append(json_lines(
                        [sys.executable, os.path.join(ROOT, "tools", "bench_pytorch.py"), "--one",
                         m, "--threads", str(t), "--repeats", str(args.repeats), "--json"]
                        + extra + torch_data)[0])
            raw += ours_runs + their_runs
            rows.append((m, pooled(ours_runs), pooled(their_runs) if their_runs else None))
        if args.markdown:
            table.append((t, peak, rows))

        say(f"\n{t} thread(s); GEMM peak {peak['gflops']:.1f} GFLOP/s "
              f"({args.peak_size}³ f32, median of 5); epoch = median of "
              f"{args.repeats * max(1, args.rounds)}, "
              f"{rows[0][1]['samples'] if rows else 0} samples, batch 50")
        head = ("model", "ours s", "torch s", "ratio", "target", "ours GF/s", "torch GF/s",
                "% peak", "ours RSS", "torch RSS", "ours loss", "torch loss")
        say(("{:<9}" + " {:>10}" * (len(head) - 1)).format(*head))
        for m, o, p in rows:
            ratio = o["median_seconds"] / p["median_seconds"] if p else None
            target = TARGET_2T.get(m) if t > 1 else 1.0
            verdict = None
            if ratio is not None and target is not None:
                verdict = f"≤{target:g} " + ("met" if ratio <= target else "NOT")
            say(("{:<9}" + " {:>10}" * (len(head) - 1)).format(
                m,
                fmt(o["median_seconds"], ".2f"),
                fmt(p and p["median_seconds"], ".2f"),
                fmt(ratio, ".2f"),
                verdict or "—",
                fmt(o["gflops"], ".1f"),
                fmt(p and p["gflops"], ".1f"),
                fmt(100 * o["gflops"] / peak["gflops"], ".0f"),
                fmt(o["peak_rss_mib"], ".0f"),
                fmt(p and p["peak_rss_mib"], ".0f"),
                fmt(o["final_loss"], ".4f"),
                fmt(p and p["final_loss"], ".4f"),
            ))
        say("ratio = ours / torch seconds per epoch; RSS in MiB; % peak = ours GF/s / GEMM peak")
    if args.markdown:
        markdown(table, args)
    if args.json:
        with open(args.json, "w") as f:
            for r in raw:
                f.write(json.dumps(r) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
