#!/usr/bin/env python3
"""Writes the 60,000 Fashion-MNIST training images as 28x28 gray PNGs in one folder per class
(`OUT/<class>/<index>.png`), the layout `scratchnet train --data OUT` reads: the data for measuring
how an image folder loads (memory and time). Standard library only.

    python3 tools/fashion_png.py [--idx /usr/share/datasets/fashion-mnist] [--out /tmp/fm-png-bytes]
"""
import argparse
import gzip
import os
import struct
import zlib

CLASSES = ["T-shirt_top", "Trouser", "Pullover", "Dress", "Coat",
           "Sandal", "Shirt", "Sneaker", "Bag", "Ankle_boot"]


def png(w, h, gray):
    """A minimal 8-bit grayscale PNG."""
    def chunk(kind, data):
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))
    rows = b"".join(b"\x00" + gray[y * w:(y + 1) * w] for y in range(h))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 0, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(rows, 6)) + chunk(b"IEND", b""))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--idx", default="/usr/share/datasets/fashion-mnist")
    ap.add_argument("--out", default="/tmp/fm-png-bytes")
    a = ap.parse_args()
    images = gzip.open(os.path.join(a.idx, "train-images-idx3-ubyte.gz")).read()
    labels = gzip.open(os.path.join(a.idx, "train-labels-idx1-ubyte.gz")).read()
    n, h, w = struct.unpack(">III", images[4:16])
    for c in CLASSES:
        os.makedirs(os.path.join(a.out, c), exist_ok=True)
    for i in range(n):
        px = images[16 + i * h * w:16 + (i + 1) * h * w]
        path = os.path.join(a.out, CLASSES[labels[8 + i]], f"{i:05d}.png")
        with open(path, "wb") as f:
            f.write(png(w, h, px))
    print(f"wrote {n} images to {a.out}")


if __name__ == "__main__":
    main()
