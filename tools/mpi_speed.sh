#!/bin/sh
# Data parallelism against threads on one machine: per preset, one epoch of Fashion-MNIST at batch
# 50 as one process on 1 and 2 threads and as `mpirun -np 2` ranks of 1 thread each, in turns for
# ROUNDS rounds; prints each run's training seconds (the epoch line's "train X s") and the load.
#   cargo build --release --features mpi && sh tools/mpi_speed.sh [ROUNDS]
set -eu
bin=target/release/scratchnet
rounds=${1:-3}
run() { # preset limit label command...
    preset=$1 limit=$2 label=$3; shift 3
    s=$("$@" train --model "$preset" --data fashion-mnist --limit "$limit" --batch-size 50 \
        --epochs 1 --quiet --out /tmp/mpi_speed.safetensors | sed -n 's/.*|  train \([0-9.]*\) s.*/\1/p')
    echo "$preset $label $s load $(cut -d' ' -f1 /proc/loadavg)"
}
for r in $(seq "$rounds"); do
    for p in mlp:20000 lenet:10000 resnet:2000; do
        preset=${p%%:*} limit=${p##*:}
        run "$preset" "$limit" "1x2threads" $bin --threads 2
        run "$preset" "$limit" "2ranksx1" mpirun --allow-run-as-root -np 2 $bin --threads 1
        run "$preset" "$limit" "1x1thread" $bin --threads 1
    done
done
