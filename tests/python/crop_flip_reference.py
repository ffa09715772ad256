#!/usr/bin/env python3
"""torchvision.transforms.v2.functional's pad + crop and flips: the reference for Loom's random-crop and
flip ops (tests/test_augmentation.cpp).

Reads a JSON file {"images": [N][C][H][W] floats in [0, 1], "padding": p, "padding_mode": "constant" |
"reflect", "top": [N], "left": [N], "flip": [N] bools, "vertical": bool} and prints {"crop": ..., "flip": ...}:
per image F.crop(F.pad(img, p, fill=0, padding_mode), top, left, H, W) and the image flipped where asked."""
import json
import sys

import torch
import torchvision.transforms.v2.functional as F


def main() -> int:
    with open(sys.argv[1]) as f:
        d = json.load(f)
    x = torch.tensor(d["images"], dtype=torch.float32)
    h, w = x.shape[-2:]
    crops, flips = [], []
    for i, img in enumerate(x):
        padded = F.pad(img, [d["padding"]], fill=0, padding_mode=d["padding_mode"])
        crops.append(F.crop(padded, d["top"][i], d["left"][i], h, w))
        flipper = F.vertical_flip if d["vertical"] else F.horizontal_flip
        flips.append(flipper(img) if d["flip"][i] else img)
    print(json.dumps({"crop": torch.stack(crops).tolist(), "flip": torch.stack(flips).tolist()}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
