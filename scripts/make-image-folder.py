#!/usr/bin/env python3
"""Writes Fashion-MNIST images as an image-folder dataset: one sub-folder of PNG (or JPEG) files per class.

  python3 scripts/make-image-folder.py                               # data/fashion-mnist-images, 100 per class
  python3 scripts/make-image-folder.py --per-class 300 --size 224 --format jpg --rgb --out /tmp/fm224
  python3 scripts/make-image-folder.py --test-per-class 50           # root/train/<class>/ and root/test/<class>/

Reads the gzipped IDX files of Debian's dataset-fashion-mnist package (--idx-dir). Takes the first
--per-class images of each class from the training file (and --test-per-class from the test file, which
switches to the train/ + test/ layout), resizes them to --size x --size (bilinear), and writes them as
<out>/[train|test/]<k>-<class name>/<nnnnn>.png. PNG needs only numpy and zlib; --format jpg needs Pillow.

The folder appears complete or not at all: everything is written into a temporary sibling folder, each
file fsync'ed, then renamed into place. An existing --out is refused unless --force replaces it.
"""
import argparse
import gzip
import io
import os
import pathlib
import shutil
import struct
import sys
import zlib

import numpy as np

CLASSES = ["t-shirt-top", "trouser", "pullover", "dress", "coat", "sandal", "shirt", "sneaker", "bag", "ankle-boot"]
REPO = pathlib.Path(__file__).resolve().parent.parent


def default_idx_dir():
    """Debian's dataset-fashion-mnist, else the copy scripts/gpu-deps.sh makes for offline machines."""
    for candidate in (pathlib.Path("/usr/share/datasets/fashion-mnist"), REPO / ".gpu-deps" / "data" / "fashion-mnist"):
        if (candidate / "train-images-idx3-ubyte.gz").is_file():
            return candidate
    return pathlib.Path("/usr/share/datasets/fashion-mnist")


def read_idx(path, offset):
    with gzip.open(path, "rb") as f:
        return np.frombuffer(f.read(), dtype=np.uint8, offset=offset)


def load_split(idx_dir, prefix):
    images = read_idx(idx_dir / f"{prefix}-images-idx3-ubyte.gz", 16).reshape(-1, 28, 28)
    labels = read_idx(idx_dir / f"{prefix}-labels-idx1-ubyte.gz", 8)
    if len(images) != len(labels):
        raise SystemExit(f"make-image-folder: {idx_dir}: {len(images)} {prefix} images but {len(labels)} labels")
    return images, labels


def resize_bilinear(image, size):
    """Bilinear resize of a grey uint8 image to size x size (pixel centres aligned, as torch's align_corners=False)."""
    if image.shape == (size, size):
        return image

    def taps(n_in, n_out):
        x = np.clip((np.arange(n_out) + 0.5) * n_in / n_out - 0.5, 0, n_in - 1)
        x0 = np.floor(x).astype(np.int64)
        return x0, np.minimum(x0 + 1, n_in - 1), x - x0

    y0, y1, ty = taps(image.shape[0], size)
    x0, x1, tx = taps(image.shape[1], size)
    img = image.astype(np.float64)
    top = img[y0][:, x0] * (1 - tx) + img[y0][:, x1] * tx
    bottom = img[y1][:, x0] * (1 - tx) + img[y1][:, x1] * tx
    out = top * (1 - ty)[:, None] + bottom * ty[:, None]
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def png_bytes(pixels):
    """A minimal PNG (8-bit grey or RGB, no filtering) with zlib and struct only."""
    height, width = pixels.shape[:2]
    colour_type = 0 if pixels.ndim == 2 else 2
    raw = b"".join(b"\x00" + pixels[y].tobytes() for y in range(height))

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, colour_type, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(raw, 6)) + chunk(b"IEND", b""))


def jpeg_encoder(quality):
    try:
        from PIL import Image
    except ImportError:
        raise SystemExit("make-image-folder: --format jpg needs Pillow (python3 -m pip install pillow); "
                         "or use --format png, which needs nothing else")

    def encode(pixels):
        buffer = io.BytesIO()
        Image.fromarray(pixels).save(buffer, "JPEG", quality=quality)
        return buffer.getvalue()

    return encode


def write_file(path, data):
    with open(path, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


def fsync_dir(path):
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_split(images, labels, per_class, folder, args, encode):
    for k, name in enumerate(CLASSES):
        chosen = np.flatnonzero(labels == k)[:per_class]
        if len(chosen) < per_class:
            raise SystemExit(f"make-image-folder: class {name} has only {len(chosen)} images, asked for {per_class}")
        class_dir = folder / f"{k}-{name}"
        class_dir.mkdir(parents=True)
        for n, i in enumerate(chosen):
            pixels = resize_bilinear(images[i], args.size)
            if args.rgb:
                pixels = np.repeat(pixels[:, :, None], 3, axis=2)
            write_file(class_dir / f"{n:05d}.{args.format}", encode(pixels))
        fsync_dir(class_dir)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=pathlib.Path, default=REPO / "data" / "fashion-mnist-images",
                        help="folder to create (default: data/fashion-mnist-images in the repository)")
    parser.add_argument("--per-class", type=int, default=100, help="training images per class (default 100)")
    parser.add_argument("--test-per-class", type=int, default=0,
                        help="test images per class; > 0 writes train/ and test/ folders (default 0: one pool)")
    parser.add_argument("--size", type=int, default=28, help="side of the written images in pixels (default 28)")
    parser.add_argument("--format", choices=["png", "jpg"], default="png", help="file format (jpg needs Pillow)")
    parser.add_argument("--quality", type=int, default=90, help="JPEG quality (default 90)")
    parser.add_argument("--rgb", action="store_true", help="write 3-channel images (the grey value repeated)")
    parser.add_argument("--idx-dir", type=pathlib.Path, default=default_idx_dir(),
                        help="folder of the gzipped IDX files (default: Debian's dataset-fashion-mnist, else "
                             "the copy in .gpu-deps/)")
    parser.add_argument("--force", action="store_true", help="replace --out if it exists")
    args = parser.parse_args()
    if args.per_class < 1 or args.test_per_class < 0 or args.size < 1:
        parser.error("--per-class and --size must be at least 1, --test-per-class at least 0")
    if not (args.idx_dir / "train-images-idx3-ubyte.gz").is_file():
        raise SystemExit(f"make-image-folder: no Fashion-MNIST IDX files in {args.idx_dir}; install Debian's "
                         "dataset-fashion-mnist package (scripts/setup.sh does) or pass --idx-dir")
    out = args.out.resolve()
    if out.exists() and not args.force:
        raise SystemExit(f"make-image-folder: {out} exists; pass --force to replace it")
    encode = png_bytes if args.format == "png" else jpeg_encoder(args.quality)

    out.parent.mkdir(parents=True, exist_ok=True)
    temp = out.parent / f".{out.name}.tmp-{os.getpid()}"
    try:
        train = load_split(args.idx_dir, "train")
        if args.test_per_class > 0:
            write_split(*train, args.per_class, temp / "train", args, encode)
            write_split(*load_split(args.idx_dir, "t10k"), args.test_per_class, temp / "test", args, encode)
            for sub in ("train", "test"):
                fsync_dir(temp / sub)
        else:
            write_split(*train, args.per_class, temp, args, encode)
        fsync_dir(temp)
        if out.exists():  # --force: swap the new folder in, then delete the old one
            old = out.parent / f".{out.name}.old-{os.getpid()}"
            out.rename(old)
            temp.rename(out)
            shutil.rmtree(old)
        else:
            temp.rename(out)
        fsync_dir(out.parent)
    except BaseException:
        shutil.rmtree(temp, ignore_errors=True)
        raise
    total = 10 * (args.per_class + args.test_per_class)
    print(f"make-image-folder: wrote {total} {args.size}x{args.size} {args.format} images "
          f"({'RGB' if args.rgb else 'grey'}) in 10 class folders to {out}")


if __name__ == "__main__":
    sys.exit(main())
