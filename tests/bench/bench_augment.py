#!/usr/bin/env python3
"""Augmentation throughput: Loom's batched ops vs a torch.utils.data.DataLoader with torchvision.transforms.v2.

Loom: build/bin/loom_bench_augment (tests/bench/bench_augment.cpp) loads the op plugins from the build's
plugin dir and times, per batch, uint8 pixels → normalised floats → the ops, one generator per batch, as
the host runs a pipeline per micro-batch. Python: a Dataset of the same uint8 images, each sample through
torchvision.transforms.v2 (the same ops, then ToDtype + Normalize), collated by a DataLoader with
num_workers 0 and 2. Both sides: torch.set_num_threads(T) (DataLoader workers run 1 thread each);
--threads 1,2 runs both counts.

Pipelines: crop+flip+erasing (random-crop padding 4, horizontal flip, random-erasing p 0.5 value 0), and
randaugment+erasing when the randaugment plugin is built (RandAugment defaults: 2 ops, magnitude 9).
Shapes: Fashion-MNIST-sized 1x28x28 and 3x224x224.

    python3 tests/bench/bench_augment.py [--build build] [--threads 1,2] [--repeats 3] [--output FILE]
"""
import argparse
import json
import os
import shlex
import subprocess
import sys
import time
from pathlib import Path

import torch
from torch.utils.data import DataLoader, Dataset
from torchvision.transforms import v2

ROOT = Path(__file__).resolve().parents[2]
MEAN, STD = 0.5, 0.25  # the stand-in dataset's Normalize (loom_bench_augment declares the same pixel affine)
SHAPES = {"1x28x28": ((1, 28, 28), 256, 20), "3x224x224": ((3, 224, 224), 64, 6)}  # shape, batch, batches


def pipelines(has_randaugment):
    crop = (["random-crop padding=4", "flip", "random-erasing"],
            lambda h, w: [v2.RandomCrop((h, w), padding=4), v2.RandomHorizontalFlip()])
    out = {"crop+flip+erasing": crop}
    if has_randaugment:
        out["randaugment+erasing"] = (["randaugment", "random-erasing"], lambda h, w: [v2.RandAugment()])
    return out


class Images(Dataset):
    def __init__(self, pixels, labels, transform):
        self.pixels, self.labels, self.transform = pixels, labels, transform

    def __len__(self):
        return len(self.labels)

    def __getitem__(self, i):
        return self.transform(self.pixels[i]), self.labels[i]


def python_rate(shape, batch, batches, pixel_ops, workers, threads):
    torch.set_num_threads(threads)
    c, h, w = shape
    g = torch.Generator().manual_seed(1)
    pixels = torch.randint(0, 256, (batch * batches, c, h, w), dtype=torch.uint8, generator=g)
    labels = torch.randint(0, 10, (batch * batches,), generator=g)
    transform = v2.Compose(pixel_ops(h, w) + [v2.ToDtype(torch.float32, scale=True), v2.Normalize([MEAN] * c, [STD] * c),
                                              v2.RandomErasing(p=0.5, value=0)])
    loader = DataLoader(Images(pixels, labels, transform), batch_size=batch, num_workers=workers,
                        persistent_workers=workers > 0)
    for _ in loader:  # warm-up epoch: worker start-up and first-call costs
        pass
    start = time.perf_counter()
    checksum = 0.0
    for x, _ in loader:
        checksum += float(x[0].sum())
    return batch * batches / (time.perf_counter() - start)


def loom_command(bench, plugin_dir, shape, batch, batches, ops, threads):
    cmd = [str(bench), "--plugin-dir", str(plugin_dir), "--shape", ",".join(map(str, shape)), "--batch", str(batch),
           "--batches", str(batches), "--threads", str(threads)]
    for op in ops:
        cmd += ["--op", op]
    return cmd


def loom_rate(cmd):
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])["samples_per_second"]


def median(values):
    return sorted(values)[len(values) // 2]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--build", default=str(ROOT / "build"))
    ap.add_argument("--threads", default="2", help="intra-op threads per side; a comma list runs each")
    ap.add_argument("--repeats", type=int, default=3, help="runs per side; the table shows the median")
    ap.add_argument("--shapes", default=",".join(SHAPES))
    ap.add_argument("--no-build", action="store_true", help="do not build loom_bench_augment and the op plugins")
    ap.add_argument("--output", help="append the markdown report to this file")
    args = ap.parse_args()
    build = Path(args.build)
    targets = ["loom_bench_augment", "loom_augmentation_random_crop", "loom_augmentation_flip",
               "loom_augmentation_random_erasing"]
    if not args.no_build:
        subprocess.run(["cmake", "--build", str(build), "-j2", "--target", *targets], check=True,
                       stdout=subprocess.DEVNULL)
        subprocess.run(["cmake", "--build", str(build), "-j2", "--target", "loom_augmentation_randaugment"],
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # absent until that op lands
    bench, plugin_dir = build / "bin" / "loom_bench_augment", build / "plugins"
    has_ra = subprocess.run([str(bench), "--plugin-dir", str(plugin_dir), "--has", "randaugment"]).returncode == 0

    rows, commands = [], []
    load_before = os.getloadavg()[0]
    for threads in map(int, args.threads.split(",")):
        for name, (loom_ops, pixel_ops) in pipelines(has_ra).items():
            for shape_name in args.shapes.split(","):
                shape, batch, batches = SHAPES[shape_name]
                cmd = loom_command(bench, plugin_dir, shape, batch, batches, loom_ops, threads)
                commands.append(shlex.join(cmd))
                loom, py0, py2 = [], [], []
                for _ in range(args.repeats):
                    loom.append(loom_rate(cmd))
                    py0.append(python_rate(shape, batch, batches, pixel_ops, 0, threads))
                    py2.append(python_rate(shape, batch, batches, pixel_ops, 2, threads))
                row = (name, shape_name, batch, threads, median(loom), median(py0), median(py2))
                rows.append(row)
                print(f"{name} {shape_name} {threads}t: loom {row[4]:.0f}/s, python w0 {row[5]:.0f}/s, "
                      f"w2 {row[6]:.0f}/s", file=sys.stderr)

    lines = ["| pipeline | sample | batch | threads | Loom (samples/s) | DataLoader w=0 | DataLoader w=2 | "
             "Loom / best DataLoader |", "|---|---|---:|---:|---:|---:|---:|---:|"]
    for name, shape_name, batch, threads, loom, py0, py2 in rows:
        lines.append(f"| {name} | {shape_name} | {batch} | {threads} | {loom:.0f} | {py0:.0f} | {py2:.0f} | "
                     f"{loom / max(py0, py2):.2f}× |")
    invocation = "python3 tests/bench/bench_augment.py " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    report = "\n".join(lines + ["", f"Median of {args.repeats}; {os.cpu_count()} cores, load average "
                                    f"{load_before:.1f} before and {os.getloadavg()[0]:.1f} after; randaugment "
                                    f"{'included' if has_ra else 'not built: left out'}.",
                                "", "Command: `" + invocation.strip() + "`", "", "Loom side, per pipeline and shape:", ""]
                       + ["    " + c for c in commands])
    print(report)
    if args.output:
        with open(args.output, "a") as f:
            f.write(report + "\n")


if __name__ == "__main__":
    main()
