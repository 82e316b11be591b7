#!/usr/bin/env python3
"""PyTorch half of the scratchnet benchmark: time the same training workload in PyTorch on the CPU.

Install (any recent PyTorch):

    pip install torch numpy

Run from the repository root:

    python3 tools/bench_pytorch.py                                  # mlp, seed-cnn, lenet at 2 threads
    python3 tools/bench_pytorch.py --models resnet --limit 2000     # the resnet preset
    python3 tools/bench_pytorch.py --models lenet --threads 1 --repeats 5
    python3 tools/bench_pytorch.py --limit 6000 --repeats 1 --json  # quick run, JSON lines
    python3 tools/bench_pytorch.py --one mlp --threads 2 --json     # one model in this process
    python3 tools/bench_pytorch.py --models row-lstm,char-lstm --limit 5000   # the LSTM presets

`tools/bench_compare.py` runs this next to `scratchnet bench` and prints a side-by-side table.

What is measured, per model (the same workload as `scratchnet bench`):

- Data: the Fashion-MNIST train set (60,000 images, or the first N with `--limit`), pixels as
  float32 / 255 shaped (N, 1, 28, 28), read into memory once before any timing (IDX, gzip, from
  `--data-dir`, default /usr/share/datasets/fashion-mnist).
- One training epoch: batches of 50 in a fixed shuffled order (`torch.randperm` with generator seed
  0, drawn before timing and reused every epoch), each batch gathered by indexing the in-memory
  tensor (no DataLoader), `nn.CrossEntropyLoss()`, `torch.optim.SGD(lr=0.1)`, and per batch
  `opt.zero_grad(); loss.backward(); opt.step()`. The model is built after `torch.manual_seed(0)`.
- Warm-up: 20 untimed batches, then `--repeats` consecutive timed epochs on the same model, each
  timed with `time.perf_counter`; the median is reported (all runs are listed too).
- Test pass: the 10,000 test images once, in eval mode under `torch.no_grad()`, batches of 1000.
- row-lstm reads each image as 28 steps of 28 pixels: `nn.LSTM(28, 128, batch_first=True)`, the
  output's last step, `nn.Linear(128, 10)`.
- char-lstm trains on text instead of images, cut as `scratchnet train --data text:FILE` and
  `scratchnet bench --model char-lstm` cut it: the UTF-8 file `--text` (default
  /usr/share/dict/words, from Debian's `wamerican`) as a sequence of character ids in its sorted
  vocabulary of V distinct characters (70 for that file), N = (characters - 1) // 64 sequences of
  64 ids (the first N with `--limit`) whose targets are the next characters. The model is
  `nn.Embedding(V, 64)`, `nn.LSTM(64, 256, batch_first=True)` whose output is passed on, and
  `nn.Linear(256, V)`; the loss is the cross-entropy averaged over all N·64 positions
  (`F.cross_entropy(out.reshape(-1, V), y.reshape(-1))`). The test pass reads the training
  sequences again (a text has no test split).
- `torch.set_num_threads(--threads)`.
- FLOPs: for every Linear/Conv2d/LSTM, MACs = multiply-accumulates of one sample's forward (Linear:
  in*out per row; Conv2d: out_ch*in_ch/groups*kh*kw*OH*OW;
  LSTM: steps*4*hidden*(input+hidden) per layer and direction; Embedding: none), found with
  forward hooks on a dummy sample; training FLOPs per sample = 6*sum(MACs) - 2*(first layer's input-gradient MACs)
  (forward, weight gradient, input gradient; the first layer needs no input gradient unless an Embedding before it
  learns: a Linear's or Conv2d's whole product, an LSTM's input projection steps*dirs*4*hidden*input, since its
  products through time are needed all the same; scratchnet's bench counts the same). At 60,000 samples this gives 192.6 GFLOP per
  epoch for mlp, 11.4 for seed-cnn and about 1,500 for lenet. GFLOP/s = GFLOP per epoch / median.
- final_loss: the mean training loss (weighted by batch size) over the last timed epoch.
- peak_rss_mib: `resource.getrusage(RUSAGE_SELF).ru_maxrss / 1024`, the process's peak so far, so
  every model runs in its own subprocess (this script re-invokes itself with `--one MODEL`).

Output: one human-readable line per model, or with `--json` one JSON object per model per line:
{"impl": "pytorch", "version", "model", "threads", "samples", "epoch_seconds", "median_seconds",
"samples_per_second", "gflop_per_epoch", "gflops", "test_seconds", "peak_rss_mib", "final_loss"}.

If torch cannot be imported the script says so and exits 0, so that callers can skip this side.
"""

import argparse
import gzip
import json
import os
import resource
import statistics
import struct
import subprocess
import sys
import time

MODELS = ("mlp", "seed-cnn", "lenet", "resnet", "row-lstm", "char-lstm")
DEFAULT_MODELS = ("mlp", "seed-cnn", "lenet")  # resnet (8.5 TFLOP an epoch) and the LSTMs on request
DEFAULT_DATA_DIR = "/usr/share/datasets/fashion-mnist"
DEFAULT_TEXT = "/usr/share/dict/words"
SEQ_LEN = 64
BATCH = 50
TEST_BATCH = 1000
WARMUP_BATCHES = 20
LR = 0.1
NOT_INSTALLED = "PyTorch is not installed (pip install torch numpy); skipping the PyTorch side"


def build_model(name):
    from torch import nn

    if name == "mlp":
        return nn.Sequential(
            nn.Flatten(),
            nn.Linear(784, 512), nn.ReLU(),
            nn.Linear(512, 512), nn.ReLU(),
            nn.Linear(512, 10),
        )
    if name == "seed-cnn":
        return nn.Sequential(
            nn.Conv2d(1, 8, 3, stride=2), nn.ReLU(),
            nn.Conv2d(8, 8, 3, stride=2), nn.ReLU(),
            nn.Flatten(),
            nn.Linear(288, 10),
        )
    if name == "lenet":
        return nn.Sequential(
            nn.Conv2d(1, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Flatten(),
            nn.Linear(3136, 128), nn.ReLU(),
            nn.Linear(128, 10),
        )
    if name == "resnet":
        class Residual(nn.Sequential):  # scratchnet's Residual(...): y = x + f(x)
            def forward(self, x):
                return x + super().forward(x)

        def stage(c_in, c, stride):
            layers = [nn.Conv2d(c_in, c, 3, stride=stride, padding=1, bias=False),
                      nn.BatchNorm2d(c), nn.ReLU()]
            for _ in range(2):
                layers += [Residual(nn.Conv2d(c, c, 3, padding=1, bias=False), nn.BatchNorm2d(c),
                                    nn.ReLU(), nn.Conv2d(c, c, 3, padding=1, bias=False),
                                    nn.BatchNorm2d(c)),
                           nn.ReLU()]
            return layers

        return nn.Sequential(
            *stage(1, 16, 1), *stage(16, 32, 2), *stage(32, 64, 2),
            nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(64, 10),
        )
    if name == "row-lstm":
        class LastStep(nn.Module):  # Flatten(1, 2), LSTM(28, 128), Select(1, -1)
            def __init__(self):
                super().__init__()
                self.lstm = nn.LSTM(28, 128, batch_first=True)

            def forward(self, x):
                return self.lstm(x.flatten(1, 2))[0][:, -1]

        return nn.Sequential(LastStep(), nn.Linear(128, 10))
    raise SystemExit(f"unknown model {name!r} (known: {', '.join(MODELS)})")


def char_lstm(vocab_size):
    """The char-lstm preset: Embedding(V, 64), LSTM(64, 256), Linear(256, V)."""
    from torch import nn

    class Output(nn.Module):  # nn.LSTM's output, the whole sequence, passed on
        def __init__(self):
            super().__init__()
            self.lstm = nn.LSTM(64, 256, batch_first=True)

        def forward(self, x):
            return self.lstm(x)[0]

    return nn.Sequential(nn.Embedding(vocab_size, 64), Output(), nn.Linear(256, vocab_size))


def layer_macs(model):
    """Per-sample forward MACs of every Linear/Conv2d/LSTM, in execution order (forward hooks), and
    the first one's input-gradient MACs (0 after an Embedding, whose weights need that gradient)."""
    import torch
    from torch import nn

    macs, first_grad = [], []

    def hook(mod, inp, out):
        if not macs:
            first_grad.append(0 if text else None)
        if isinstance(mod, nn.Linear):
            rows = out.numel() // out.shape[0] // mod.out_features  # >1 only for >2-D inputs
            macs.append(mod.in_features * mod.out_features * rows)
        elif isinstance(mod, nn.LSTM):
            steps, dirs = out[0].shape[1], 2 if mod.bidirectional else 1
            h = mod.hidden_size
            macs.append(sum(steps * dirs * 4 * h * ((mod.input_size if k == 0 else dirs * h) + h)
                            for k in range(mod.num_layers)))
            if first_grad[0] is None:
                first_grad[0] = steps * dirs * 4 * h * mod.input_size
        else:  # Conv2d
            kh, kw = mod.kernel_size
            oh, ow = out.shape[-2:]
            macs.append(mod.out_channels * (mod.in_channels // mod.groups) * kh * kw * oh * ow)

    kinds = (nn.Linear, nn.Conv2d, nn.LSTM)
    handles = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, kinds)]
    # A text model takes token ids [1, SEQ_LEN]; the others an image [1, 1, 28, 28].
    text = any(isinstance(m, nn.Embedding) for m in model.modules())
    sample = torch.zeros(1, SEQ_LEN, dtype=torch.long) if text else torch.zeros(1, 1, 28, 28)
    try:
        with torch.no_grad():
            model(sample)
    finally:
        for h in handles:
            h.remove()
    if first_grad and first_grad[0] is None:
        first_grad[0] = macs[0]
    return macs, (first_grad[0] if first_grad else 0)


def train_flops_per_sample(model):
    macs, first_grad = layer_macs(model)
    return 6 * sum(macs) - 2 * first_grad


def read_idx(path, limit=None):
    """An IDX file (optionally gzipped) as a numpy array; the first `limit` items if given."""
    import numpy as np

    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rb") as f:
        zero, dtype_code, ndim = struct.unpack(">HBB", f.read(4))
        if zero != 0 or dtype_code != 0x08:
            raise SystemExit(f"{path}: not an unsigned-byte IDX file")
        dims = list(struct.unpack(">" + "I" * ndim, f.read(4 * ndim)))
        if limit is not None:
            dims[0] = min(dims[0], limit)
        count = 1
        for d in dims:
            count *= d
        data = f.read(count)
    return np.frombuffer(data, dtype=np.uint8).reshape(dims)


def load_split(data_dir, split, limit=None):
    import torch

    def find(stem):
        for name in (stem + ".gz", stem):
            p = os.path.join(data_dir, name)
            if os.path.exists(p):
                return p
        raise SystemExit(f"{os.path.join(data_dir, stem)}(.gz) not found (use --data-dir)")

    images = read_idx(find(f"{split}-images-idx3-ubyte"), limit)
    labels = read_idx(find(f"{split}-labels-idx1-ubyte"), limit)
    x = torch.from_numpy(images.astype("float32") / 255.0).reshape(-1, 1, 28, 28).contiguous()
    y = torch.from_numpy(labels.astype("int64"))
    return x, y


def load_text(path, limit=None):
    """`path` as scratchnet's text:FILE data: ids in the sorted character vocabulary, cut into
    (characters - 1) // SEQ_LEN sequences (the first `limit`) with next-character targets;
    and the vocabulary size."""
    import torch

    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except FileNotFoundError:
        raise SystemExit(f"{path} not found (apt-get install wamerican, or use --text)")
    vocab = {c: i for i, c in enumerate(sorted(set(text)))}
    ids = torch.tensor([vocab[c] for c in text], dtype=torch.long)
    n = (len(ids) - 1) // SEQ_LEN
    if limit is not None:
        n = min(n, limit)
    x = ids[:n * SEQ_LEN].reshape(n, SEQ_LEN)
    y = ids[1:n * SEQ_LEN + 1].reshape(n, SEQ_LEN)
    return x, y, len(vocab)


def peak_rss_mib():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # KiB on Linux


def bench_one(name, threads, repeats, limit, data_dir, text=DEFAULT_TEXT):
    import torch
    from torch import nn

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    if name == "char-lstm":
        x, y, vocab_size = load_text(text, limit)
        xt = x
        model = char_lstm(vocab_size)
    else:
        x, y = load_split(data_dir, "train", limit)
        xt, _ = load_split(data_dir, "t10k")
        model = build_model(name)
    n = x.shape[0]

    gflop_per_epoch = train_flops_per_sample(model) * n / 1e9
    model.train()
    loss_fn = nn.CrossEntropyLoss()
    opt = torch.optim.SGD(model.parameters(), lr=LR)
    order = torch.randperm(n, generator=torch.Generator().manual_seed(0))
    batches = [order[i:i + BATCH] for i in range(0, n, BATCH)]

    def step(idx):
        xb, yb = x[idx], y[idx]
        opt.zero_grad()
        # Scores [B, C] against classes [B], or per step [B, T, C] against [B, T]: the mean over
        # all B·T positions.
        loss = loss_fn(model(xb).flatten(0, -2), yb.flatten())
        loss.backward()
        opt.step()
        return loss.item() * len(idx)

    for idx in batches[:WARMUP_BATCHES]:  # untimed warm-up
        step(idx)

    times, final_loss = [], float("nan")
    for _ in range(max(1, repeats)):
        loss_sum = 0.0
        t0 = time.perf_counter()
        for idx in batches:
            loss_sum += step(idx)
        times.append(time.perf_counter() - t0)
        final_loss = loss_sum / n

    model.eval()
    t0 = time.perf_counter()
    with torch.no_grad():
        for i in range(0, xt.shape[0], TEST_BATCH):
            model(xt[i:i + TEST_BATCH])
    test_seconds = time.perf_counter() - t0

    median = statistics.median(times)
    return {
        "impl": "pytorch",
        "version": torch.__version__,
        "model": name,
        "threads": threads,
        "samples": n,
        "epoch_seconds": times,
        "median_seconds": median,
        "samples_per_second": n / median,
        "gflop_per_epoch": gflop_per_epoch,
        "gflops": gflop_per_epoch / median,
        "test_seconds": test_seconds,
        "peak_rss_mib": peak_rss_mib(),
        "final_loss": final_loss,
    }


def human(r):
    runs = ", ".join(f"{t:.3f}" for t in r["epoch_seconds"])
    at60k = r["gflop_per_epoch"] * 60000 / r["samples"]
    return (
        f"{r['impl']} {r['version']}  {r['model']:<8}  threads={r['threads']}  samples={r['samples']}  "
        f"median {r['median_seconds']:.3f} s/epoch [{runs}]  {r['samples_per_second']:.0f} samples/s  "
        f"{r['gflops']:.2f} GFLOP/s ({r['gflop_per_epoch']:.2f} GFLOP/epoch; {at60k:.1f} at 60,000)  "
        f"test {r['test_seconds']:.3f} s  final loss {r['final_loss']:.4f}  peak RSS {r['peak_rss_mib']:.1f} MiB"
    )


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--models", default=",".join(DEFAULT_MODELS), help="comma-separated: " + ",".join(MODELS))
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--limit", type=int, default=None, help="use the first N training images")
    ap.add_argument("--data-dir", default=DEFAULT_DATA_DIR)
    ap.add_argument("--text", default=DEFAULT_TEXT, help="the text char-lstm trains on")
    ap.add_argument("--json", action="store_true", help="one JSON object per model per line")
    ap.add_argument("--one", metavar="MODEL", help="bench one model in this process (used internally)")
    args = ap.parse_args()

    try:
        import torch  # noqa: F401
        import numpy  # noqa: F401
    except ImportError:
        print(NOT_INSTALLED)
        return 0

    if args.one:
        r = bench_one(args.one, args.threads, args.repeats, args.limit, args.data_dir, args.text)
        print(json.dumps(r) if args.json else human(r), flush=True)
        return 0

    models = [m.strip() for m in args.models.split(",") if m.strip()]
    for m in models:
        if m not in MODELS:
            ap.error(f"unknown model {m!r} (known: {', '.join(MODELS)})")
    status = 0
    for m in models:
        cmd = [sys.executable, os.path.abspath(__file__), "--one", m, "--threads", str(args.threads),
               "--repeats", str(args.repeats), "--data-dir", args.data_dir, "--text", args.text,
               "--json"]
        if args.limit is not None:
            cmd += ["--limit", str(args.limit)]
        p = subprocess.run(cmd, stdout=subprocess.PIPE, text=True)
        lines = [l for l in p.stdout.splitlines() if l.startswith("{")]
        if p.returncode != 0 or not lines:
            print(f"{m}: benchmark failed (exit {p.returncode})", file=sys.stderr)
            status = 1
            continue
        r = json.loads(lines[-1])
        print(json.dumps(r) if args.json else human(r), flush=True)
    return status


if __name__ == "__main__":
    sys.exit(main())
