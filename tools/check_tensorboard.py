"""Reads a `scratchnet train --tensorboard DIR` run with TensorBoard's own EventAccumulator and
checks what it finds: per-epoch scalars, the running loss, weight histograms.

    pip install tensorboard
    scratchnet train --model mlp --data fashion-mnist --limit 2000 --epochs 2 --tensorboard runs/tb
    python3 tools/check_tensorboard.py runs/tb 2
"""
import sys

from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

logdir, epochs = sys.argv[1], int(sys.argv[2])
acc = EventAccumulator(logdir, size_guidance={"scalars": 0, "histograms": 0})
acc.Reload()
tags = acc.Tags()
for tag in ["train/loss", "train/accuracy", "test/loss", "test/accuracy", "lr", "train/running_loss", "grad_norm/batch"]:
    assert tag in tags["scalars"], (tag, tags["scalars"])
for tag in ["train/loss", "test/accuracy", "lr"]:
    events = acc.Scalars(tag)
    assert len(events) == epochs, (tag, events)
    assert [e.step for e in events] == sorted(e.step for e in events)
    print(tag, [round(e.value, 4) for e in events])
running = acc.Scalars("train/running_loss")
assert len(running) >= 10 * epochs, len(running)
weights = [t for t in tags["histograms"] if t.startswith("weights/")]
grads = [t for t in tags["histograms"] if t.startswith("gradients/")]
assert weights and len(grads) == len(weights), tags["histograms"]
for tag in weights + grads:
    h = acc.Histograms(tag)
    assert len(h) == epochs and h[-1].histogram_value.num > 0, tag
print(f"ok: {len(tags['scalars'])} scalar tags, {len(running)} running-loss points, histograms {weights}")
