#!/usr/bin/env python3
"""Make the PyTorch fixtures for the training controls: AdamW, RMSprop, every learning-rate
schedule, gradient clipping and label smoothing, each a short run that `scratchnet train` must
repeat through its command line.

    pip install torch safetensors numpy
    python3 tools/make_training_fixtures.py            # all cases into tests/fixtures/training/

Each case is a directory holding `init.safetensors` (the initial state_dict, metadata {"model"}),
`x.npy` (float32 inputs, 64 × 4), `y.npy` (int64 classes), `after.safetensors` (the state_dict after
the run: batches of 16 in order, per batch `zero_grad(); loss.backward(); [clip_grad_norm_];
step(); [OneCycleLR.step()]`, and per epoch `[scheduler.step()]`), and `case.json`: the
`scratchnet train` flags that describe the same run, the learning rate of each epoch's last step
(`lrs`), the torch version and the command that made it.
"""
import json
import os
import sys

import numpy as np
import torch
from safetensors.torch import save_file
from torch import nn

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(REPO, "tests", "fixtures", "training")
MODEL = "Linear(4,16), Tanh, Linear(16,3)"
N, BATCH = 64, 16

# name: (epochs, scratchnet flags, optimizer factory, schedule factory, clip, label smoothing)
CASES = {
    "adamw": (3, ["--optimizer", "adamw", "--lr", "0.01", "--weight-decay", "0.05"],
              lambda p: torch.optim.AdamW(p, lr=0.01, weight_decay=0.05), None, None, 0.0),
    "adamw_default_decay": (2, ["--optimizer", "adamw", "--lr", "0.02"],
                            lambda p: torch.optim.AdamW(p, lr=0.02), None, None, 0.0),
    "rmsprop": (3, ["--optimizer", "rmsprop", "--lr", "0.01"],
                lambda p: torch.optim.RMSprop(p, lr=0.01), None, None, 0.0),
    "rmsprop_centered_momentum": (
        3, ["--optimizer", "rmsprop", "--lr", "0.005", "--centered", "--momentum", "0.5",
            "--weight-decay", "0.01", "--alpha", "0.9"],
        lambda p: torch.optim.RMSprop(p, lr=0.005, alpha=0.9, centered=True, momentum=0.5,
                                      weight_decay=0.01), None, None, 0.0),
    "steplr": (5, ["--lr", "0.1", "--momentum", "0.9", "--lr-schedule", "StepLR(step_size=2, gamma=0.5)"],
               lambda p: torch.optim.SGD(p, lr=0.1, momentum=0.9),
               lambda o, steps: torch.optim.lr_scheduler.StepLR(o, step_size=2, gamma=0.5), None, 0.0),
    "multisteplr": (5, ["--lr", "0.1", "--lr-schedule", "MultiStepLR(milestones=[2, 4], gamma=0.1)"],
                    lambda p: torch.optim.SGD(p, lr=0.1),
                    lambda o, steps: torch.optim.lr_scheduler.MultiStepLR(o, milestones=[2, 4], gamma=0.1),
                    None, 0.0),
    "exponentiallr": (4, ["--lr", "0.2", "--lr-schedule", "ExponentialLR(gamma=0.7)"],
                      lambda p: torch.optim.SGD(p, lr=0.2),
                      lambda o, steps: torch.optim.lr_scheduler.ExponentialLR(o, gamma=0.7), None, 0.0),
    "cosine": (7, ["--lr", "0.1", "--lr-schedule", "CosineAnnealingLR(T_max=3, eta_min=0.01)"],
               lambda p: torch.optim.SGD(p, lr=0.1),
               lambda o, steps: torch.optim.lr_scheduler.CosineAnnealingLR(o, T_max=3, eta_min=0.01),
               None, 0.0),
    "onecycle_adam": (3, ["--optimizer", "adam", "--lr", "0.01", "--lr-schedule", "OneCycleLR(max_lr=0.05)"],
                      lambda p: torch.optim.Adam(p, lr=0.01),
                      lambda o, steps: torch.optim.lr_scheduler.OneCycleLR(o, max_lr=0.05, total_steps=steps),
                      None, 0.0),
    "onecycle_sgd": (3, ["--lr", "0.1", "--momentum", "0.9", "--lr-schedule", "OneCycleLR(max_lr=0.2)"],
                     lambda p: torch.optim.SGD(p, lr=0.1, momentum=0.9),
                     lambda o, steps: torch.optim.lr_scheduler.OneCycleLR(o, max_lr=0.2, total_steps=steps),
                     None, 0.0),
    "clip": (2, ["--lr", "0.5", "--clip-grad-norm", "0.1"],
             lambda p: torch.optim.SGD(p, lr=0.5), None, 0.1, 0.0),
    "label_smoothing": (2, ["--lr", "0.3", "--label-smoothing", "0.2"],
                        lambda p: torch.optim.SGD(p, lr=0.3), None, None, 0.2),
}


def make(name, epochs, flags, optimizer, schedule, clip, smoothing):
    torch.manual_seed(sum(map(ord, name)))
    model = nn.Sequential(nn.Linear(4, 16), nn.Tanh(), nn.Linear(16, 3))
    x = torch.randn(N, 4)
    y = ((x[:, 0] + x[:, 1] > 0).long() + (x[:, 2] > 0.5).long())
    d = os.path.join(OUT, name)
    os.makedirs(d, exist_ok=True)
    save_file({k: v.contiguous() for k, v in model.state_dict().items()},
              os.path.join(d, "init.safetensors"), metadata={"model": MODEL})
    np.save(os.path.join(d, "x.npy"), x.numpy().astype(np.float32))
    np.save(os.path.join(d, "y.npy"), y.numpy().astype(np.int64))
    opt = optimizer(model.parameters())
    batches = (N + BATCH - 1) // BATCH
    sched = schedule(opt, epochs * batches) if schedule else None
    per_batch = isinstance(sched, torch.optim.lr_scheduler.OneCycleLR)
    loss_fn = nn.CrossEntropyLoss(label_smoothing=smoothing)
    lrs = []
    for _ in range(epochs):
        for b in range(batches):
            xb, yb = x[b * BATCH:(b + 1) * BATCH], y[b * BATCH:(b + 1) * BATCH]
            opt.zero_grad()
            loss_fn(model(xb), yb).backward()
            if clip is not None:
                torch.nn.utils.clip_grad_norm_(model.parameters(), clip)
            lr = opt.param_groups[0]["lr"]
            opt.step()
            if per_batch and sched.last_epoch + 1 < epochs * batches:
                sched.step()
        lrs.append(lr)
        if sched is not None and not per_batch:
            sched.step()
    save_file({k: v.contiguous() for k, v in model.state_dict().items()},
              os.path.join(d, "after.safetensors"), metadata={"model": MODEL})
    with open(os.path.join(d, "case.json"), "w") as f:
        json.dump({"flags": flags + ["--epochs", str(epochs), "--batch-size", str(BATCH)],
                   "lrs": lrs, "torch_version": torch.__version__,
                   "command": "python3 tools/make_training_fixtures.py"}, f, indent=1)


def main():
    torch.set_num_threads(1)
    for name, case in CASES.items():
        make(name, *case)
        print("wrote", os.path.join(OUT, name), file=sys.stderr)


if __name__ == "__main__":
    main()
