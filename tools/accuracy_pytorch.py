#!/usr/bin/env python3
"""The accuracy half of the README's PyTorch comparison: train a preset on Fashion-MNIST in PyTorch
with the settings `scratchnet train` uses, and print the same per-epoch line.

    pip install torch numpy
    python3 tools/accuracy_pytorch.py --model seed-cnn --epochs 1 --seed 0
    python3 tools/accuracy_pytorch.py --model mlp --epochs 5 --seed 0
    python3 tools/accuracy_pytorch.py --model resnet --epochs 10 --optimizer adamw --lr 0.001 \
        --one-cycle 0.01 --limit 10000

With `--optimizer adamw` it is torch.optim.AdamW(lr, weight_decay=0.01) (PyTorch's defaults, as
`scratchnet train --optimizer adamw`); `--one-cycle MAX_LR` adds
torch.optim.lr_scheduler.OneCycleLR(max_lr=MAX_LR, total_steps=epochs × batches), stepped after every
batch (as `--lr-schedule "OneCycleLR(max_lr=MAX_LR)"`); `--limit N` trains on the first N images.

Settings: the 60,000 training images shuffled each epoch (torch.Generator seeded with --seed),
batches of 50, nn.CrossEntropyLoss, torch.optim.SGD(lr=0.1), PyTorch's default initialisation
after torch.manual_seed(--seed); test accuracy on the 10,000 test images. Seeds differ from
scratchnet's generator, so compare several seeds, not one run.
"""
import argparse
import sys
import time

import torch
from torch import nn

sys.path.insert(0, __file__.rsplit("/", 1)[0])
from bench_pytorch import build_model, load_split  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="seed-cnn", choices=["mlp", "seed-cnn", "lenet", "resnet"])
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--lr", type=float, default=0.1)
    ap.add_argument("--batch-size", type=int, default=50)
    ap.add_argument("--optimizer", default="sgd", choices=["sgd", "adamw"])
    ap.add_argument("--one-cycle", type=float, metavar="MAX_LR", help="OneCycleLR(max_lr=MAX_LR), per batch")
    ap.add_argument("--limit", type=int, help="train on the first N training images only")
    ap.add_argument("--data-dir", default="/usr/share/datasets/fashion-mnist")
    a = ap.parse_args()
    torch.manual_seed(a.seed)
    xtr, ytr = load_split(a.data_dir, "train", a.limit)
    xte, yte = load_split(a.data_dir, "t10k")
    model = build_model(a.model)
    if a.optimizer == "adamw":
        opt = torch.optim.AdamW(model.parameters(), lr=a.lr)
    else:
        opt = torch.optim.SGD(model.parameters(), lr=a.lr)
    sched = None
    if a.one_cycle is not None:
        steps = a.epochs * ((len(xtr) + a.batch_size - 1) // a.batch_size)
        sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=a.one_cycle, total_steps=steps)
    loss_fn = nn.CrossEntropyLoss()
    g = torch.Generator().manual_seed(a.seed)
    for epoch in range(1, a.epochs + 1):
        t0 = time.perf_counter()
        model.train()
        order = torch.randperm(len(xtr), generator=g)
        total, right = 0.0, 0
        for i in range(0, len(xtr), a.batch_size):
            idx = order[i : i + a.batch_size]
            out = model(xtr[idx])
            loss = loss_fn(out, ytr[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            if sched is not None:
                sched.step()
            total += loss.item() * len(idx)
            right += (out.argmax(1) == ytr[idx]).sum().item()
        t1 = time.perf_counter()
        model.eval()
        with torch.no_grad():
            # In batches of 1000 (one batch of 10,000 resnet activations is 0.5 GB per tensor).
            out = torch.cat([model(xte[i : i + 1000]) for i in range(0, len(xte), 1000)])
            test_loss = loss_fn(out, yte).item()
            test_right = (out.argmax(1) == yte).sum().item()
        t2 = time.perf_counter()
        print(
            f"epoch {epoch}/{a.epochs}  train loss {total / len(xtr):.4f}  accuracy {right}/{len(xtr)} ({100 * right / len(xtr):.2f}%)"
            f"  |  test loss {test_loss:.4f}  accuracy {test_right}/{len(xte)} ({100 * test_right / len(xte):.2f}%)"
            f"  |  train {t1 - t0:.2f} s  test {t2 - t1:.2f} s",
            flush=True,
        )


if __name__ == "__main__":
    main()
