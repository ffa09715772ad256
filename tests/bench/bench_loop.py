#!/usr/bin/env python3
"""Epoch time of Loom's C++ training loop against two Python PyTorch loops, and against a compute floor.

All three sides train the same model (the quickstart CNN, the default MLP) on the same Fashion-MNIST
samples, in the same order per epoch, with the same initial weights, hyper-parameters and intra-op
thread count, on the CPU:

- loom: `loom run` with Loom's defaults (the config sets no optimizer implementation or memory format;
  --loom-set adds `--set KEY=VALUE` overrides to compare variants);
- seed-style Python: written like the seed note's train_epoch: a torch.utils.data.Dataset that
  preprocesses one item per __getitem__, a DataLoader (num_workers=0), loss.item() every step;
- tuned Python: what a performance-minded PyTorch user writes: the labeled split preprocessed once into
  one float tensor (untimed), each batch an index_select by the epoch order, channels-last model and
  batches (CNN only), AdamW(fused=True), zero_grad(set_to_none=True), the sample-weighted loss summed in
  a tensor with one .item() per epoch.

Only the training epoch is timed (Loom's epoch_seconds from metrics.jsonl; time.perf_counter around
each Python epoch loop); validation, data loading from disk and model construction are not. The compute
floor is the training step's GEMM/convolution FLOPs (counted analytically from the architecture) divided
by the sgemm rate measured with torch.mm on the same cores and thread count.

    python3 tests/bench/bench_loop.py                       # the benchmark (quiet machine, several minutes)
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
# Loom's epoch time must be at most this fraction of the seed-style / tuned Python loop's (None: no target)
TARGETS = {"cnn": {"seed": 0.6, "tuned": 0.85}, "mlp": {"seed": 0.4, "tuned": None}}
# Loom's ms/step must be at most this multiple of the compute floor (None: reported, no target)
FLOOR_TARGETS = {"cnn": 2.0, "mlp": None}
SIDES = ("loom", "seed", "tuned")  # run in this order within each repeat
SIDE_NAMES = {"loom": "loom", "seed": "seed-style", "tuned": "tuned"}
# |tuned - seed-style| final train loss above this means the order/init reproduction is broken
LOSS_AGREEMENT = 1e-2
SGEMM_N = 1024
SGEMM_WARMUP = 3
SGEMM_TIMED = 15

# Mirrors of Loom's defaults (plugins/dataset/fashion-mnist, plugins/model/*, host/config/resolve.cpp).
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
    """host/plugins/run_context.cpp derive_seed: FNV-1a 64 over the seed's 8 little-endian bytes, then the name."""
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


def forward_macs(name: str) -> list[tuple[str, str, int]]:
    """Multiply-accumulates of one sample's forward pass through the GEMM-like layers, in order:
    (layer, formula, MACs). Built from the same architecture constants as build_model."""
    layers = []
    if name == "cnn":
        c_in, side = 1, 28
        for k, c_out in enumerate((32, 64), 1):  # 3x3 convolutions, padding 1: output side = input side
            layers.append((f"conv{k}", f"{side}*{side}*{c_out}*9*{c_in}", side * side * c_out * 9 * c_in))
            c_in, side = c_out, side // 2         # then a 2x2 max-pool
        dims = [c_in * side * side, 128, 10]
    elif name == "mlp":
        dims = [784, 256, 128, 10]
    else:
        raise ValueError(name)
    for k, (a, b) in enumerate(zip(dims, dims[1:]), 1):
        layers.append((f"linear{k}", f"{a}*{b}", a * b))
    return layers


def training_flops(name: str) -> tuple[int, str]:
    """FLOPs of one sample's training step in the GEMM-like layers, and the formula as text.

    Training = forward + two backward GEMMs per layer (weight gradient, input gradient) = 3x the forward
    MACs, less the first layer's input gradient (the images need no grad). FLOPs = 2 x MACs. BatchNorm,
    ReLU, pooling, dropout, the loss and the optimizer (element-wise, memory-bound) are not counted."""
    layers = forward_macs(name)
    fwd = sum(m for _, _, m in layers)
    macs = 3 * fwd - layers[0][2]
    terms = " + ".join(f"{n} {f}" for n, f, _ in layers)
    text = (f"forward MACs/sample = {terms} = {fwd:,}; training MACs = 3 x {fwd:,} - {layers[0][0]} input "
            f"gradient {layers[0][2]:,} = {macs:,}; FLOPs = 2 x MACs = {2 * macs:,} per sample")
    return 2 * macs, text


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


def worker_setup(spec: dict):
    """What both Python sides share: threads, loom's model seed, the raw data, the labeled split, the
    preprocessing and the model (created right after the seed, as loom creates it)."""
    import types

    import torch

    torch.set_num_threads(spec["threads"])
    # loom: the k-th create_model() of a run is seeded with derive_seed(seed, "model/<k>"); this is the first
    torch.manual_seed(derive_seed(spec["seed"], "model/0"))
    root = Path(spec["root"])
    images = read_idx_gz(root / "train-images-idx3-ubyte.gz")
    labels = read_idx_gz(root / "train-labels-idx1-ubyte.gz")
    labeled = labeled_indices(torch, spec["labeled_fraction"])  # own generator: the global RNG is untouched
    # loom's FashionMnist::load computes x * scale + shift in float32 with these double scalars
    scale, shift = 1.0 / (255.0 * STD), -MEAN / STD

    def preprocess(uint8_images):
        """uint8 [..., 28, 28] -> float32 [..., 1, 28, 28], the same arithmetic for one image or many."""
        return torch.from_numpy(uint8_images).to(torch.float32).mul_(scale).add_(shift).unsqueeze(-3)

    model = build_model(torch, spec["model"])
    return types.SimpleNamespace(torch=torch, images=images, labels=labels, labeled=labeled,
                                 preprocess=preprocess, model=model, n=labeled.numel())


def train_epochs(spec: dict, setup, run_epoch, prepare=lambda order: order) -> dict:
    """The per-epoch driver both Python sides share. Each epoch's order (positions into the labeled
    split) is loom's: randperm seeded with derive_seed(seed, "order/supervised/epoch<e>"). prepare(order)
    runs untimed; run_epoch(prepared) trains one epoch and returns (sample-weighted mean loss, extra
    fields), and only it is timed."""
    torch = setup.torch
    epochs = []
    for epoch in range(spec["epochs"]):
        prepared = prepare(epoch_order(torch, setup.n, spec["seed"], epoch))
        start = time.perf_counter()
        train_loss, extra = run_epoch(prepared)
        seconds = time.perf_counter() - start
        epochs.append({"epoch_seconds": seconds, "train_loss": train_loss,
                       "samples_per_second": setup.n / seconds, **extra})
    return {
        "epochs": epochs,
        "threads": torch.get_num_threads(),
        "samples": setup.n,
        "parameters": sum(p.numel() for p in setup.model.parameters()),
    }


def seed_worker(spec: dict) -> dict:
    """The seed note's style: per-sample Dataset, DataLoader + default collate, loss.item() every step."""
    setup = worker_setup(spec)
    torch = setup.torch
    from torch.utils.data import DataLoader, Dataset, Sampler

    class FashionMnistTrain(Dataset):
        """Like the seed's dataset: one preprocessed (image, label) pair per __getitem__."""

        def __init__(self, images, labels, indices):
            self.images, self.labels, self.indices = images, labels, indices

        def __len__(self):
            return len(self.indices)

        def __getitem__(self, i):
            j = self.indices[i]
            return setup.preprocess(self.images[j]), int(self.labels[j])

    class EpochOrder(Sampler):
        """Feeds the epoch's order (set before each epoch) to the DataLoader."""

        def __init__(self, n):
            self.n, self.order = n, []

        def __iter__(self):
            return iter(self.order)

        def __len__(self):
            return self.n

    device = torch.device("cpu")
    model = setup.model.to(device)
    dataset = FashionMnistTrain(setup.images, setup.labels, setup.labeled.tolist())
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

    def set_order(order):
        sampler.order = order.tolist()

    def run_epoch(_):
        mean_batch_loss, losses = train_epoch()
        n = len(dataset)
        sizes = [min(spec["batch_size"], n - s) for s in range(0, n, spec["batch_size"])]
        # sample-weighted like loom's train_loss; the seed's batch mean is kept too
        return sum(v * b for v, b in zip(losses, sizes)) / n, {"seed_style_loss": mean_batch_loss}

    return train_epochs(spec, setup, run_epoch, prepare=set_order)


def tuned_worker(spec: dict) -> dict:
    """A performance-minded PyTorch loop: a tensor-batch loader over the split preprocessed once,
    channels-last (CNN), fused AdamW, zero_grad(set_to_none=True), one .item() per epoch."""
    setup = worker_setup(spec)
    torch = setup.torch
    channels_last = spec["model"] == "cnn"  # 4-d activations only; the MLP flattens at once
    memory_format = torch.channels_last if channels_last else torch.contiguous_format

    # Untimed: the whole labeled split as one float tensor [n, 1, 28, 28] and its labels, in split order.
    labeled = setup.labeled.numpy()
    data = setup.preprocess(setup.images[labeled]).contiguous(memory_format=memory_format)
    targets_all = torch.from_numpy(setup.labels[labeled].astype("int64"))

    model = setup.model.to(memory_format=memory_format)  # values unchanged: same initial weights
    optimizer = torch.optim.AdamW(model.parameters(), lr=spec["lr"], weight_decay=spec["weight_decay"],
                                  fused=True)
    loss_fn = torch.nn.CrossEntropyLoss()
    batch = spec["batch_size"]

    def run_epoch(order):
        model.train()
        total = torch.zeros((), dtype=torch.float64)  # sum of loss x batch size, never synced per step
        for s in range(0, setup.n, batch):
            idx = order[s:s + batch]
            images_b = data.index_select(0, idx).contiguous(memory_format=memory_format)
            targets = targets_all.index_select(0, idx)
            loss = loss_fn(model(images_b), targets)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            total.add_(loss.detach(), alpha=idx.numel())
        return total.item() / setup.n, {}

    result = train_epochs(spec, setup, run_epoch)
    result["memory_format"] = "channels_last" if channels_last else "contiguous"
    result["fused"] = bool(optimizer.defaults.get("fused"))
    return result


def sgemm_worker(spec: dict) -> dict:
    """The sgemm rate on these cores at this thread count: the median of several timed
    SGEMM_N^3 float32 torch.mm after a warm-up."""
    import torch

    torch.set_num_threads(spec["threads"])
    n = SGEMM_N
    gen = torch.Generator().manual_seed(0)
    a, b = torch.randn(n, n, generator=gen), torch.randn(n, n, generator=gen)
    c = torch.empty(n, n)
    for _ in range(SGEMM_WARMUP):
        torch.mm(a, b, out=c)
    times = []
    for _ in range(SGEMM_TIMED):
        start = time.perf_counter()
        torch.mm(a, b, out=c)
        times.append(time.perf_counter() - start)
    seconds = statistics.median(times)
    return {"threads": torch.get_num_threads(), "seconds": seconds, "flops_per_second": 2 * n ** 3 / seconds,
            "times": times}


WORKERS = {"seed": seed_worker, "tuned": tuned_worker, "sgemm": sgemm_worker}


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

# No [optimizer] implementation and no [precision] memory_format: Loom's defaults are what is measured
# (--loom-set compares variants).
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
    for setting in args.loom_set:
        cmd += ["--set", setting]
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
    # what loom chose with its defaults (optimizer implementation, memory format), if this loom logs it
    chosen = next((line.split("': ", 1)[1] for line in proc.stderr.splitlines()
                   if f"stage '{STAGE}': optimizer " in line), "")
    return {"epochs": records, "log": labeled, "chosen": chosen, "threads": records[0]["threads"]}


def run_worker(args, spec: dict, what: str) -> dict:
    """One Python side (or the sgemm measurement) in a fresh child process, like each loom run."""
    cmd = [sys.executable, str(Path(__file__).resolve()), "--_worker", json.dumps(spec)]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        fail(f"{what} exited with status {proc.returncode}", proc.stdout + proc.stderr)
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    if result["threads"] != args.threads:
        fail(f"{what} ran with {result['threads']} threads, asked for {args.threads}")
    return result


def run_python(args, model: str, fraction: float, side: str) -> dict:
    spec = {"side": side, "model": model, "threads": args.threads, "seed": args.seed, "epochs": args.epochs,
            "batch_size": args.batch_size, "lr": args.lr, "weight_decay": args.weight_decay,
            "root": args.data_root, "labeled_fraction": fraction}
    return run_worker(args, spec, f"the {SIDE_NAMES[side]} Python loop ({model})")


def run_sgemm(args) -> dict:
    return run_worker(args, {"side": "sgemm", "threads": args.threads}, "the sgemm measurement")


def epoch_time(result: dict) -> float:
    """One run's epoch time: the mean over its epochs (a single epoch by default)."""
    return statistics.fmean(e["epoch_seconds"] for e in result["epochs"])


def final_loss(result: dict) -> float:
    """Sample-weighted mean train loss of the last epoch (loom's train_loss; the Python sides compute the same)."""
    return result["epochs"][-1]["train_loss"]


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def fmt_target(target) -> str:
    return "—" if target is None else f"≤ {target:g}"


def fmt_met(value: float, target) -> str:
    return "—" if target is None else ("yes" if value <= target else "no")


def loom_setting(text: str) -> str:
    key, sep, value = text.partition("=")
    if not sep or "." not in key or not value or any(c.isspace() for c in key):
        raise argparse.ArgumentTypeError(f"expected TABLE.KEY=VALUE, got {text!r}")
    return text


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", default="cnn,mlp", help="comma-separated: cnn, mlp (default: both)")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1,
                        help="intra-op threads on every side and for the sgemm rate "
                             "(default: os.cpu_count() = %(default)s)")
    parser.add_argument("--repeats", type=int, default=3,
                        help="runs per side; each repeat runs loom, seed-style, tuned, sgemm (default 3)")
    parser.add_argument("--epochs", type=int, default=1, help="epochs per run (default 1)")
    parser.add_argument("--limit", type=int, default=None,
                        help="smoke runs only: train on N labeled samples instead of 55000 (all sides)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--lr", type=float, default=0.002)
    parser.add_argument("--weight-decay", type=float, default=0.01)
    parser.add_argument("--data-root", default=DEFAULT_ROOT, help="directory of the four *-ubyte.gz files")
    parser.add_argument("--loom", type=Path, default=DEFAULT_LOOM, help="loom binary (default build/bin/loom)")
    parser.add_argument("--loom-set", action="append", default=[], type=loom_setting, metavar="KEY=VALUE",
                        help="append `--set KEY=VALUE` to the loom command line (repeatable), e.g. "
                             "optimizer.implementation=foreach; the default measures Loom's defaults")
    parser.add_argument("--output", type=Path, help="append the markdown report to this file")
    parser.add_argument("--keep", action="store_true", help="keep the scratch directory (configs, run dirs)")
    parser.add_argument("--_worker", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args._worker:
        spec = json.loads(args._worker)
        print(json.dumps(WORKERS[spec["side"]](spec)))
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
    steps = math.ceil(samples / args.batch_size)
    smoke = args.limit is not None

    import torch
    command = shlex.join([sys.executable, os.path.relpath(Path(__file__).resolve(), Path.cwd())] + argv)
    version = subprocess.run([str(args.loom), "--version"], capture_output=True, text=True).stdout.strip()
    print(f"# {len(models)} model(s) x {args.repeats} repeat(s) x 3 sides + sgemm, {args.epochs} epoch(s) of "
          f"{samples} samples, {args.threads} thread(s)", flush=True)

    scratch = Path(tempfile.mkdtemp(prefix="loom-bench-"))
    T = args.threads
    rows, floor_rows, details, problems = [], [], [], []
    try:
        for model in models:
            runs = {side: [] for side in SIDES}
            sgemm_runs = []
            for r in range(args.repeats):
                print(f"  {model} run {r + 1}/{args.repeats}, {T} thread(s):", end="", flush=True)
                for side in SIDES:
                    result = (run_loom(args, model, fraction, scratch, r) if side == "loom"
                              else run_python(args, model, fraction, side))
                    runs[side].append(result)
                    print(f" {SIDE_NAMES[side]} {epoch_time(result):.3f} s,", end="", flush=True)
                sgemm_runs.append(run_sgemm(args))
                print(f" sgemm {sgemm_runs[-1]['flops_per_second'] / 1e9:.1f} GFLOP/s", flush=True)

            if f"labeled {samples}," not in runs["loom"][0]["log"]:
                fail(f"loom did not train on {samples} labeled samples: {runs['loom'][0]['log']}")
            for side in ("seed", "tuned"):
                params = runs[side][0]["parameters"]
                if params != expected_parameters(model):
                    fail(f"the {SIDE_NAMES[side]} Python {model} has {params} parameters, the C++ one "
                         f"{expected_parameters(model)}")
                if runs[side][0]["samples"] != samples:
                    fail(f"the {SIDE_NAMES[side]} Python loop trained on {runs[side][0]['samples']} samples, "
                         f"expected {samples}")

            loss = {side: final_loss(runs[side][0]) for side in SIDES}
            tuned_vs_seed = abs(loss["tuned"] - loss["seed"])
            if tuned_vs_seed > LOSS_AGREEMENT:
                message = (f"{model}: the tuned loop's final loss {loss['tuned']:.6f} differs from the seed-style "
                           f"loop's {loss['seed']:.6f} by {tuned_vs_seed:.1e} > {LOSS_AGREEMENT:g}: the tuned "
                           "side does not reproduce the samples, order or initial weights")
                if smoke:
                    fail(message)
                problems.append(message)  # a full run: keep the measured report, flag it, exit non-zero

            med = {side: statistics.median(epoch_time(x) for x in runs[side]) for side in SIDES}
            ratio_seed, ratio_tuned = med["loom"] / med["seed"], med["loom"] / med["tuned"]
            tgt = TARGETS[model]
            rows.append(f"| {model} | {T} | {med['loom']:.3f} | {med['seed']:.3f} | {med['tuned']:.3f} | "
                        f"{ratio_seed:.2f} | {fmt_target(tgt['seed'])} | {fmt_met(ratio_seed, tgt['seed'])} | "
                        f"{ratio_tuned:.2f} | {fmt_target(tgt['tuned'])} | {fmt_met(ratio_tuned, tgt['tuned'])} |")

            rate = statistics.median(x["flops_per_second"] for x in sgemm_runs)
            per_sample, formula = training_flops(model)
            step_flops = per_sample * samples / steps  # the mean step (the last batch may be partial)
            floor_ms = step_flops / rate * 1e3
            ms = {side: med[side] / steps * 1e3 for side in SIDES}
            loom_floor = ms["loom"] / floor_ms
            ftgt = FLOOR_TARGETS[model]
            floor_rows.append(
                f"| {model} | {T} | {rate / 1e9:.1f} | {step_flops / 1e9:.3f} | {floor_ms:.2f} | {ms['loom']:.2f} | "
                f"{ms['seed']:.2f} | {ms['tuned']:.2f} | {loom_floor:.2f} | {ms['tuned'] / floor_ms:.2f} | "
                f"{fmt_target(ftgt)} | {fmt_met(loom_floor, ftgt)} |")

            per_run = "; ".join(f"{SIDE_NAMES[side]} " + ", ".join(f"{epoch_time(x):.3f}" for x in runs[side])
                                for side in SIDES)
            tuned0 = runs["tuned"][0]
            details.append(
                f"- {model} ({T} thread(s) on every side): {runs['seed'][0]['parameters']} parameters on both "
                f"Python sides (C++ count from the plugin source: {expected_parameters(model)}); epoch s per "
                f"run: {per_run}; samples/s at the median epoch time: "
                + ", ".join(f"{SIDE_NAMES[side]} {samples / med[side]:.0f}" for side in SIDES)
                + f"; loom's log: {runs['loom'][0]['chosen'] or '(no optimizer line)'}; tuned side: "
                f"{tuned0['memory_format']} model and batches, AdamW fused={tuned0['fused']}.")
            details.append(
                f"  - final train loss (sample-weighted mean, last epoch, first run): loom {loss['loom']:.6f}, "
                f"seed-style {loss['seed']:.6f}, tuned {loss['tuned']:.6f}; |loom − seed-style| "
                f"{abs(loss['loom'] - loss['seed']):.1e}, |loom − tuned| {abs(loss['loom'] - loss['tuned']):.1e}, "
                f"|tuned − seed-style| {tuned_vs_seed:.1e} (checked ≤ {LOSS_AGREEMENT:g}"
                f"{'' if tuned_vs_seed <= LOSS_AGREEMENT else ': **FAILED**'}); seed-style batch mean "
                f"{runs['seed'][0]['epochs'][-1]['seed_style_loss']:.6f}")
            details.append(
                f"  - floor ({T} thread(s)): {formula}; step FLOPs = {per_sample:,} x {samples} samples / {steps} "
                f"steps = {step_flops:,.0f}; sgemm {SGEMM_N}³ float32 torch.mm at {T} thread(s), median of "
                f"{SGEMM_TIMED} after {SGEMM_WARMUP} warm-up per run: "
                + ", ".join(f"{x['flops_per_second'] / 1e9:.1f}" for x in sgemm_runs)
                + " GFLOP/s (median used)")
    finally:
        if args.keep:
            print(f"# scratch kept: {scratch}")
        else:
            shutil.rmtree(scratch, ignore_errors=True)

    lines = [
        f"### Loom vs Python PyTorch loops: epoch time ({datetime.datetime.now().astimezone():%Y-%m-%d %H:%M %Z})",
        "",
        f"- command: `{command}`",
        f"- CPU: {cpu_model()} ({os.cpu_count()} logical cores); {T} intra-op thread(s) on every side and for "
        f"the sgemm rate; {version or 'loom'}; Python torch {torch.__version__}; Python {platform.python_version()}",
        f"- fashion-mnist, {samples} training samples per epoch ({steps} steps) in loom's order, batch "
        f"{args.batch_size}, AdamW lr {args.lr:g} wd {args.weight_decay:g}, constant LR, seed {args.seed}, "
        f"{args.epochs} epoch(s), median of {args.repeats} run(s) per side (each repeat runs loom, seed-style, "
        "tuned, then the sgemm measurement), CPU, validation excluded",
        "- sides: **loom** with its defaults (no `[optimizer] implementation`, no `[precision] memory_format` in "
        "the config)"
        + (f", plus `{' '.join('--set ' + x for x in args.loom_set)}`" if args.loom_set else "")
        + "; **seed-style** Python (per-sample `Dataset`, `DataLoader`, `loss.item()` every step); **tuned** "
        "Python (split preprocessed once into one tensor, `index_select` batches, channels-last for the CNN, "
        "`AdamW(fused=True)`, `zero_grad(set_to_none=True)`, one `.item()` per epoch)",
    ]
    if args.loom_set:
        lines.append("- **loom overrides in effect**: this is not Loom's default configuration; overrides that "
                     "change the training (not only its implementation) also change the loss agreement")
    if smoke:
        lines.append(f"- **smoke run (--limit {args.limit})**: every side trains on the same {samples} samples "
                     f"(loom's labeled_fraction {fraction:.6g}), not the 55000 of the benchmark; these times say "
                     "nothing about the targets")
    lines += [
        "",
        "| model | threads | loom s | seed-style s | tuned s | loom/seed | target | met? | loom/tuned | target | "
        "met? |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
        *rows,
        "",
        "Compute floor: the training step's conv/linear FLOPs over the measured sgemm rate (ms/step = median "
        "epoch s / steps):",
        "",
        "| model | threads | sgemm GFLOP/s | step GFLOP | floor ms/step | loom ms/step | seed-style ms/step | "
        "tuned ms/step | loom/floor | tuned/floor | target | met? |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
        *floor_rows,
        "",
        *details,
        "",
    ]
    if problems:
        lines += ["**CHECK FAILED** — the timings above are not a valid comparison:", ""]
        lines += [f"- {m}" for m in problems] + [""]
    report = "\n".join(lines)
    print(report)
    if args.output:
        with open(args.output, "a") as f:
            f.write(report + "\n")
        print(f"# appended to {args.output}")
    if problems:
        fail("; ".join(problems))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
