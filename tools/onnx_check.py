#!/usr/bin/env python3
"""Checks `scratchnet export` with the reference tools: onnx.checker (full check, with shape
inference) and ONNX Runtime, whose outputs must be within 1e-5 of `scratchnet predict`.

    pip install onnx==1.23.2 onnxruntime==1.32.0 numpy safetensors
    python3 tools/onnx_check.py                      # built-in cases (every layer, trained one epoch)
                                                     # and the PyTorch golden checkpoints
    python3 tools/onnx_check.py --checkpoint m.safetensors [--input X.npy] [--opset 17]

Uses target/release/scratchnet (cargo build --release first) unless --bin says otherwise.
Exits non-zero on the first failure, with what failed.
"""

import argparse
import json
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort

ROOT = Path(__file__).resolve().parent.parent

# (model text, per-sample input shape): every layer, with the settings where ONNX differs from PyTorch.
CASES = [
    ("Linear(4,3)", (4,)),
    ("Linear(5,3,bias=False)", (2, 5)),
    ("Conv2d(2,3,(3,2),stride=(2,1),padding=(2,1))", (2, 7, 6)),
    ("MaxPool2d((3,2),stride=(2,1),padding=(1,0)), Flatten", (2, 7, 6)),
    ("AvgPool2d(3,stride=2,padding=1), Flatten", (2, 7, 7)),
    ("Flatten(1,2), Softmax(dim=2)", (2, 3, 4)),
    ("Linear(4,6), LeakyReLU(0.2), Linear(6,6), Sigmoid, Linear(6,6), Tanh, Dropout, Linear(6,3), Softmax", (4,)),
    ("Parallel(Linear(4,2), Sequential(Linear(4,3), ReLU), Dropout), Linear(9,1)", (4,)),
    ("Parallel(Conv2d(2,3,3,padding=1), Conv2d(2,1,1)), ReLU, MaxPool2d(2), Flatten", (2, 5, 5)),
    ("Conv2d(2,4,3,padding=1), BatchNorm2d(4, eps=0.001), ReLU, Residual(Conv2d(4,4,3,padding=1), BatchNorm2d(4), GELU), "
     "AdaptiveAvgPool2d((2,3)), Flatten, BatchNorm1d(24), SiLU, Linear(24,6), ELU(alpha=0.5), Linear(6,3)", (2, 5, 7)),
    ("BatchNorm1d(3), GELU(approximate='tanh'), Identity, Select(1, -1), Linear(4,2)", (3, 4)),
    ("Conv2d(2,3,3), Dropout2d(0.2), AdaptiveAvgPool2d(1), Flatten, Linear(3,2)", (2, 6, 6)),
    ("seed-cnn", (1, 28, 28)),
    ("lenet", (1, 28, 28)),
    ("BatchNorm1d(4), Linear(4,3)", (4,)),
    ("BatchNorm1d(3, eps=0.001), Flatten, Linear(15,2)", (3, 5)),
    ("Conv2d(2,3,3,padding=1), BatchNorm2d(3, eps=0.1), ReLU, Flatten", (2, 5, 4)),
    ("Conv2d(2,3,3,padding=1), Residual(Conv2d(3,3,3,padding=1,bias=False), BatchNorm2d(3), ReLU, "
     "Conv2d(3,3,1), BatchNorm2d(3)), ReLU, AdaptiveAvgPool2d(1), Flatten", (2, 5, 4)),
    ("Linear(5,6), GELU, Linear(6,6), GELU(approximate='tanh'), Linear(6,6), SiLU, Linear(6,6), ELU, "
     "Linear(6,6), ELU(alpha=0.4), Identity, Linear(6,2)", (5,)),
    ("Conv2d(2,3,1), Dropout2d(0.5), AdaptiveAvgPool2d((2,3)), Flatten", (2, 6, 9)),
    ("Conv2d(2,3,1), AdaptiveAvgPool2d((3,2)), Flatten", (2, 5, 7)),
    ("Select(2,3), Select(-1,-2)", (2, 4, 3)),
    ("Embedding(9,3,padding_idx=2), Select(1,-1), Linear(3,2)", (6,), 9),
    ("RNN(3, 4, num_layers=2, nonlinearity='relu', bidirectional=True), Select(1, -1), Linear(8, 2)", (5, 3)),
    ("RNN(3, 4, bias=False), Tanh", (5, 3)),
    ("LSTM(3, 4, num_layers=2, bias=False, bidirectional=True), Linear(8, 2)", (5, 3)),
    ("GRU(3, 4, num_layers=2, bidirectional=True), Select(1, 0)", (5, 3)),
    ("Flatten(1, 2), LSTM(28, 16), Select(1, -1), Linear(16, 10)", (1, 28, 28)),
]


def run(*args):
    r = subprocess.run(args, capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit(f"failed: {' '.join(map(str, args))}\n{r.stderr}")
    return r.stdout


def output_shape(bin_, text, shape):
    """The model's per-sample output shape, from the last row of `scratchnet summary`."""
    table = run(bin_, "summary", "--model", text, "--input-shape", ",".join(map(str, shape)))
    rows = [l for l in table.splitlines() if re.match(r"^\d+\s", l)]
    dims = re.findall(r"\[([\d, ]+)\]", rows[-1])[-1]
    return tuple(int(d) for d in dims.split(","))


def check(bin_, checkpoint, x_path, onnx_path, opset, label):
    shape = ",".join(map(str, np.load(x_path).shape[1:]))
    run(bin_, "export", "--checkpoint", checkpoint, "--output", onnx_path, "--opset", str(opset),
        "--input-shape", shape)
    model = onnx.load(onnx_path)
    onnx.checker.check_model(model, full_check=True)
    assert [i.name for i in model.graph.input] == ["input"], label
    assert [o.name for o in model.graph.output] == ["output"], label
    assert model.graph.input[0].type.tensor_type.shape.dim[0].dim_param == "batch", label
    y_path = Path(onnx_path).with_suffix(".npy")
    run(bin_, "predict", "--checkpoint", checkpoint, "--input", x_path, "--output", y_path)
    ours = np.load(y_path)
    x = np.load(x_path).astype(np.float32)
    session = ort.InferenceSession(onnx_path, providers=["CPUExecutionProvider"])
    meta = session.get_modelmeta().custom_metadata_map
    assert "model" in meta and json.loads(meta["input_shape"]) == list(x.shape[1:]), (label, meta)
    for batch in (x[:1], x):
        theirs = session.run(["output"], {"input": batch})[0]
        want = ours[: len(batch)]
        assert theirs.shape == want.shape, (label, theirs.shape, want.shape)
        worst = float(np.abs(theirs - want).max())
        if worst > 1e-5:
            sys.exit(f"{label}: ONNX Runtime differs from scratchnet predict by {worst}")
    print(f"ok  {label}  (opset {opset}, max |diff| {float(np.abs(theirs - want).max()):.2e})")


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--checkpoint", help="check this checkpoint instead of the built-in cases")
    p.add_argument("--input", help="inputs for --checkpoint (.npy); default: random of its input shape")
    p.add_argument("--opset", type=int, default=17)
    p.add_argument("--bin", default=str(ROOT / "target/release/scratchnet"))
    a = p.parse_args()
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as d:
        d = Path(d)
        if a.checkpoint:
            x_path = a.input
            if x_path is None:
                from safetensors import safe_open

                with safe_open(a.checkpoint, "np") as f:
                    shape = json.loads(f.metadata()["input_shape"])
                x_path = d / "x.npy"
                np.save(x_path, rng.uniform(-2, 2, (5, *shape)).astype(np.float32))
            check(a.bin, a.checkpoint, x_path, d / "m.onnx", a.opset, a.checkpoint)
            return
        for i, (text, shape, *vocab) in enumerate(CASES):
            x_path, y_path, ck = d / f"x{i}.npy", d / f"y{i}.npy", d / f"m{i}.safetensors"
            # 6 samples in batches of 2: BatchNorm refuses a training batch of one, as PyTorch does.
            if vocab:  # ids, as float32 (what predict and the exported graph take)
                x = rng.integers(0, vocab[0], (6, *shape)).astype(np.float32)
            else:
                x = rng.uniform(-2, 2, (6, *shape)).astype(np.float32)
            np.save(x_path, x)
            np.save(y_path, np.zeros((6, *output_shape(a.bin, text, shape)), np.float32))
            run(a.bin, "train", "--model", text, "--data", f"{x_path}:{y_path}", "--loss", "mse",
                "--epochs", "1", "--batch-size", "2", "--quiet", "--out", ck)
            for opset in sorted({13, a.opset, 21}):
                check(a.bin, ck, x_path, d / f"m{i}.onnx", opset, text)
        # The initial weights and those after PyTorch's steps (trained BatchNorm statistics).
        golden = ROOT / "tests/fixtures/golden"
        for case in sorted(golden.glob("*/init.safetensors")) + sorted(golden.glob("*/after.safetensors")):
            for opset in sorted({13, a.opset, 21}):
                check(a.bin, case, case.parent / "x.npy", d / "golden.onnx", opset,
                      f"{case.parent.name}/{case.name}")


if __name__ == "__main__":
    main()
