"""Reference for the image-folder dataset's resize + center crop (tests/test_image_folder.cpp).

The same pipeline as torchvision's Resize(n, antialias=True) + CenterCrop(n) on a uint8 tensor:
torch.nn.functional.interpolate in float (antialias=True: PIL's filters), rounded with torch.round and
clamped to uint8; "nearest" is torch's "nearest-exact" (PIL's NEAREST). "area" is exact area averaging
(partial pixels weighted by coverage), computed here in float64 with numpy, independently of torch.

Usage: image_resize_reference.py DIR
  For every DIR/<case>.txt ("H W C resize crop mode") and DIR/<case>.u8 (H x W x C uint8 pixels), writes
  DIR/<case>.ref.u8: the C x H' x W' uint8 result.
"""
import pathlib
import sys

import numpy as np
import torch
import torch.nn.functional as F


def resized_size(h, w, shorter):
    """torchvision's rule: the shorter side becomes `shorter`, the longer int(shorter * long / short)."""
    if shorter <= 0:
        return h, w
    if w <= h:
        return int(shorter * h / w), shorter
    return shorter, int(shorter * w / h)


def area_matrix(n_in, n_out):
    scale = n_in / n_out
    m = np.zeros((n_out, n_in))
    for i in range(n_out):
        begin, end = i * scale, min((i + 1) * scale, n_in)
        for j in range(int(np.floor(begin)), min(int(np.ceil(end)), n_in)):
            m[i, j] = max(0.0, min(end, j + 1) - max(begin, j))
        m[i] /= m[i].sum()
    return m


def reference(pixels, resize, crop, mode):
    h, w, _ = pixels.shape
    oh, ow = resized_size(h, w, resize)
    x = torch.from_numpy(pixels).permute(2, 0, 1).float()[None]
    if (oh, ow) != (h, w):
        if mode == "nearest":
            x = F.interpolate(x, size=(oh, ow), mode="nearest-exact")
        elif mode in ("bilinear", "bicubic"):
            x = F.interpolate(x, size=(oh, ow), mode=mode, align_corners=False, antialias=True)
        elif mode == "area":
            y = np.einsum("oh,chw,pw->cop", area_matrix(h, oh), x[0].double().numpy(), area_matrix(w, ow))
            x = torch.from_numpy(y)[None]
        else:
            raise SystemExit(f"unknown mode {mode}")
        x = x.round().clamp(0, 255)
    if crop > 0:
        top, left = int(round((oh - crop) / 2.0)), int(round((ow - crop) / 2.0))
        x = x[..., top:top + crop, left:left + crop]
    return x[0].to(torch.uint8).numpy()


def main():
    folder = pathlib.Path(sys.argv[1])
    for spec in sorted(folder.glob("*.txt")):
        h, w, c, resize, crop, mode = spec.read_text().split()
        pixels = np.fromfile(spec.with_suffix(".u8"), dtype=np.uint8).reshape(int(h), int(w), int(c))
        out = reference(pixels, int(resize), int(crop), mode)
        out.tofile(spec.with_suffix(".ref.u8"))


if __name__ == "__main__":
    main()
