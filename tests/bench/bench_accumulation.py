#!/usr/bin/env python3
"""Gradient accumulation's cost: peak tensor memory and throughput of the quickstart CNN at one
effective batch (256) split as micro-batch x steps = 256x1, 64x4, 16x16.

    python3 tests/bench/bench_accumulation.py [--samples 11000] [--repeats 3] [--threads N] [--output FILE]

Runs `loom` (build/bin/loom) once per setting and repeat, alternating settings, one epoch each on the
first --samples labeled Fashion-MNIST images; reads samples_per_second and peak_memory_mb (the host's
counting CPU allocator: peak bytes of live tensors during the epoch, dataset included) from metrics.jsonl
and prints medians as a markdown table. Memory should follow the micro-batch; throughput pays for the
smaller kernels."""
import argparse
import datetime
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SETTINGS = [(256, 1), (64, 4), (16, 16)]


def run(loom: Path, micro: int, steps: int, samples: int, threads: int, out: Path) -> dict:
    fraction = samples / 60000.0   # val_size = 0: the labeled split is drawn from all 60000
    out.mkdir(parents=True, exist_ok=True)
    config = out / f"m{micro}.toml"
    config.write_text(f"""[run]
name = "m{micro}"
epochs = 1
threads = {threads}
device = "cpu"
output_dir = "{out}"
[loader]
batch_size = {micro}
[dataset]
plugin = "fashion-mnist"
labeled_fraction = {fraction!r}
val_size = 0
[model]
plugin = "cnn"
[optimizer]
name = "adamw"
lr = 0.002
[accumulation]
plugin = "fixed"
steps = {steps}
""")
    r = subprocess.run([str(loom), "run", str(config)], capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit(f"loom failed:\n{r.stdout}\n{r.stderr}")
    run_dir = sorted((out / f"m{micro}").iterdir())[-1]
    return json.loads((run_dir / "metrics.jsonl").read_text().splitlines()[-1])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--loom", default=str(ROOT / "build/bin/loom"))
    ap.add_argument("--samples", type=int, default=11000)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--output", help="append the markdown table to this file")
    args = ap.parse_args()
    loom = Path(args.loom)
    if not loom.exists():
        sys.exit(f"{loom} not found: build Loom first (./build.sh build)")
    results = {s: [] for s in SETTINGS}
    with tempfile.TemporaryDirectory(prefix="loom-bench-acc-") as tmp:
        for rep in range(args.repeats):
            for micro, steps in SETTINGS:
                m = run(loom, micro, steps, args.samples, args.threads, Path(tmp) / f"r{rep}")
                results[(micro, steps)].append(m)
                print(f"  {micro}x{steps} run {rep + 1}: {m['samples_per_second']:.0f} samples/s, "
                      f"peak {m['peak_memory_mb']:.0f} MiB", file=sys.stderr)
    base = statistics.median(m["samples_per_second"] for m in results[SETTINGS[0]])
    lines = [f"### Accumulation cost on the quickstart CNN ({datetime.date.today()})", "",
             f"- command: `python3 tests/bench/bench_accumulation.py {' '.join(sys.argv[1:])}`".rstrip(),
             f"- {args.samples} Fashion-MNIST samples, 1 epoch, effective batch 256, AdamW, CPU, "
             f"{args.threads} threads, median of {args.repeats} runs (settings alternated)", "",
             "| micro-batch x steps | samples/s | vs 256x1 | peak tensor memory (MiB) | optimizer steps |",
             "|---|---|---|---|---|"]
    for micro, steps in SETTINGS:
        rs = results[(micro, steps)]
        sps = statistics.median(m["samples_per_second"] for m in rs)
        mem = statistics.median(m["peak_memory_mb"] for m in rs)
        lines.append(f"| {micro}x{steps} | {sps:.0f} | {sps / base:.2f} | {mem:.0f} | {rs[0]['optimizer_steps']} |")
    text = "\n".join(lines) + "\n"
    print(text)
    if args.output:
        with open(args.output, "a", encoding="utf-8") as f:
            f.write("\n" + text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
