#!/usr/bin/env python3
"""Data parallelism on one CPU host: 1 rank x 2 threads against 2 ranks x 1 thread (mpi communicator).

Both train the quickstart model (configs/quickstart.toml: the CNN, fp32) on the same Fashion-MNIST subset
with the same global batch (128 = 1 x 128 = 2 x 64), side by side, --repeats times each, alternating.
Reported per configuration: the median training throughput (samples/s, from metrics.jsonl, epochs after
the first), and for the 2-rank runs the share of the epoch rank 0 spent in the gradient all-reduce
(grad_allreduce_seconds / epoch_seconds; it includes waiting for the slower rank).

    python3 tests/bench/bench_distributed.py                      # the benchmark (a few minutes)
    python3 tests/bench/bench_distributed.py --fraction 0.02 --epochs 2 --repeats 1   # a smoke run
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
LOOM = REPO / "build" / "bin" / "loom"
MPIRUN = REPO / "tests" / "distributed" / "mpirun.sh"
CONFIG = REPO / "configs" / "quickstart.toml"


def epochs_of(out_dir: Path) -> list[dict]:
    [run_dir] = list((out_dir / "quickstart").iterdir())
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines() if "epoch" in line]


def run(cmd: list[str]) -> None:
    result = subprocess.run(cmd, capture_output=True, text=True)
    if result.returncode != 0:
        sys.exit(f"failed: {shlex.join(cmd)}\n{result.stdout}\n{result.stderr}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--fraction", type=float, default=0.2, help="labeled_fraction of the training set")
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()

    common = ["--set", "run.device=cpu", "--set", f"run.epochs={args.epochs}",
              "--set", f"dataset.labeled_fraction={args.fraction}", "--set", "loader.prefetch=0"]
    variants = {
        "1 rank x 2 threads": lambda out: [str(LOOM), "run", str(CONFIG), "--set", f"run.output_dir={out}",
                                           "--set", "run.threads=2", "--set", "loader.batch_size=128", *common],
        "2 ranks x 1 thread": lambda out: ["bash", str(MPIRUN), "-np", "2", str(LOOM), "run", str(CONFIG),
                                           "--set", f"run.output_dir={out}", "--set", "run.threads=1",
                                           "--set", "loader.batch_size=64", "--set", "communicator.plugin=mpi",
                                           *common],
    }
    rates = {k: [] for k in variants}
    shares, commands = [], {}
    with tempfile.TemporaryDirectory(prefix="loom-bench-ddp-") as tmp:
        for r in range(args.repeats):
            for name, make in variants.items():
                out = Path(tmp) / f"{name.replace(' ', '_')}-{r}"
                cmd = make(out)
                commands[name] = shlex.join(cmd)
                run(cmd)
                epochs = epochs_of(out)[1:] or epochs_of(out)
                rates[name].append(statistics.median(e["samples_per_second"] for e in epochs))
                if "grad_allreduce_seconds" in epochs[0]:
                    shares.append(statistics.median(e["grad_allreduce_seconds"] / e["epoch_seconds"] for e in epochs))
    one, two = (statistics.median(rates[k]) for k in variants)
    print(f"machine: {os.cpu_count()} cores; quickstart CNN, fp32, global batch 128, "
          f"{args.fraction:.0%} of the training set, median of {args.repeats} runs (epochs 2..{args.epochs})")
    print()
    print("| configuration | samples/s | ratio | all-reduce share of the epoch |")
    print("|---|---:|---:|---:|")
    print(f"| 1 rank x 2 threads | {one:,.0f} | 1.00x | - |")
    print(f"| 2 ranks x 1 thread (mpi) | {two:,.0f} | {two / one:.2f}x | {statistics.median(shares):.1%} |")
    print()
    for name, cmd in commands.items():
        print(f"{name}: {cmd}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
