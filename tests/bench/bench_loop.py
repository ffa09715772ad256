#!/usr/bin/env python3
"""Epoch time of Loom's C++ training loop against a plain Python PyTorch loop.

Both sides train the same model (the quickstart CNN, the default MLP) on the same Fashion-MNIST
samples, in the same order per epoch, with the same initial weights, hyper-parameters and intra-op
thread count, on the CPU. The Python side is written like the seed note's train_epoch: a
torch.utils.data.Dataset that preprocesses one item per __getitem__, a DataLoader (num_workers=0),
and loss.item() every step. Only the training epoch is timed on either side (Loom's epoch_seconds
from metrics.jsonl; time.perf_counter around the Python epoch loop); validation, data loading from
disk and model construction are not.

    python3 tests/bench/bench_loop.py                       # the benchmark (quiet machine, a few minutes)
    python3 tests/bench/bench_loop.py --limit 512 --repeats 1 --threads 1   # a smoke run

See tests/bench/README.md.
"""

from __future__ import annotations

import argparse
import datetime
import gzip
import json
import math
import os
import platform
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
DEFAULT_LOOM = REPO / "build" / "bin" / "loom"
DEFAULT_ROOT = "/usr/share/datasets/fashion-mnist"
TARGETS = {"cnn": 0.8, "mlp": 0.5}  # Loom's epoch time must be at most this fraction of Python's

# Mirrors of Loom's defaults (plugins/dataset/fashion-mnist, plugins/model/*, host/resolve.cpp).
N_TRAIN = 60000
VAL_SIZE = 5000
SPLIT_SEED = 0
MEAN, STD = 0.2860, 0.3530
STAGE = "supervised"  # the stage name of the self_training plugin "none"

FNV_OFFSET = 1469598103934665603
FNV_PRIME = 1099511628211
MASK64 = (1 << 64) - 1


# ---------------------------------------------------------------------------------------------------
# Loom's seeding and data split, reproduced
# ---------------------------------------------------------------------------------------------------

def derive_seed(seed: int, stream: str) -> int:
    """host/run_context.cpp derive_seed: FNV-1a 64 over the seed's 8 little-endian bytes, then the name."""
    h = FNV_OFFSET
    for byte in (seed & MASK64).to_bytes(8, "little") + stream.encode():
        h = ((h ^ byte) * FNV_PRIME) & MASK64
    return h


def llround(x: float) -> int:
    """std::llround: halves away from zero."""
    return int(math.floor(abs(x) + 0.5)) * (1 if x >= 0 else -1)


def labeled_indices(torch, labeled_fraction: float):
    """FashionMnist::make_splits with labeled_per_class = 0: sorted dataset indices of the labeled split."""
    order = torch.randperm(N_TRAIN, generator=torch.Generator().manual_seed(SPLIT_SEED))
    rest = order[VAL_SIZE:]
    count = llround(labeled_fraction * rest.numel())
    return torch.sort(rest[:count]).values


def epoch_order(torch, n: int, run_seed: int, epoch: int):
    """Trainer::train: positions into the labeled split for one epoch (loader.shuffle = true)."""
    gen = torch.Generator().manual_seed(derive_seed(run_seed, f"order/{STAGE}/epoch{epoch}"))
    return torch.randperm(n, generator=gen)


def fraction_for(limit: int | None) -> tuple[float, int]:
    """labeled_fraction that makes Loom keep exactly `limit` labeled samples (same double arithmetic)."""
    rest = N_TRAIN - VAL_SIZE
    if limit is None:
        return 1.0, rest
    if not 1 <= limit <= rest:
        raise SystemExit(f"--limit must be between 1 and {rest}")
    fraction = limit / rest
    assert llround(fraction * rest) == limit
    return fraction, limit


# ---------------------------------------------------------------------------------------------------
# Models: the C++ architectures, layer for layer (creation order matters: it fixes the initial weights)
# ---------------------------------------------------------------------------------------------------

def build_model(torch, name: str):
    nn = torch.nn
    if name == "cnn":  # plugins/model/cnn/cnn.cpp, quickstart values: channels [32, 64], hidden 128, dropout 0.25
        layers, c_in, side = [], 1, 28
        for c_out in (32, 64):
            layers += [nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(),
                       nn.MaxPool2d(2)]
            c_in, side = c_out, side // 2
        features = nn.Sequential(*layers)
        head = nn.Sequential(nn.Linear(c_in * side * side, 128), nn.ReLU(), nn.Dropout(0.25), nn.Linear(128, 10))

        class Cnn(nn.Module):
            def __init__(self):
                super().__init__()
                self.features, self.head = features, head

            def forward(self, x):
                return self.head(self.features(x).flatten(1))

        return Cnn()
    if name == "mlp":  # plugins/model/mlp/mlp.cpp defaults: hidden [256, 128], no dropout, no batchnorm
        return nn.Sequential(nn.Flatten(1), nn.Linear(784, 256), nn.ReLU(), nn.Linear(256, 128), nn.ReLU(),
                             nn.Linear(128, 10))
    raise ValueError(name)


def expected_parameters(name: str) -> int:
    """Parameter count of the C++ model, computed by hand from the plugin's source."""
    if name == "cnn":
        conv = 1 * 32 * 9 + 32 * 64 * 9           # bias(false) when batchnorm is on
        bn = 2 * 32 + 2 * 64                       # weight + bias (running stats are buffers)
        head = (64 * 7 * 7) * 128 + 128 + 128 * 10 + 10
        return conv + bn + head
    return 784 * 256 + 256 + 256 * 128 + 128 + 128 * 10 + 10


# ---------------------------------------------------------------------------------------------------
# The Python side (runs in a child process: a fresh process per run, like loom)
# ---------------------------------------------------------------------------------------------------

def read_idx_gz(path: Path):
    import numpy as np
    with gzip.open(path, "rb") as f:
        data = bytearray(f.read())  # writable, so torch.from_numpy does not warn
    ndim = data[3]
    dims = [int.from_bytes(data[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim)]
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)


def python_worker(spec: dict) -> dict:
    import torch
    from torch.utils.data import DataLoader, Dataset, Sampler

    torch.set_num_threads(spec["threads"])
    # loom: the k-th create_model() of a run is seeded with derive_seed(seed, "model/<k>"); this is the first
    torch.manual_seed(derive_seed(spec["seed"], "model/0"))
    root = Path(spec["root"])
    images = read_idx_gz(root / "train-images-idx3-ubyte.gz")
    labels = read_idx_gz(root / "train-labels-idx1-ubyte.gz")
    labeled = labeled_indices(torch, spec["labeled_fraction"]).tolist()
    # loom's FashionMnist::load computes x * scale + shift in float32 with these double scalars
    scale, shift = 1.0 / (255.0 * STD), -MEAN / STD

    class FashionMnistTrain(Dataset):
        """Like the seed's dataset: one preprocessed (image, label) pair per __getitem__."""

        def __init__(self, images, labels, indices):
            self.images, self.labels, self.indices = images, labels, indices

        def __len__(self):
            return len(self.indices)

        def __getitem__(self, i):
            j = self.indices[i]
            x = torch.from_numpy(self.images[j]).to(torch.float32).mul_(scale).add_(shift).unsqueeze(0)
            return x, int(self.labels[j])

    class EpochOrder(Sampler):
        """Loom's per-epoch order: randperm seeded with derive_seed(seed, "order/supervised/epoch<e>")."""

        def __init__(self, n):
            self.n, self.order = n, []

        def set_epoch(self, epoch):
            self.order = epoch_order(torch, self.n, spec["seed"], epoch).tolist()

        def __iter__(self):
            return iter(self.order)

        def __len__(self):
            return self.n

    device = torch.device("cpu")
    model = build_model(torch, spec["model"]).to(device)
    dataset = FashionMnistTrain(images, labels, labeled)
    sampler = EpochOrder(len(dataset))
    # A generator of its own: the DataLoader draws a base seed per iterator, which would otherwise shift
    # the global RNG (dropout) away from loom's sequence.
    train_loader = DataLoader(dataset, batch_size=spec["batch_size"], sampler=sampler, num_workers=0,
                              generator=torch.Generator())
    optimizer = torch.optim.AdamW(model.parameters(), lr=spec["lr"], weight_decay=spec["weight_decay"])
    loss_fn = torch.nn.CrossEntropyLoss()

    def train_epoch():
        model.train()
        total_loss = 0.0
        losses = []
        for images_b, targets in train_loader:
            images_b, targets = images_b.to(device), targets.to(device)
            outputs = model(images_b)
            loss = loss_fn(outputs, targets)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            value = loss.item()
            total_loss += value
            losses.append(value)
        return total_loss / len(train_loader), losses

    epochs = []
    for epoch in range(spec["epochs"]):
        sampler.set_epoch(epoch)
        start = time.perf_counter()
        mean_batch_loss, losses = train_epoch()
        seconds = time.perf_counter() - start
        n = len(dataset)
        sizes = [min(spec["batch_size"], n - s) for s in range(0, n, spec["batch_size"])]
        epochs.append({
            "epoch_seconds": seconds,
            # sample-weighted like loom's train_loss; the seed's batch mean is kept too
            "train_loss": sum(v * b for v, b in zip(losses, sizes)) / n,
            "seed_style_loss": mean_batch_loss,
            "samples_per_second": n / seconds,
        })
    return {
        "epochs": epochs,
        "threads": torch.get_num_threads(),
        "samples": len(dataset),
        "parameters": sum(p.numel() for p in model.parameters()),
    }


# ---------------------------------------------------------------------------------------------------
# The driver
# ---------------------------------------------------------------------------------------------------

def loom_config(args, model: str, out_dir: Path, fraction: float) -> str:
    model_table = ('plugin = "cnn"\nchannels = [32, 64]\nbatchnorm = true\nhidden = 128\ndropout = 0.25'
                   if model == "cnn" else 'plugin = "mlp"\nhidden = [256, 128]\ndropout = 0.0\nbatchnorm = false')
    return f"""# Written by tests/bench/bench_loop.py
[run]
name = "bench-{model}"
seed = {args.seed}
epochs = {args.epochs}
device = "cpu"
threads = {args.threads}
output_dir = {json.dumps(str(out_dir))}

[loader]
batch_size = {args.batch_size}
prefetch = -1
shuffle = true

[dataset]
plugin = "fashion-mnist"
root = {json.dumps(args.data_root)}
val_size = {VAL_SIZE}
split_seed = {SPLIT_SEED}
labeled_per_class = 0
labeled_fraction = {fraction!r}
normalize = "standard"

[model]
{model_table}

[optimizer]
name = "adamw"
lr = {args.lr!r}
weight_decay = {args.weight_decay!r}

[lr_schedule]
name = "constant"
warmup_steps = 0

[cache]
plugin = "none"

[precision]
plugin = "fp32"

[accumulation]
plugin = "none"

[self_training]
plugin = "none"
"""


def fail(message: str, output: str = "") -> None:
    if output:
        sys.stderr.write(output if output.endswith("\n") else output + "\n")
    raise SystemExit(f"bench_loop: {message}")


def run_loom(args, model: str, fraction: float, scratch: Path, index: int) -> dict:
    out_dir = scratch / f"loom-{model}-{index}"
    config = scratch / f"{model}.toml"
    config.write_text(loom_config(args, model, out_dir, fraction))
    cmd = [str(args.loom), "run", str(config)]
    proc = subprocess.run(cmd, cwd=scratch, capture_output=True, text=True)
    if proc.returncode != 0:
        fail(f"loom exited with status {proc.returncode}: {shlex.join(cmd)}", proc.stdout + proc.stderr)
    files = sorted(out_dir.glob(f"bench-{model}/*/metrics.jsonl"))
    if len(files) != 1:
        fail(f"expected one metrics.jsonl under {out_dir}, found {len(files)}", proc.stdout + proc.stderr)
    records = [json.loads(line) for line in files[0].read_text().splitlines() if line.strip()]
    records = [r for r in records if "epoch_seconds" in r]
    if len(records) != args.epochs:
        fail(f"{files[0]} holds {len(records)} epoch records, expected {args.epochs}")
    if any(r["threads"] != args.threads for r in records):
        fail(f"loom trained with {records[0]['threads']} threads, asked for {args.threads}")
    labeled = next((line for line in proc.stderr.splitlines() if "labeled " in line), "")
    return {"epochs": records, "log": labeled}


def run_python(args, model: str, fraction: float) -> dict:
    spec = {"model": model, "threads": args.threads, "seed": args.seed, "epochs": args.epochs,
            "batch_size": args.batch_size, "lr": args.lr, "weight_decay": args.weight_decay,
            "root": args.data_root, "labeled_fraction": fraction}
    cmd = [sys.executable, str(Path(__file__).resolve()), "--_worker", json.dumps(spec)]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        fail(f"the Python loop exited with status {proc.returncode}", proc.stdout + proc.stderr)
    return json.loads(proc.stdout.strip().splitlines()[-1])


def epoch_time(result: dict) -> float:
    """One run's epoch time: the mean over its epochs (a single epoch by default)."""
    return statistics.fmean(e["epoch_seconds"] for e in result["epochs"])


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", default="cnn,mlp", help="comma-separated: cnn, mlp (default: both)")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1,
                        help="intra-op threads on both sides (default: os.cpu_count() = %(default)s)")
    parser.add_argument("--repeats", type=int, default=3, help="runs per side, alternating (default 3)")
    parser.add_argument("--epochs", type=int, default=1, help="epochs per run (default 1)")
    parser.add_argument("--limit", type=int, default=None,
                        help="smoke runs only: train on N labeled samples instead of 55000 (both sides)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--lr", type=float, default=0.002)
    parser.add_argument("--weight-decay", type=float, default=0.01)
    parser.add_argument("--data-root", default=DEFAULT_ROOT, help="directory of the four *-ubyte.gz files")
    parser.add_argument("--loom", type=Path, default=DEFAULT_LOOM, help="loom binary (default build/bin/loom)")
    parser.add_argument("--output", type=Path, help="append the markdown report to this file")
    parser.add_argument("--keep", action="store_true", help="keep the scratch directory (configs, run dirs)")
    parser.add_argument("--_worker", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args._worker:
        print(json.dumps(python_worker(json.loads(args._worker))))
        return 0

    models = [m.strip() for m in args.models.split(",") if m.strip()]
    for m in models:
        if m not in TARGETS:
            parser.error(f"unknown model '{m}' in --models (choose from {', '.join(TARGETS)})")
    if min(args.threads, args.repeats, args.epochs, args.batch_size) < 1:
        parser.error("--threads, --repeats, --epochs and --batch-size must be at least 1")
    args.loom = args.loom.resolve()
    if not args.loom.is_file() or not os.access(args.loom, os.X_OK):
        fail(f"{args.loom} not found; build Loom first: ./build.sh build")
    missing = [f for f in ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz")
               if not (Path(args.data_root) / f).is_file()]
    if missing:
        fail(f"{', '.join(missing)} missing under {args.data_root} (install Debian's dataset-fashion-mnist "
             "package or pass --data-root)")
    args.data_root = str(Path(args.data_root).resolve())
    fraction, samples = fraction_for(args.limit)

    import torch
    command = shlex.join([sys.executable, os.path.relpath(Path(__file__).resolve(), Path.cwd())] + argv)
    version = subprocess.run([str(args.loom), "--version"], capture_output=True, text=True).stdout.strip()
    print(f"# {len(models)} model(s) x {args.repeats} repeat(s) x 2 sides, {args.epochs} epoch(s) of {samples} "
          f"samples, {args.threads} thread(s)", flush=True)

    scratch = Path(tempfile.mkdtemp(prefix="loom-bench-"))
    rows, details = [], []
    try:
        for model in models:
            loom_runs, py_runs = [], []
            for r in range(args.repeats):
                loom_runs.append(run_loom(args, model, fraction, scratch, r))
                print(f"  {model} run {r + 1}/{args.repeats}: loom {epoch_time(loom_runs[-1]):.3f} s", end="",
                      flush=True)
                py_runs.append(run_python(args, model, fraction))
                print(f", python {epoch_time(py_runs[-1]):.3f} s", flush=True)
            if f"labeled {samples}," not in loom_runs[0]["log"]:
                fail(f"loom did not train on {samples} labeled samples: {loom_runs[0]['log']}")
            params = py_runs[0]["parameters"]
            if params != expected_parameters(model):
                fail(f"the Python {model} has {params} parameters, the C++ one {expected_parameters(model)}")
            loom_s = statistics.median(epoch_time(x) for x in loom_runs)
            py_s = statistics.median(epoch_time(x) for x in py_runs)
            ratio = loom_s / py_s
            rows.append((model, args.threads, loom_s, py_s, ratio, TARGETS[model], ratio <= TARGETS[model]))
            loom_loss = loom_runs[0]["epochs"][-1]["train_loss"]
            py_loss = py_runs[0]["epochs"][-1]["train_loss"]
            details.append(
                f"- {model}: {params} parameters on both sides (C++ count from the plugin source: "
                f"{expected_parameters(model)}); epoch s per run: loom "
                f"{', '.join(f'{epoch_time(x):.3f}' for x in loom_runs)}; python "
                f"{', '.join(f'{epoch_time(x):.3f}' for x in py_runs)}; final train loss (sample mean, last epoch, "
                f"first run): loom {loom_loss:.6f}, python {py_loss:.6f} (|diff| {abs(loom_loss - py_loss):.1e}; "
                f"seed-style batch mean "
                f"{py_runs[0]['epochs'][-1]['seed_style_loss']:.6f}); samples/s at the median epoch time: loom "
                f"{samples / loom_s:.0f}, python {samples / py_s:.0f}")
    finally:
        if args.keep:
            print(f"# scratch kept: {scratch}")
        else:
            shutil.rmtree(scratch, ignore_errors=True)

    lines = [
        f"### Loom vs a Python PyTorch loop: epoch time ({datetime.datetime.now().astimezone():%Y-%m-%d %H:%M %Z})",
        "",
        f"- command: `{command}`",
        f"- CPU: {cpu_model()} ({os.cpu_count()} logical cores); {version or 'loom'}; Python torch "
        f"{torch.__version__}; Python {platform.python_version()}",
        f"- fashion-mnist, {samples} training samples per epoch in loom's order, batch {args.batch_size}, "
        f"AdamW lr {args.lr:g} wd {args.weight_decay:g}, constant LR, seed {args.seed}, {args.epochs} epoch(s), "
        f"median of {args.repeats} run(s) per side (alternating), CPU, validation excluded",
    ]
    if args.limit is not None:
        lines.append(f"- **smoke run (--limit {args.limit})**: both sides train on the same {samples} samples "
                     f"(loom's labeled_fraction {fraction:.6g}), not the 55000 of the benchmark; these times say "
                     "nothing about the targets")
    lines += [
        "",
        "| model | threads | loom epoch s (median) | python epoch s (median) | ratio loom/python | target | met? |",
        "|---|---|---|---|---|---|---|",
    ]
    for model, threads, loom_s, py_s, ratio, target, met in rows:
        lines.append(f"| {model} | {threads} | {loom_s:.3f} | {py_s:.3f} | {ratio:.2f} | ≤ {target} | "
                     f"{'yes' if met else 'no'} |")
    lines += [""] + details + [""]
    report = "\n".join(lines)
    print(report)
    if args.output:
        with open(args.output, "a") as f:
            f.write(report + "\n")
        print(f"# appended to {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
