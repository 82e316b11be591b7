#!/usr/bin/env bash
# First run on a fresh machine: get Fashion-MNIST (Debian's package, or the official mirror), then
# train the small CNN for one epoch and leave a checkpoint, a history and a plot in runs/.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! ls /usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz >/dev/null 2>&1; then
  sudo=""; [ "$(id -u)" -ne 0 ] && sudo="sudo"
  if ! { $sudo apt-get update -qq && $sudo apt-get install -y -qq dataset-fashion-mnist; }; then
    echo "apt-get failed; downloading Fashion-MNIST from its official mirror instead"
    cargo run --release -q -- download fashion-mnist
  fi
fi
mkdir -p runs
cargo run --release -q -- train --data fashion-mnist --model seed-cnn --epochs 1 --batch-size 50 --lr 0.1 \
  --out runs/seed-cnn.safetensors --history runs/seed-cnn.json --plot runs/seed-cnn.png
