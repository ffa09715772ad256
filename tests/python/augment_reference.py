#!/usr/bin/env python3
"""torchvision's side of the RandAugment / TrivialAugment parity tests (tests/test_augment_randaugment.cpp).

Usage: augment_reference.py DIR
  DIR/ops.npy (int64 [K]: op indices in RandAugment's order), DIR/mags.npy (float64 [K, N]: one signed
  magnitude per sample, as torchvision's _apply_image_or_video_transform receives it) and, for every
  DIR/in_<name>.npy (float32 [N, C, H, W] images in [0, 1]), writes DIR/ref_<name>.npy (float32
  [K, N, C, H, W]): case k applied to each image alone, through torchvision.transforms.v2.functional, the
  way RandAugment applies its ops (RandAugment()._apply_image_or_video_transform: NEAREST, fill None).
  Also writes the magnitude bins torchvision uses, DIR/table_<space>_<bins>_<h>_<w>.npy (float64
  [14, bins], NaN for ops without a magnitude) for the spaces ra (RandAugment) and ta (TrivialAugmentWide).
Exits 3 with "SKIP: ..." on stderr when torchvision cannot be imported.
"""
import pathlib
import sys

import numpy as np
import torch

try:
    from torchvision.transforms import v2
    from torchvision.transforms.v2 import InterpolationMode
except Exception as e:  # noqa: BLE001 - any import failure means no reference
    print(f"SKIP: torchvision is not importable ({e})", file=sys.stderr)
    sys.exit(3)

OPS = ["Identity", "ShearX", "ShearY", "TranslateX", "TranslateY", "Rotate", "Brightness", "Color", "Contrast",
       "Sharpness", "Posterize", "Solarize", "AutoContrast", "Equalize"]
TABLES = [(31, 32, 32), (11, 28, 36)]  # (bins, h, w)


def reference(images, ops, mags):
    ra = v2.RandAugment()
    assert list(ra._AUGMENTATION_SPACE) == OPS, list(ra._AUGMENTATION_SPACE)
    out = np.empty((len(ops),) + images.shape, dtype=np.float32)
    for k, op in enumerate(ops):
        for i, image in enumerate(images):
            result = ra._apply_image_or_video_transform(
                torch.from_numpy(image.copy()), OPS[int(op)], float(mags[k, i]),
                interpolation=InterpolationMode.NEAREST, fill=ra._fill)
            assert result.dtype == torch.float32 and result.shape == image.shape
            out[k, i] = result.numpy()
    return out


def table(space, bins, h, w):
    out = np.full((len(OPS), bins), np.nan)
    for k, name in enumerate(OPS):
        values = space[name][0](bins, h, w)
        if values is not None:
            out[k] = np.asarray([float(v) for v in values])
    return out


def main():
    d = pathlib.Path(sys.argv[1])
    ops = np.load(d / "ops.npy")
    mags = np.load(d / "mags.npy")
    for path in sorted(d.glob("in_*.npy")):
        images = np.load(path)
        np.save(d / ("ref_" + path.name[3:]), reference(images, ops, mags))
    for name, cls in (("ra", v2.RandAugment), ("ta", v2.TrivialAugmentWide)):
        for bins, h, w in TABLES:
            np.save(d / f"table_{name}_{bins}_{h}_{w}.npy", table(cls._AUGMENTATION_SPACE, bins, h, w))


if __name__ == "__main__":
    main()
