#!/usr/bin/env python3
"""Writes the seed inputs of the `csv` and `image_folder` fuzz targets (see fuzz/README.md and
tests/fuzz_harness/mod.rs for the input layouts) into tests/fuzz_regressions/{csv,image_folder}/.

Tables: rows of scikit-learn's iris and wine tables with a header, text and integer classes,
several regression targets, quotes, a byte-order mark. Images: tiny PNGs (gray, gray+alpha,
16-bit gray, RGB, RGBA, palette) and JPEGs (gray, colour, progressive) made with Pillow.

    pip install scikit-learn pillow
    python3 tools/make_fuzz_seeds.py
"""

import io
import os

import numpy as np
from PIL import Image
from sklearn import datasets

ROOT = os.path.join(os.path.dirname(__file__), "..", "tests", "fuzz_regressions")
SEP = b"\xffFILE\xff"


def write(target, name, data):
    with open(os.path.join(ROOT, target, "seed-" + name), "wb") as f:
        f.write(data)


def table(d, rows, target="class", names=True):
    cols = [n.replace(" ", "_").replace("(", "").replace(")", "") for n in d.feature_names]
    lines = [",".join(cols + [target])]
    for x, y in zip(d.data[rows], d.target[rows]):
        label = d.target_names[y] if names else str(y)
        lines.append(",".join(repr(float(v)) for v in x) + "," + label)
    return ("\n".join(lines) + "\n").encode()


def csv_seeds():
    iris, wine = datasets.load_iris(), datasets.load_wine()
    pick = [0, 1, 60, 61, 120, 121]
    write("csv", "iris_names", b"\x00\x00" + table(iris, pick))
    write("csv", "iris_indices_crlf", b"\x00\x00" + table(iris, pick, names=False).replace(b"\n", b"\r\n"))
    write("csv", "wine_target_named", b"\x00class\x00" + table(wine, [0, 70, 150]))
    write("csv", "regression_two_targets", b"\x01u,v\x00u,x,\"y, quoted\",v\n1.5,2,3,4\n-1e3,5,6,7e-3\n")
    write("csv", "predict_features", b"\x06\nb,a\x00a,b,kind\n1,2,tulip\n3,4,rose\n")
    write("csv", "known_classes_bom", b"\x08\n\nrose,tulip\x00\xef\xbb\xbfa,b,kind\n1,2,tulip\n\n3,4,rose\n")
    write("csv", "ragged", b"\x00\x00a,b,y\n1,2,0\n1,2\n")


def png(img, **kw):
    out = io.BytesIO()
    img.save(out, "PNG", **kw)
    return out.getvalue()


def jpeg(img, **kw):
    out = io.BytesIO()
    img.save(out, "JPEG", **kw)
    return out.getvalue()


def image_seeds():
    rng = np.random.default_rng(0)
    rgb = Image.fromarray(rng.integers(0, 256, (6, 5, 3), dtype=np.uint8), "RGB")
    rgba = Image.fromarray(rng.integers(0, 256, (4, 4, 4), dtype=np.uint8), "RGBA")
    gray = Image.fromarray(rng.integers(0, 256, (5, 7), dtype=np.uint8), "L")
    gray16 = Image.fromarray(rng.integers(0, 65536, (3, 4), dtype=np.uint16))
    la = gray.convert("LA")
    pal = rgb.convert("P", palette=Image.ADAPTIVE, colors=4)
    # flags: bits 0-1 classes-1, bit 2 train/test, bit 3 skip-bad, bits 4-5 channels, bit 6 size.
    write("image_folder", "two_classes_png", bytes([1]) + SEP.join([png(gray), png(rgb), png(rgba), png(pal)]))
    write("image_folder", "gray16_graya_size", bytes([64 | 0, 9, 4]) + SEP.join([png(gray16), png(la)]))
    write("image_folder", "jpeg_splits", bytes([4 | 1]) + SEP.join(
        [jpeg(rgb), jpeg(gray), jpeg(rgb, progressive=True), jpeg(gray.resize((9, 3)))]))
    write("image_folder", "skip_bad_channels1", bytes([8 | 16 | 2]) + SEP.join([b"not an image", png(rgb), jpeg(gray)]))
    write("image_folder", "channels3_resize", bytes([32 | 64 | 1, 15, 15]) + SEP.join([png(gray), jpeg(rgb.resize((40, 11)))]))


if __name__ == "__main__":
    csv_seeds()
    image_seeds()
