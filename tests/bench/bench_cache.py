#!/usr/bin/env python3
"""Data-only epoch throughput: Loom's caches against no cache, the seed's per-sample .npy loader and the
raw read of the cache bytes.

One run does everything, side by side on the same machine:
  1. generates an image-folder data set: Fashion-MNIST training images upscaled to --size (default
     256x256) and written as JPEG, --per-class per class (default 400: 4000 images);
  2. Loom, through its own loader (tests/bench/bench_data.cpp: dataset -> cache -> batch gather, no model),
     preprocessing = decode, resize the shorter side to 256 (bilinear), center crop 224, normalise:
       - no cache        (decode + preprocess every epoch)
       - memory cache    (store float32)
       - npy cache       (warm page cache; built beforehand by `loom cache build`)
       - npy cache, uint8 store
  3. the seed's approach: preprocess_and_save_npy wrote one .npy per sample (here: the npy cache's rows,
     the same bytes), a torch Dataset whose __getitem__ does np.load of one file, through
     torch.utils.data.DataLoader (default collate), with the same batch size, at --workers 0 and 2;
  4. the physical limit: a sequential read of the cache's data.npy (warm page cache).
Every Loom row is the median epoch of --epochs epochs after one warm-up epoch; the Python rows likewise.
Ratios are printed against the uncached epoch, the seed's loader and the raw read.

    python3 tests/bench/bench_cache.py                    # the benchmark (a few minutes on 2 cores)
    python3 tests/bench/bench_cache.py --per-class 20 --epochs 1    # a smoke run

Needs Pillow to write the JPEG files (installed from PyPI on first use if missing).
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import platform
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
BUILD = REPO / "build"
LOOM = BUILD / "bin" / "loom"
BENCH = BUILD / "bin" / "loom_bench_data"
FMNIST = Path("/usr/share/datasets/fashion-mnist")
TARGETS = {"npy_vs_uncached": 20.0, "npy_vs_seed": 3.0, "raw_vs_npy": 2.0}


def ensure_pillow():
    try:
        import PIL  # noqa: F401
    except ImportError:
        print("bench_cache: installing Pillow from PyPI (JPEG writer for the generated data set)", flush=True)
        subprocess.check_call([sys.executable, "-m", "pip", "install", "-q", "--disable-pip-version-check", "pillow"])


def read_idx_images(path: Path):
    import numpy as np
    with gzip.open(path, "rb") as f:
        data = f.read()
    n, rows, cols = (int.from_bytes(data[i:i + 4], "big") for i in (4, 8, 12))
    return np.frombuffer(data, dtype=np.uint8, offset=16).reshape(n, rows, cols)


def read_idx_labels(path: Path):
    import numpy as np
    with gzip.open(path, "rb") as f:
        data = f.read()
    return np.frombuffer(data, dtype=np.uint8, offset=8)


def make_image_folder(root: Path, per_class: int, size: int) -> int:
    from PIL import Image
    images = read_idx_images(FMNIST / "train-images-idx3-ubyte.gz")
    labels = read_idx_labels(FMNIST / "train-labels-idx1-ubyte.gz")
    count = 0
    for c in range(10):
        folder = root / f"class{c}"
        folder.mkdir(parents=True, exist_ok=True)
        for k, i in enumerate((labels == c).nonzero()[0][:per_class]):
            Image.fromarray(images[i]).resize((size, size), Image.BILINEAR).save(folder / f"{k:05d}.jpg", quality=90)
            count += 1
    return count


def write_config(path: Path, root: Path, cache_dir: Path, threads: int, batch: int) -> None:
    path.write_text(f"""
[run]
threads = {threads}
cache_dir = "{cache_dir}"

[loader]
batch_size = {batch}
prefetch = 0

[dataset]
plugin = "image-folder"
root = "{root}"
resize = 256
interpolation = "bilinear"
crop = 224
channels = 1
test_fraction = 0.0
val_size = 0

[model]
plugin = "mlp"
""")


def loom_epochs(config: Path, sets: list[str], epochs: int) -> dict:
    cmd = [str(BENCH), str(config), "--epochs", str(epochs + 1)]
    for s in sets:
        cmd += ["--set", s]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    rows = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    steady = rows[1:] if len(rows) > 1 else rows
    return {"samples_per_second": statistics.median(r["samples_per_second"] for r in steady),
            "first_epoch": rows[0]["samples_per_second"], "setup_seconds": rows[0]["setup_seconds"],
            "samples": rows[0]["samples"], "cmd": " ".join(shlex.quote(c) for c in cmd)}


SEED_LOADER = r'''
import sys, time, statistics, json, numpy as np, torch
from torch.utils.data import Dataset, DataLoader
files, labels = sys.argv[1], sys.argv[2]
workers, batch, epochs, threads = map(int, sys.argv[3:7])
torch.set_num_threads(threads)
paths = open(files).read().split()
targets = np.load(labels)
class NpyPerSample(Dataset):          # the seed: __getitem__ loads one preprocessed .npy
    def __len__(self): return len(paths)
    def __getitem__(self, i): return torch.from_numpy(np.load(paths[i])), int(targets[i])
loader = DataLoader(NpyPerSample(), batch_size=batch, shuffle=True, num_workers=workers,
                    persistent_workers=workers > 0)
rates = []
for e in range(epochs + 1):
    start = time.perf_counter(); check = 0.0
    for x, y in loader: check += float(x.view(-1)[0])
    rates.append(len(paths) / (time.perf_counter() - start))
print(json.dumps({"samples_per_second": statistics.median(rates[1:] or rates), "first_epoch": rates[0]}))
'''


def seed_epochs(files: Path, labels: Path, workers: int, batch: int, epochs: int, threads: int) -> dict:
    out = subprocess.run([sys.executable, "-c", SEED_LOADER, str(files), str(labels), str(workers), str(batch),
                          str(epochs), str(threads)], check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def raw_read(path: Path, repeats: int) -> float:
    """Bytes per second of a sequential read of `path` in 16 MiB chunks (median; page cache warm)."""
    rates = []
    for _ in range(repeats + 1):
        start = time.perf_counter()
        with open(path, "rb", buffering=0) as f:
            while f.read(16 << 20):
                pass
        rates.append(path.stat().st_size / (time.perf_counter() - start))
    return statistics.median(rates[1:])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--per-class", type=int, default=400)
    ap.add_argument("--size", type=int, default=256, help="side of the generated JPEG files")
    ap.add_argument("--epochs", type=int, default=3, help="timed epochs after one warm-up epoch")
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--keep", type=Path, help="work directory to keep (default: a temporary one)")
    args = ap.parse_args()

    ensure_pillow()
    subprocess.run(["cmake", "--build", str(BUILD), "--target", "loom_bench_data", "loom", "-j2"], check=True,
                   stdout=subprocess.DEVNULL)
    work_ctx = tempfile.TemporaryDirectory(prefix="loom-bench-cache-") if args.keep is None else None
    work = Path(work_ctx.name) if work_ctx else args.keep
    work.mkdir(parents=True, exist_ok=True)
    root, cache_dir, config = work / "images", work / "cache", work / "bench.toml"
    t = time.perf_counter()
    n = make_image_folder(root, args.per_class, args.size)
    print(f"generated {n} JPEG files ({args.size}x{args.size}) in {time.perf_counter() - t:.1f} s under {root}")
    write_config(config, root, cache_dir, args.threads, args.batch)

    rows = {}
    rows["no cache"] = loom_epochs(config, ["cache.plugin=none"], max(1, args.epochs - 1))
    rows["memory (float32)"] = loom_epochs(config, ["cache.plugin=memory"], args.epochs)
    for store in ("auto", "uint8"):
        sets = ["cache.plugin=npy", f"cache.store_dtype={store}"]
        build = [str(LOOM), "cache", "build", str(config)] + [a for s in sets for a in ("--set", s)]
        subprocess.run(build, check=True, capture_output=True)
        rows[f"npy ({'float32' if store == 'auto' else store})"] = loom_epochs(config, sets, args.epochs)

    # The seed's per-sample files: the npy cache's rows (float32, the same preprocessed bytes), one file each.
    import numpy as np
    data_files = sorted(cache_dir.rglob("data.npy"), key=lambda p: p.stat().st_size)
    data_path = data_files[-1]  # the float32 cache (the larger one)
    data = np.load(data_path, mmap_mode="r")
    per_sample = work / "per-sample"
    per_sample.mkdir(exist_ok=True)
    paths = []
    for i in range(data.shape[0]):
        p = per_sample / f"{i:06d}.npy"
        np.save(p, np.ascontiguousarray(data[i]))
        paths.append(str(p))
    (work / "files.txt").write_text("\n".join(paths))
    np.save(work / "labels.npy", np.load(data_path.parent / "labels.npy"))
    for workers in (0, 2):
        rows[f"seed: np.load per sample, DataLoader workers={workers}"] = seed_epochs(
            work / "files.txt", work / "labels.npy", workers, args.batch, args.epochs, args.threads)

    bytes_per_sample = data_path.stat().st_size / data.shape[0]
    raw = raw_read(data_path, args.epochs) / bytes_per_sample
    rows["raw sequential read of data.npy"] = {"samples_per_second": raw}

    npy = rows["npy (float32)"]["samples_per_second"]
    uncached = rows["no cache"]["samples_per_second"]
    seed = max(rows[k]["samples_per_second"] for k in rows if k.startswith("seed"))
    print()
    print(f"machine: {platform.node()}, {os.cpu_count()} cores; threads {args.threads}; batch {args.batch}; "
          f"{n} samples of 1x224x224 float32 ({bytes_per_sample / 1024:.0f} KiB each); median of {args.epochs} epochs")
    print()
    print("| loader | samples/s | vs no cache | vs seed loader | raw read / this |")
    print("|---|---:|---:|---:|---:|")
    for name, r in rows.items():
        s = r["samples_per_second"]
        print(f"| {name} | {s:,.0f} | {s / uncached:.1f}x | {s / seed:.2f}x | {raw / s:.2f}x |")
    print()
    checks = {"npy_vs_uncached": npy / uncached, "npy_vs_seed": npy / seed, "raw_vs_npy": raw / npy}
    print(f"npy vs uncached: {checks['npy_vs_uncached']:.1f}x (target >= {TARGETS['npy_vs_uncached']:.0f}x) "
          f"{'met' if checks['npy_vs_uncached'] >= TARGETS['npy_vs_uncached'] else 'NOT met'}")
    print(f"npy vs seed's best per-sample loader: {checks['npy_vs_seed']:.2f}x (target >= {TARGETS['npy_vs_seed']:.0f}x) "
          f"{'met' if checks['npy_vs_seed'] >= TARGETS['npy_vs_seed'] else 'NOT met'}")
    print(f"raw read vs npy: {checks['raw_vs_npy']:.2f}x (target <= {TARGETS['raw_vs_npy']:.0f}x) "
          f"{'met' if checks['raw_vs_npy'] <= TARGETS['raw_vs_npy'] else 'NOT met'}")
    print()
    print("Loom commands:")
    for name, r in rows.items():
        if "cmd" in r:
            print(f"  {name}: {r['cmd']}")
    if work_ctx:
        work_ctx.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
