#!/usr/bin/env bash
# CPU step time of the precision plugins on the quickstart model (not a timed test).
#
# Trains the quickstart CNN (channels [32, 64], hidden 128, AdamW, batch 128) on synthetic 1×28×28
# images with 10 classes — Fashion-MNIST's shapes, so the per-step work is the quickstart's, without its
# data loading or its 10,000-image test pass — for 2 epochs per run, and reads the second epoch's
# epoch_seconds and samples_per_second from metrics.jsonl (the first epoch carries oneDNN/allocator
# warm-up). Prints the medians over the runs side by side, the ratio to fp32 and the exact commands.
#
#   tests/bench/bench_precision.sh                                   # fp32 vs amp-bf16, 5 runs each
#   REPEATS=3 SAMPLES=1280 PRECISIONS="fp32 amp-bf16 amp-fp16" tests/bench/bench_precision.sh
#   LOOM=/opt/loom/bin/loom THREADS=1 tests/bench/bench_precision.sh
#
# Numbers from a machine that is doing something else are noisy; say so when you quote them.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
LOOM="${LOOM:-$REPO/build/bin/loom}"
REPEATS="${REPEATS:-5}"
SAMPLES="${SAMPLES:-2560}"       # training images per epoch (20 steps of 128)
THREADS="${THREADS:-0}"          # 0 = every core
PRECISIONS="${PRECISIONS:-fp32 amp-bf16}"

[[ -x "$LOOM" ]] || { echo "no loom binary at $LOOM (build first, or set LOOM=)" >&2; exit 2; }
WORK="$(mktemp -d /tmp/loom-bench-precision.XXXXXX)"
trap 'rm -rf "$WORK"' EXIT

cat > "$WORK/bench.toml" <<TOML
# The quickstart's model, optimizer and loader on synthetic data of Fashion-MNIST's shape.
[run]
name = "bench-precision"
seed = 0
epochs = 2
device = "cpu"
threads = $THREADS
output_dir = "out"

[loader]
batch_size = 128
prefetch = 2

[dataset]
plugin = "synthetic"
samples = $SAMPLES
test_samples = 1
val_fraction = 0.0
classes = 10
channels = 1
height = 28
width = 28

[model]
plugin = "cnn"
channels = [32, 64]
hidden = 128
dropout = 0.25

[optimizer]
name = "adamw"
lr = 0.002
weight_decay = 0.01

[lr_schedule]
name = "one-cycle"
pct_start = 0.25
TOML

flags="$(grep -m1 '^flags' /proc/cpuinfo | tr ' ' '\n' | grep -E '^(avx2|avx512f|avx512_bf16|avx512_fp16|amx_bf16|amx_fp16|amx_tile)$' | tr '\n' ' ' || true)"
echo "CPU: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //'), $(nproc) cores; relevant flags: ${flags:-none}"
echo "torch: $(python3 -c 'import torch; print(torch.__version__)' 2>/dev/null || echo '?'); load average: $(cut -d' ' -f1-3 /proc/loadavg)"
echo

for p in $PRECISIONS; do
  for i in $(seq 1 "$REPEATS"); do
    cmd=("$LOOM" run "$WORK/bench.toml" --set "precision.plugin=$p" --set "run.output_dir=$WORK/out/$p/$i")
    [[ $p == fp32 && $i == 1 ]] && echo "command: ${cmd[*]/$WORK/\$WORK}" && echo
    "${cmd[@]}" > "$WORK/$p-$i.log" 2>&1 || { echo "run failed: ${cmd[*]}" >&2; cat "$WORK/$p-$i.log" >&2; exit 1; }
  done
done

python3 - "$WORK/out" "$PRECISIONS" "$REPEATS" <<'PY'
import json, pathlib, statistics, sys
out, precisions, repeats = pathlib.Path(sys.argv[1]), sys.argv[2].split(), int(sys.argv[3])
rows = {}
for p in precisions:
    secs, sps = [], []
    for f in sorted((out / p).glob("*/bench-precision/*/metrics.jsonl")):
        last = [json.loads(l) for l in f.read_text().splitlines() if l.strip()][-1]
        secs.append(last["epoch_seconds"]); sps.append(last["samples_per_second"])
    rows[p] = (statistics.median(secs), statistics.median(sps), min(secs), max(secs), len(secs))
base = rows.get("fp32", next(iter(rows.values())))[0]
print("| precision | runs | epoch s (median) | min–max s | samples/s (median) | time vs fp32 |")
print("|---|---|---|---|---|---|")
for p, (s, v, lo, hi, n) in rows.items():
    print(f"| {p} | {n} | {s:.2f} | {lo:.2f}–{hi:.2f} | {v:.0f} | {s / base:.2f}× |")
PY
