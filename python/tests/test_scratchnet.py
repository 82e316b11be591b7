"""Tests of the Python module `scratchnet` (`pip install .` at the repository root, then
`pytest python/tests`). The CLI comparisons run `target/release/scratchnet` (built by
`cargo build --release` if missing, or the binary named by $SCRATCHNET_BIN)."""

import json
import os
import signal
import struct
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import scratchnet

ROOT = Path(__file__).resolve().parents[2]
MLP = "Linear(4,16), ReLU, Linear(16,3)"


@pytest.fixture(scope="session")
def cli():
    """The path of the scratchnet binary."""
    path = Path(os.environ.get("SCRATCHNET_BIN", ROOT / "target/release/scratchnet"))
    if not path.exists():
        subprocess.run(["cargo", "build", "--release", "--bin", "scratchnet"], cwd=ROOT, check=True)
    return path


def run_cli(cli, *args, check=True):
    p = subprocess.run([str(cli), *map(str, args)], capture_output=True, text=True)
    if check and p.returncode != 0:
        raise AssertionError(p.stderr)
    return p


def tensors(path):
    """The raw bytes of every tensor of a safetensors file (read without the safetensors package)."""
    b = Path(path).read_bytes()
    n = struct.unpack("<Q", b[:8])[0]
    header = json.loads(b[8 : 8 + n])
    body = b[8 + n :]
    return {
        k: (v["dtype"], v["shape"], body[v["data_offsets"][0] : v["data_offsets"][1]])
        for k, v in header.items()
        if k != "__metadata__"
    }


def blobs(n=200, seed=0):
    """Three classes from the signs of two of four features (float64, int64 labels)."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 4))
    y = (x[:, 0] > 0).astype(np.int64) + (x[:, 1] > 0)
    return x, y


# --- the API as the issue writes it ---------------------------------------------------------


def test_the_issue_script_runs_as_written(tmp_path, capsys):
    os.chdir(tmp_path)
    X, y = blobs(200, 0)
    Xv, yv = blobs(60, 1)
    m = scratchnet.Model("Linear(4,16), ReLU, Linear(16,3)", input_shape=(4,), seed=0)
    history = m.fit(X, y, loss="cross-entropy", optimizer="adam", lr=0.01, epochs=30, batch_size=16,
                    shuffle=True, validation_data=(Xv, yv))
    P = m.predict(X)
    ev = m.evaluate(Xv, yv)
    m.save("m.safetensors"); m2 = scratchnet.Model.load("m.safetensors")
    m.export_onnx("m.onnx"); print(m.summary())

    assert isinstance(history, list) and len(history) == 30
    assert [h["epoch"] for h in history] == list(range(1, 31))
    assert set(history[0]) >= {"train_loss", "train_accuracy", "test_loss", "test_accuracy", "lr"}
    assert history[-1]["train_loss"] < history[0]["train_loss"]
    assert history[-1]["test_accuracy"] > 0.8
    assert m.history == history
    assert P.dtype == np.float32 and P.shape == (200, 3)
    assert set(ev) == {"loss", "accuracy", "correct", "total"} and ev["total"] == 60
    # evaluate agrees with the last epoch's validation figures.
    assert ev["loss"] == pytest.approx(history[-1]["test_loss"], rel=1e-12)
    assert ev["accuracy"] == history[-1]["test_accuracy"]
    np.testing.assert_array_equal(m2.predict(X), P)
    assert Path("m.onnx").stat().st_size > 0
    out = capsys.readouterr().out
    assert "total parameters: 131" in out
    assert "epoch 30/30  train loss" in out


def test_summary_and_attributes_match_the_cli(cli):
    m = scratchnet.Model("seed-cnn", input_shape=(1, 28, 28))
    p = run_cli(cli, "summary", "--model", "seed-cnn", "--input-shape", "1,28,28")
    assert m.summary() + "\n" == p.stdout
    assert m.input_shape == [1, 28, 28] and m.output_shape == [10]
    assert "Conv2d" in m.text and "seed-cnn" not in m.text
    assert repr(scratchnet.Model(MLP, input_shape=(4,))).startswith('scratchnet.Model("Linear(4,16)')


# --- same seed and data: the CLI's weights, bit for bit -------------------------------------

CASES = {
    "adam, shuffled": (
        MLP,
        dict(optimizer="adam", lr=0.01, epochs=4, batch_size=16),
        ["--optimizer", "adam", "--lr", "0.01", "--epochs", "4", "--batch-size", "16"],
    ),
    "sgd with every control, dropout": (
        "Linear(4,16), ReLU, Dropout(0.2), Linear(16,3)",
        dict(optimizer="sgd", momentum=0.9, nesterov=True, weight_decay=1e-3, lr=0.05, epochs=5,
             batch_size=16, lr_schedule="StepLR(step_size=2, gamma=0.5)", clip_grad_norm=1.0,
             label_smoothing=0.1, seed=3, threads=1),
        ["--optimizer", "sgd", "--momentum", "0.9", "--nesterov", "--weight-decay", "1e-3", "--lr",
         "0.05", "--epochs", "5", "--batch-size", "16", "--lr-schedule",
         "StepLR(step_size=2, gamma=0.5)", "--clip-grad-norm", "1.0", "--label-smoothing", "0.1",
         "--seed", "3"],
    ),
    "rmsprop centred, unshuffled, batchnorm": (
        "Linear(4,8), BatchNorm1d(8), Tanh, Linear(8,3)",
        dict(optimizer="rmsprop", alpha=0.9, eps=1e-6, momentum=0.5, centered=True, lr=0.01,
             epochs=3, batch_size=32, shuffle=False),
        ["--optimizer", "rmsprop", "--alpha", "0.9", "--eps", "1e-6", "--momentum", "0.5",
         "--centered", "--lr", "0.01", "--epochs", "3", "--batch-size", "32", "--no-shuffle"],
    ),
    "adamw, one-cycle": (
        MLP,
        dict(optimizer="adamw", beta1=0.8, beta2=0.99, weight_decay=0.05, lr=0.01, epochs=3,
             batch_size=20, lr_schedule="OneCycleLR(max_lr=0.05)", seed=7),
        ["--optimizer", "adamw", "--beta1", "0.8", "--beta2", "0.99", "--weight-decay", "0.05",
         "--lr", "0.01", "--epochs", "3", "--batch-size", "20", "--lr-schedule",
         "OneCycleLR(max_lr=0.05)", "--seed", "7"],
    ),
}


@pytest.mark.parametrize("case", list(CASES))
def test_same_weights_as_the_cli_bit_for_bit(case, cli, tmp_path):
    text, kw, flags = CASES[case]
    X, y = blobs(150)
    np.save(tmp_path / "X.npy", X)
    np.save(tmp_path / "Y.npy", y)
    m = scratchnet.Model(text, input_shape=(4,), seed=kw.get("seed", 0))
    m.fit(X, y, verbose=0, **kw)
    m.save(tmp_path / "py.safetensors")
    run_cli(cli, "train", "--model", text, "--data", f"{tmp_path}/X.npy:{tmp_path}/Y.npy",
            "--out", tmp_path / "cli.safetensors", "--quiet", *flags)
    a, b = tensors(tmp_path / "py.safetensors"), tensors(tmp_path / "cli.safetensors")
    assert a.keys() == b.keys()
    for k in a:
        assert a[k] == b[k], k


def test_early_stopping_ends_with_the_best_epoch_as_the_cli_checkpoint(cli, tmp_path):
    X, y = blobs(120)
    Xv, yv = blobs(40, 5)
    for name, arr in [("X", X), ("Y", y), ("Xv", Xv), ("Yv", yv)]:
        np.save(tmp_path / f"{name}.npy", arr)
    m = scratchnet.Model(MLP, input_shape=(4,), seed=1)
    # lr high enough that the validation loss goes up again.
    h = m.fit(X, y, optimizer="sgd", lr=2.0, epochs=25, batch_size=8, early_stopping=2,
              validation_data=(Xv, yv), verbose=0)
    assert len(h) < 25, "the run stops early"
    m.save(tmp_path / "py.safetensors")
    run_cli(cli, "train", "--model", MLP, "--data", f"{tmp_path}/X.npy:{tmp_path}/Y.npy",
            "--test-data", f"{tmp_path}/Xv.npy:{tmp_path}/Yv.npy", "--optimizer", "sgd", "--lr",
            "2.0", "--epochs", "25", "--batch-size", "8", "--early-stopping", "2", "--seed", "1",
            "--out", tmp_path / "cli.safetensors", "--quiet")
    assert tensors(tmp_path / "py.safetensors") == tensors(tmp_path / "cli.safetensors")
    best = min(h, key=lambda e: e["test_loss"])
    assert m.evaluate(Xv, yv)["loss"] == pytest.approx(best["test_loss"], rel=1e-12)


def test_augment_trains_as_the_cli_does(cli, tmp_path):
    rng = np.random.default_rng(4)
    X = rng.random((60, 1, 8, 8), dtype=np.float32)
    y = (X[:, 0, :, :4].mean(axis=(1, 2)) > X[:, 0, :, 4:].mean(axis=(1, 2))).astype(np.int64)
    np.save(tmp_path / "X.npy", X)
    np.save(tmp_path / "Y.npy", y)
    text, aug = "Flatten, Linear(64,2)", "RandomCrop(8, padding=2), RandomAffine(15, translate=(0.1, 0.1))"
    m = scratchnet.Model(text, input_shape=(1, 8, 8), seed=0)
    m.fit(X, y, epochs=2, batch_size=10, augment=aug, verbose=0)
    m.save(tmp_path / "py.safetensors")
    run_cli(cli, "train", "--model", text, "--data", f"{tmp_path}/X.npy:{tmp_path}/Y.npy",
            "--epochs", "2", "--batch-size", "10", "--augment", aug,
            "--out", tmp_path / "cli.safetensors", "--quiet")
    assert tensors(tmp_path / "py.safetensors") == tensors(tmp_path / "cli.safetensors")
    plain = scratchnet.Model(text, input_shape=(1, 8, 8), seed=0)
    plain.fit(X, y, epochs=2, batch_size=10, verbose=0)
    assert not np.array_equal(plain.predict(X), m.predict(X))
    with pytest.raises(ValueError) as e:
        scratchnet.Model(MLP, input_shape=(4,)).fit(*blobs(20), augment="RandomHorizontalFlip()")
    assert "its transforms take images [C, H, W]" in str(e.value)


def test_threads_do_not_change_the_weights():
    X, y = blobs(300)
    ws = []
    for threads in [1, 2]:
        m = scratchnet.Model("Linear(4,64), ReLU, Linear(64,3)", input_shape=(4,), seed=2)
        m.fit(X, y, epochs=2, batch_size=64, threads=threads, verbose=0)
        ws.append(m.predict(X))
    np.testing.assert_array_equal(ws[0], ws[1])


# --- arrays of any dtype and layout ---------------------------------------------------------


def trained(X, y, **kw):
    m = scratchnet.Model(MLP, input_shape=(4,), seed=0)
    h = m.fit(X, y, epochs=2, batch_size=10, verbose=0, **kw)
    return m, [e["train_loss"] for e in h]


def test_inputs_of_any_float_or_int_dtype_and_layout_are_converted():
    rng = np.random.default_rng(0)
    Xi = rng.integers(-3, 4, size=(40, 4))
    y = rng.integers(0, 3, size=40)
    _, ref = trained(Xi.astype(np.float32), y)
    for X in [
        Xi,                                   # int64
        Xi.astype(np.int32),
        Xi.astype(np.int8),
        Xi.astype(np.float64),
        Xi.astype(np.float16),
        np.asfortranarray(Xi.astype(np.float64)),
        np.repeat(Xi, 2, axis=1)[:, ::2],     # not contiguous
        Xi.T.copy().T,                        # Fortran order by transposition
        Xi.tolist(),                          # a list
    ]:
        assert trained(X, y)[1] == ref, getattr(X, "dtype", "list")
    # Labels of any integer dtype are class indices.
    for yy in [y.astype(np.int32), y.astype(np.uint8), y.astype(np.uint64), y.tolist()]:
        assert trained(Xi.astype(np.float32), yy)[1] == ref
    # float64 rounds to float32 as the CLI rounds an <f8 .npy.
    X64 = rng.normal(size=(40, 4))
    assert trained(X64, y)[1] == trained(X64.astype(np.float32), y)[1]


def test_uint8_inputs_are_pixels_scaled_as_the_cli_does():
    rng = np.random.default_rng(1)
    img = rng.integers(0, 256, size=(30, 1, 6, 6)).astype(np.uint8)
    m = scratchnet.Model("Flatten, Linear(36,3)", input_shape=(1, 6, 6))
    np.testing.assert_array_equal(m.predict(img), m.predict(img.astype(np.float32) / 255))
    # (N, H, W) uint8 gets its channel, as IDX and .npy pixels do.
    np.testing.assert_array_equal(m.predict(img[:, 0]), m.predict(img))


def test_predict_and_evaluate_take_any_dtype_too():
    X, y = blobs(50)
    m, _ = trained(X, y)
    np.testing.assert_array_equal(m.predict(np.asfortranarray(X)), m.predict(X.astype(np.float32)))
    assert m.evaluate(X, y.astype(np.int16)) == m.evaluate(X.astype(np.float32), y)


def test_regression_with_float_targets():
    rng = np.random.default_rng(2)
    X = rng.uniform(-1, 1, size=(200, 1))
    Y = np.sin(3 * X)
    m = scratchnet.Model("Linear(1,32), Tanh, Linear(32,1)", input_shape=(1,), seed=0)
    h = m.fit(X, Y, loss="mse", optimizer="adam", lr=0.02, epochs=40, batch_size=20, verbose=0)
    assert h[-1]["train_loss"] < 0.1 * h[0]["train_loss"]
    assert h[-1]["train_accuracy"] is None
    ev = m.evaluate(X, Y)
    assert ev["accuracy"] is None and ev["loss"] < 0.05


# --- errors: Python exceptions with the CLI's one-line messages -----------------------------


def cli_error(cli, *args):
    p = run_cli(cli, *args, check=False)
    assert p.returncode != 0
    line = p.stderr.strip().splitlines()[-1]
    assert line.startswith("error: "), p.stderr
    return line[len("error: "):]


def test_errors_carry_the_cli_messages(cli, tmp_path):
    X, y = blobs(20)
    np.save(tmp_path / "X.npy", X)
    np.save(tmp_path / "Y.npy", y + 5)
    data = f"{tmp_path}/X.npy:{tmp_path}/Y.npy"
    out = ["--out", tmp_path / "o.safetensors"]

    with pytest.raises(ValueError) as e:
        scratchnet.Model("Linear(4,16), Relu", input_shape=(4,))
    assert str(e.value) == cli_error(cli, "summary", "--model", "Linear(4,16), Relu", "--input-shape", "4")

    m = scratchnet.Model(MLP, input_shape=(4,))
    with pytest.raises(ValueError) as e:
        m.fit(X, y + 5, verbose=0)
    assert str(e.value) == cli_error(cli, "train", "--model", MLP, "--data", data, *out)
    assert str(e.value).startswith("training data: label ") and "is out of range for a model with 3 outputs" in str(e.value)

    with pytest.raises(ValueError) as e:
        m.fit(X, y, optimizer="adagrad", verbose=0)
    assert str(e.value) == cli_error(cli, "train", "--model", MLP, "--data", data, "--optimizer", "adagrad", *out)

    with pytest.raises(ValueError) as e:
        m.fit(X, y, lr=-1, verbose=0)
    assert str(e.value) == cli_error(cli, "train", "--model", MLP, "--data", data, "--lr", "-1", *out)

    with pytest.raises(ValueError) as e:
        m.fit(X, y, lr_schedule="StepLR(gamma=0.5)", verbose=0)
    assert str(e.value) == cli_error(cli, "train", "--model", MLP, "--data", data, "--lr-schedule", "StepLR(gamma=0.5)", *out)

    with pytest.raises(ValueError) as e:
        m.fit(X[:, :3], y, verbose=0)
    assert str(e.value) == "training data: input of shape [20, 3] does not fit a model built for samples of shape [4]"

    with pytest.raises(ValueError) as e:
        m.fit(X, y.astype(np.float32), verbose=0)
    assert str(e.value).startswith("training data: cross-entropy needs integer class labels")

    with pytest.raises(ValueError, match="^X: has shape \\(20,\\), one value per sample"):
        m.predict(X[:, 0])
    with pytest.raises(ValueError, match="^20 inputs but 19 targets"):
        m.fit(X, y[:19], verbose=0)
    with pytest.raises(ValueError, match="^y: label -1 at index 0 is not a class index"):
        m.fit(X, np.full(20, -1), verbose=0)
    with pytest.raises(ValueError, match="^X: sample 3 of the inputs holds NaN"):
        bad = X.copy(); bad[3, 1] = np.nan; m.predict(bad)
    with pytest.raises(TypeError, match="^X: has dtype <U1; expected numbers"):
        m.predict(np.array([["a"] * 4]))
    with pytest.raises(ValueError, match="^early_stopping watches the validation loss"):
        m.fit(X, y, early_stopping=3, verbose=0)
    with pytest.raises(ValueError, match="^label_smoothing applies to cross-entropy, not to loss mse"):
        m.fit(X, y, loss="mse", label_smoothing=0.1, verbose=0)
    for kw, msg in [("epochs", "epochs must be at least 1"), ("batch_size", "batch_size must be at least 1"),
                    ("threads", "threads must be at least 1")]:
        with pytest.raises(ValueError, match=f"^{msg}$"):
            m.fit(X, y, verbose=0, **{kw: 0})
    with pytest.raises(FileNotFoundError, match="nothing.safetensors"):
        scratchnet.Model.load(tmp_path / "nothing.safetensors")
    with pytest.raises(FloatingPointError, match="^training diverged at epoch 1, batch "):
        m.fit(X * 1e30, y, lr=1e30, verbose=0)
    # After every refusal the model is still there and works.
    assert m.predict(X).shape == (20, 3)


# --- save, load, export ---------------------------------------------------------------------


def test_a_saved_model_loads_in_the_cli_and_a_cli_model_loads_here(cli, tmp_path):
    X, y = blobs(60)
    m, _ = trained(X, y)
    m.save(tmp_path / "m.safetensors")
    np.save(tmp_path / "X.npy", X.astype(np.float32))
    run_cli(cli, "predict", "--checkpoint", tmp_path / "m.safetensors", "--input", tmp_path / "X.npy",
            "--output", tmp_path / "P.npy")
    np.testing.assert_array_equal(np.load(tmp_path / "P.npy"), m.predict(X))

    np.save(tmp_path / "Y.npy", y)
    run_cli(cli, "train", "--model", MLP, "--data", f"{tmp_path}/X.npy:{tmp_path}/Y.npy",
            "--epochs", "1", "--out", tmp_path / "c.safetensors", "--quiet")
    c = scratchnet.Model.load(tmp_path / "c.safetensors")
    run_cli(cli, "predict", "--checkpoint", tmp_path / "c.safetensors", "--input", tmp_path / "X.npy",
            "--output", tmp_path / "Q.npy")
    np.testing.assert_array_equal(np.load(tmp_path / "Q.npy"), c.predict(X))
    # A loaded model trains on.
    assert len(c.fit(X, y, epochs=1, verbose=0)) == 1


def test_export_onnx_writes_the_file_the_cli_exports(cli, tmp_path):
    X, y = blobs(40)
    m = scratchnet.Model("Linear(4,8), ReLU, Linear(8,3), Softmax(dim=1)", input_shape=(4,))
    m.fit(X, y, epochs=1, verbose=0)
    m.save(tmp_path / "m.safetensors")
    m.export_onnx(tmp_path / "py.onnx")
    run_cli(cli, "export", "--checkpoint", tmp_path / "m.safetensors", "--output", tmp_path / "cli.onnx")
    assert (tmp_path / "py.onnx").read_bytes() == (tmp_path / "cli.onnx").read_bytes()
    with pytest.raises(ValueError, match="^ONNX opset 9 is not supported"):
        m.export_onnx(tmp_path / "x.onnx", opset=9)


# --- progress, interrupts, threads ----------------------------------------------------------


def test_verbose_levels(capsys):
    X, y = blobs(100)
    m = scratchnet.Model(MLP, input_shape=(4,))
    m.fit(X, y, epochs=3, verbose=0)
    assert capsys.readouterr().out == ""
    m.fit(X, y, epochs=3, verbose=2)
    out = capsys.readouterr().out
    assert [l.lstrip("\r").split("  ")[0] for l in out.split("\n")] == ["epoch 1/3", "epoch 2/3", "epoch 3/3", ""]
    assert "[" not in out
    m.fit(X, y, epochs=3, batch_size=10, verbose=1)
    out = capsys.readouterr().out
    assert "[==============================]  10/10  loss" in out and out.count("\n") == 3


def test_ctrl_c_stops_training_cleanly(tmp_path):
    script = tmp_path / "run.py"
    script.write_text(textwrap.dedent("""
        import numpy as np, scratchnet, sys
        rng = np.random.default_rng(0)
        X = rng.normal(size=(20000, 64)); y = rng.integers(0, 10, size=20000)
        m = scratchnet.Model("Linear(64,256), ReLU, Linear(256,256), ReLU, Linear(256,10)", input_shape=(64,))
        print("start", flush=True)
        try:
            m.fit(X, y, epochs=1000, batch_size=10, verbose=0)
            print("finished")
        except KeyboardInterrupt as e:
            print("interrupted:", e)
            print("history", len(m.history))
            print("predict", m.predict(X[:3]).shape)
    """))
    p = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True)
    assert p.stdout.readline().strip() == "start"
    time.sleep(1.0)
    p.send_signal(signal.SIGINT)
    out, _ = p.communicate(timeout=60)
    assert p.returncode == 0
    assert out.startswith("interrupted: training stopped in epoch "), out
    assert "the model keeps the weights of that batch" in out
    assert "predict (3, 10)" in out


def test_the_gil_is_released_while_training():
    X, y = blobs(20000)
    m = scratchnet.Model("Linear(4,256), ReLU, Linear(256,256), ReLU, Linear(256,3)", input_shape=(4,))
    t = threading.Thread(target=lambda: m.fit(X, y, epochs=3, batch_size=10, verbose=0))
    ticks = 0
    t.start()
    while t.is_alive():
        ticks += 1
    t.join()
    # Held through training, the GIL would let this thread run only between fit's progress ticks.
    assert ticks > 100_000, ticks
    assert len(m.history) == 3
    # A second call while training is refused rather than waiting.
    t = threading.Thread(target=lambda: m.fit(X, y, epochs=2, batch_size=10, verbose=0))
    t.start()
    time.sleep(0.2)
    with pytest.raises(RuntimeError, match="borrowed"):
        m.predict(X[:2])
    t.join()


def test_the_readme_example_runs(tmp_path, capsys):
    text = (ROOT / "README.md").read_text()
    section = text.split("## Use it from Python", 1)[1]
    code = section.split("```python\n", 1)[1].split("```", 1)[0]
    os.chdir(tmp_path)
    exec(compile(code, "README.md", "exec"), {})
    out = capsys.readouterr().out
    assert "total parameters: 131" in out
    assert (tmp_path / "m.onnx").exists() and (tmp_path / "m.safetensors").exists()


def test_the_notebook_runs(tmp_path, monkeypatch, capsys):
    """Runs every code cell of examples/06_python.ipynb (Fashion-MNIST, as CI installs it), with a
    stand-in for matplotlib's pyplot that keeps what was plotted."""
    import types

    class Axes:
        def __init__(self):
            self.lines = []

        def plot(self, x, y, *args, **kwargs):
            self.lines.append((list(x), list(y)))

        def set(self, **kwargs):
            pass

        def legend(self):
            pass

    axes = [Axes(), Axes()]
    plt = types.ModuleType("matplotlib.pyplot")
    plt.subplots = lambda *a, **k: (None, axes)
    plt.show = lambda: None
    mpl = types.ModuleType("matplotlib")
    mpl.pyplot = plt
    monkeypatch.setitem(sys.modules, "matplotlib", mpl)
    monkeypatch.setitem(sys.modules, "matplotlib.pyplot", plt)
    nb = json.loads((ROOT / "examples/06_python.ipynb").read_text())
    assert nb["nbformat"] == 4
    os.chdir(tmp_path)
    env = {}
    for cell in nb["cells"]:
        if cell["cell_type"] == "code":
            exec(compile("".join(cell["source"]), "06_python.ipynb", "exec"), env)
    # Test accuracy per epoch for both models, 10 epochs each, rising from the first epoch to above
    # 70% (chance: 10%; SGD at lr 0.1 on 2,000 images wobbles from epoch to epoch).
    acc_y = [y for _, y in axes[1].lines]
    assert len(acc_y) == 2 and all(len(y) == 10 and max(y) > 0.7 > y[0] for y in acc_y), acc_y
    assert "label: Ankle boot" in capsys.readouterr().out
    assert (tmp_path / "fashion_cnn.onnx").exists()
