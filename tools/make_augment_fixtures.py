"""Fixtures for src/data/augment.rs: torchvision's functional ops with fixed parameters.

    pip install torch torchvision   # the functional ops are Python over torch; any recent pair
    python3 tools/make_augment_fixtures.py

writes tests/fixtures/augment/torchvision.json: one small image [C, H, W] and, per case, the
parameters and torchvision's output (F.affine, F.crop of F.pad, F.hflip, F.vflip).
"""

import json
import pathlib

import torch
import torchvision
import torchvision.transforms.functional as F
from torchvision.transforms import InterpolationMode

OUT = pathlib.Path(__file__).resolve().parent.parent / "tests/fixtures/augment/torchvision.json"

torch.manual_seed(0)
img = torch.rand(2, 6, 7)

cases = []
affine = [
    # angle, (tx, ty), scale, (shear x, shear y), interpolation, fill, center
    (90.0, (0, 0), 1.0, (0.0, 0.0), "nearest", [0.0, 0.0], None),
    (17.0, (1, -2), 1.0, (0.0, 0.0), "nearest", [0.0, 0.0], None),
    (-33.5, (0, 1), 1.3, (0.0, 0.0), "nearest", [0.25, 0.75], None),
    (10.0, (2, 1), 0.8, (12.0, -7.0), "nearest", [0.5, 0.5], None),
    (25.0, (-1, 0), 1.1, (5.0, 0.0), "nearest", [0.0, 0.0], [1.0, 2.0]),
    (17.0, (1, -2), 1.0, (0.0, 0.0), "bilinear", [0.0, 0.0], None),
    (-40.0, (0, 1), 0.9, (8.0, 3.0), "bilinear", [0.3, 0.6], None),
]
for angle, translate, scale, shear, interp, fill, center in affine:
    mode = InterpolationMode.NEAREST if interp == "nearest" else InterpolationMode.BILINEAR
    out = F.affine(img, angle=angle, translate=list(translate), scale=scale, shear=list(shear),
                   interpolation=mode, fill=fill, center=center)
    cases.append({"op": "affine", "angle": angle, "translate": translate, "scale": scale,
                  "shear": shear, "interpolation": interp, "fill": fill, "center": center,
                  "out": out.flatten().tolist()})

# RandomCrop's forward: F.pad(padding = [left, top, right, bottom]), then F.crop(i, j, H, W).
for padding, mode, fill, (i, j) in [
    ([3, 3, 3, 3], "constant", 0.0, (0, 0)),
    ([3, 3, 3, 3], "constant", 0.5, (5, 2)),
    ([1, 2, 3, 4], "edge", 0.0, (6, 3)),
    ([2, 2, 2, 2], "reflect", 0.0, (1, 4)),
    ([3, 1, 0, 2], "symmetric", 0.0, (3, 0)),
]:
    padded = F.pad(img, padding, fill=fill, padding_mode=mode)
    out = F.crop(padded, i, j, img.shape[1], img.shape[2])
    cases.append({"op": "crop", "padding": padding, "padding_mode": mode, "fill": fill,
                  "i": i, "j": j, "out": out.flatten().tolist()})

cases.append({"op": "hflip", "out": F.hflip(img).flatten().tolist()})
cases.append({"op": "vflip", "out": F.vflip(img).flatten().tolist()})

OUT.parent.mkdir(parents=True, exist_ok=True)
OUT.write_text(json.dumps({
    "made_by": f"tools/make_augment_fixtures.py (torch {torch.__version__}, torchvision {torchvision.__version__})",
    "shape": list(img.shape),
    "image": img.flatten().tolist(),
    "cases": cases,
}) + "\n")
print(f"wrote {OUT}")
