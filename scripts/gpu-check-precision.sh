#!/usr/bin/env bash
# Precision section of the CUDA checks (to be folded into scripts/gpu-check.sh). Builds nothing: run it
# from the repository root of a built Loom on a CUDA machine (build/bin/loom; build/tests/loom_tests if
# the tests were built). Budget: about 5 minutes of GPU time with the default REPEATS=3 (scripts/gpu-check.sh
# gives its precision stage at most 200 s: rows are printed as they come, so a cut run keeps what it had;
# run this script alone as a second device call for the full table).
#
#   1. the CUDA variants of the precision tests (scaler vs torch.amp.GradScaler('cuda') bit for bit,
#      autocast dtypes vs torch.autocast('cuda')), if build/tests/loom_tests exists
#   2. throughput and peak GPU memory of fp32, TF32 (fp32 with tf32 = true), amp-bf16 and amp-fp16 on a
#      CNN at 3×128×128 with synthetic data, side by side with a plain Python loop of the same model
#      (torch.autocast + torch.amp.GradScaler('cuda') for fp16; TF32 through torch.backends flags)
#
#   3. ResNet-18 (CIFAR stem) on synthetic 3x32x32, batch 512, amp-bf16, fused AdamW, channels_last: Loom
#      against a Python eager loop of the same model (torch.autocast, AdamW(fused=True)) — issue 14's
#      target is Loom >= 1.1x Python's samples/s with no more peak memory (RESNET=0 skips it)
#
# The table of step 2 runs REPEATS times (default 3) so its spread shows (issue 14: Loom's mixed-precision
# throughput did not reproduce between two runs); each row is one run.
#
# Peak memory is nvidia-smi's memory.used, sampled every 100 ms while each run lasts, minus the idle
# value before it: the same measure for Loom and Python (CUDA context + caching allocator's reserve).
#
#   scripts/gpu-check-precision.sh                 # everything
#   STEPS_ONLY=1 scripts/gpu-check-precision.sh    # skip the gtest part
set -euo pipefail

LOOM="${LOOM:-build/bin/loom}"
TESTS="${TESTS:-build/tests/loom_tests}"
PYTHON="${PYTHON:-python3}"
SIZE="${SIZE:-128}"            # image height = width
BATCH="${BATCH:-128}"
SAMPLES="${SAMPLES:-3072}"     # training images per epoch (24 steps of 128)
CHANNELS="${CHANNELS:-[64, 128, 256, 256]}"
REPEATS="${REPEATS:-3}"
RESNET="${RESNET:-1}"
[[ -x "$LOOM" ]] || { echo "no loom binary at $LOOM" >&2; exit 2; }
command -v nvidia-smi > /dev/null || { echo "nvidia-smi not found: not a CUDA machine?" >&2; exit 2; }
WORK="$(mktemp -d /tmp/loom-gpu-precision.XXXXXX)"
trap 'rm -rf "$WORK"' EXIT
status=0

echo "## Precision checks on $(nvidia-smi --query-gpu=name,driver_version --format=csv,noheader | head -1)"
echo

# --- 1. CUDA variants of the precision tests ------------------------------------------------------
if [[ -z "${STEPS_ONLY:-}" && -x "$TESTS" ]]; then
  if ! timeout 120 "$TESTS" --gtest_filter='PrecisionPlugins.*Cuda*:PrecisionPlugins.*Exactly:PrecisionPlugins.AutocastScope*' \
      > "$WORK/gtest.log" 2>&1; then
    status=1; tail -40 "$WORK/gtest.log"
  fi
  grep -E '^\[  (PASSED|FAILED|SKIPPED) ' "$WORK/gtest.log" || true
  grep -q 'SKIPPED.*Cuda' "$WORK/gtest.log" && { echo "CUDA tests were skipped: no CUDA device visible"; status=1; }
  echo
fi

# --- 2. throughput + peak memory ------------------------------------------------------------------
cat > "$WORK/bench.toml" <<TOML
[run]
name = "gpu-precision"
seed = 0
epochs = 2
device = "cuda"
output_dir = "out"

[loader]
batch_size = $BATCH
prefetch = 4
eval_batch_size = 256

[dataset]
plugin = "synthetic"
samples = $SAMPLES
test_samples = 256
val_fraction = 0.0
classes = 100
channels = 3
height = $SIZE
width = $SIZE

[model]
plugin = "cnn"
channels = $CHANNELS
hidden = 256
dropout = 0.1

[optimizer]
name = "adamw"
lr = 0.001
weight_decay = 0.01

[lr_schedule]
name = "cosine"
TOML

cat > "$WORK/ref.py" <<'PY'
# The same CNN and step as Loom's (Conv3x3-BN-ReLU-MaxPool blocks, Linear-ReLU-Dropout-Linear, AdamW,
# cross-entropy in float32), written the way the PyTorch AMP recipe says, timed over the same steps.
import json, sys, time, torch
import torch.nn as nn
mode, size, batch, samples, channels = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), json.loads(sys.argv[5])
torch.backends.cuda.matmul.allow_tf32 = mode == "tf32"
torch.backends.cudnn.allow_tf32 = mode == "tf32"
torch.backends.cudnn.benchmark = False
dev = "cuda"
layers, c, hw = [], 3, size
for out in channels:
    layers += [nn.Conv2d(c, out, 3, padding=1, bias=False), nn.BatchNorm2d(out), nn.ReLU(), nn.MaxPool2d(2)]
    c, hw = out, hw // 2
model = nn.Sequential(*layers, nn.Flatten(), nn.Linear(c * hw * hw, 256), nn.ReLU(), nn.Dropout(0.1), nn.Linear(256, 100)).to(dev)
opt = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.01)
amp_dtype = {"amp-bf16": torch.bfloat16, "amp-fp16": torch.float16}.get(mode)
scaler = torch.amp.GradScaler("cuda", enabled=mode == "amp-fp16")
x_all = torch.randn(samples, 3, size, size).pin_memory()
y_all = torch.randint(0, 100, (samples,)).pin_memory()
steps = samples // batch
def epoch():
    for i in range(steps):
        x = x_all[i * batch:(i + 1) * batch].to(dev, non_blocking=True)
        y = y_all[i * batch:(i + 1) * batch].to(dev, non_blocking=True)
        with torch.autocast("cuda", dtype=amp_dtype or torch.float32, enabled=amp_dtype is not None):
            logits = model(x)
        loss = nn.functional.cross_entropy(logits.float(), y)
        scaler.scale(loss).backward()
        scaler.step(opt)
        scaler.update()
        opt.zero_grad(set_to_none=True)
epoch()  # warm-up, like Loom's first epoch
torch.cuda.synchronize(); t = time.perf_counter()
epoch()
torch.cuda.synchronize(); s = time.perf_counter() - t
print(json.dumps({"samples_per_second": steps * batch / s, "max_allocated_mib": torch.cuda.max_memory_allocated() / 2**20}))
PY

used_mib() { nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits | head -1; }
# peak_of CMD...: runs CMD with memory.used sampled every 100 ms; prints the peak above idle (MiB) to fd 3.
peak_of() {
  local idle; idle="$(used_mib)"
  "$@" & local pid=$! peak="$idle"
  while kill -0 "$pid" 2> /dev/null; do
    local u; u="$(used_mib)"; (( u > peak )) && peak="$u"; sleep 0.1
  done
  local rc=0; wait "$pid" || rc=$?
  echo $(( peak - idle )) >&3
  return $rc
}

rows=()
for rep in $(seq "$REPEATS"); do
for mode in fp32 tf32 amp-bf16 amp-fp16; do
  case $mode in
    fp32) set_args=(--set precision.plugin=fp32) ;;
    tf32) set_args=(--set precision.plugin=fp32 --set precision.tf32=true --set precision.matmul_precision=high) ;;
    *) set_args=(--set "precision.plugin=$mode") ;;
  esac
  rm -rf "$WORK/out/$mode"
  loom_cmd=("$LOOM" run "$WORK/bench.toml" --set "run.output_dir=$WORK/out/$mode" "${set_args[@]}")
  if ! loom_peak="$(peak_of timeout 90 "${loom_cmd[@]}" 3>&1 > "$WORK/$mode.log" 2>&1)"; then
    echo "loom $mode failed:"; tail -20 "$WORK/$mode.log"; status=1; continue
  fi
  metrics="$(ls "$WORK"/out/"$mode"/gpu-precision/*/metrics.jsonl)"
  loom_sps="$("$PYTHON" -c "import json,sys; print(round([json.loads(l) for l in open(sys.argv[1]) if l.strip()][-1]['samples_per_second']))" "$metrics")"
  extra="$("$PYTHON" -c "import json,sys; r=[json.loads(l) for l in open(sys.argv[1]) if l.strip()][-1]; print(f\"scale {r['loss_scale']:g}, skipped {int(r['skipped_steps'])}\" if 'loss_scale' in r else '')" "$metrics")"
  if ! py_peak="$(peak_of timeout 90 "$PYTHON" "$WORK/ref.py" "$mode" "$SIZE" "$BATCH" "$SAMPLES" "$(echo "$CHANNELS" | tr -d ' ')" 3>&1 > "$WORK/$mode.py.json" 2> "$WORK/$mode.py.log")"; then
    echo "python $mode failed:"; tail -20 "$WORK/$mode.py.log"; status=1; continue
  fi
  py_sps="$("$PYTHON" -c "import json,sys; print(round(json.load(open(sys.argv[1]))['samples_per_second']))" "$WORK/$mode.py.json")"
  rows+=("| $mode | $rep | $loom_sps | $py_sps | $loom_peak | $py_peak | $extra |")
  echo "row (printed as it comes, in case a timeout cuts the run): ${rows[-1]}"
done
done

echo "### Throughput and peak memory: CNN $CHANNELS on 3×${SIZE}×${SIZE}, batch $BATCH, AdamW (2nd epoch of $SAMPLES images)"
echo
echo "| precision | run | Loom samples/s | Python samples/s | Loom peak MiB | Python peak MiB | Loom scaler (last epoch) |"
echo "|---|---|---|---|---|---|---|"
printf '%s\n' "${rows[@]}"
echo
echo "Loom: $LOOM run <bench.toml> --set precision.plugin=… (config printed by this script's source); Python: torch.autocast + torch.amp.GradScaler('cuda')."

# --- 3. ResNet-18 (CIFAR stem), bf16, against Python ------------------------------------------------
if [[ "$RESNET" == 1 ]]; then
  cat > "$WORK/resnet.toml" <<TOML
[run]
name = "gpu-resnet"
seed = 0
epochs = 2
device = "cuda"
output_dir = "out"

[loader]
batch_size = 512
prefetch = 4
eval_batch_size = 1024

[dataset]
plugin = "synthetic"
samples = 10240
test_samples = 512
val_fraction = 0.0
classes = 10
channels = 3
height = 32
width = 32

[model]
plugin = "resnet"
depth = 18
stem = "cifar"

[optimizer]
name = "adamw"
lr = 0.001
weight_decay = 0.01
implementation = "fused"

[precision]
plugin = "amp-bf16"
memory_format = "channels_last"
TOML
  cat > "$WORK/resnet.py" <<'PY'
# torchvision's ResNet-18 with the CIFAR stem (3x3/1 conv, no max-pool), written out (no torchvision on
# the GPU machine), channels_last, bf16 autocast, AdamW(fused=True): a performance-minded eager loop.
import json, time, torch
import torch.nn as nn
class Block(nn.Module):
    def __init__(self, cin, cout, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False); self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False); self.bn2 = nn.BatchNorm2d(cout)
        self.down = None
        if stride != 1 or cin != cout:
            self.down = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))
    def forward(self, x):
        y = torch.relu(self.bn1(self.conv1(x)))
        y = self.bn2(self.conv2(y))
        return torch.relu(y + (x if self.down is None else self.down(x)))
def resnet18(classes=10):
    layers, cin = [nn.Conv2d(3, 64, 3, 1, 1, bias=False), nn.BatchNorm2d(64), nn.ReLU()], 64
    for cout, stride in ((64, 1), (128, 2), (256, 2), (512, 2)):
        layers += [Block(cin, cout, stride), Block(cout, cout, 1)]; cin = cout
    return nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(512, classes))
dev, batch, samples = "cuda", 512, 10240
model = resnet18().to(dev).to(memory_format=torch.channels_last)
opt = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.01, fused=True)
x_all = torch.randn(samples, 3, 32, 32).pin_memory(); y_all = torch.randint(0, 10, (samples,)).pin_memory()
steps = samples // batch
def epoch():
    for i in range(steps):
        x = x_all[i * batch:(i + 1) * batch].to(dev, non_blocking=True).contiguous(memory_format=torch.channels_last)
        y = y_all[i * batch:(i + 1) * batch].to(dev, non_blocking=True)
        with torch.autocast("cuda", dtype=torch.bfloat16):
            logits = model(x)
        loss = nn.functional.cross_entropy(logits.float(), y)
        loss.backward(); opt.step(); opt.zero_grad(set_to_none=True)
epoch()
torch.cuda.synchronize(); t = time.perf_counter()
epoch()
torch.cuda.synchronize(); s = time.perf_counter() - t
print(json.dumps({"samples_per_second": steps * batch / s, "max_allocated_mib": torch.cuda.max_memory_allocated() / 2**20}))
PY
  resnet_rows=()
  for rep in $(seq "$REPEATS"); do
    rm -rf "$WORK/out/resnet"
    if ! loom_peak="$(peak_of timeout 120 "$LOOM" run "$WORK/resnet.toml" --set "run.output_dir=$WORK/out/resnet" 3>&1 > "$WORK/resnet.log" 2>&1)"; then
      echo "loom resnet-18 failed:"; tail -20 "$WORK/resnet.log"; status=1; break
    fi
    metrics="$(ls "$WORK"/out/resnet/gpu-resnet/*/metrics.jsonl)"
    loom_sps="$("$PYTHON" -c "import json,sys; print(round([json.loads(l) for l in open(sys.argv[1]) if l.strip()][-1]['samples_per_second']))" "$metrics")"
    if ! py_peak="$(peak_of timeout 120 "$PYTHON" "$WORK/resnet.py" 3>&1 > "$WORK/resnet.py.json" 2> "$WORK/resnet.py.log")"; then
      echo "python resnet-18 failed:"; tail -20 "$WORK/resnet.py.log"; status=1; break
    fi
    py_sps="$("$PYTHON" -c "import json,sys; print(round(json.load(open(sys.argv[1]))['samples_per_second']))" "$WORK/resnet.py.json")"
    ratio="$("$PYTHON" -c "import sys; print(f'{int(sys.argv[1]) / int(sys.argv[2]):.2f}')" "$loom_sps" "$py_sps")"
    resnet_rows+=("| $rep | $loom_sps | $py_sps | $ratio | $loom_peak | $py_peak |")
    echo "resnet row: ${resnet_rows[-1]}"
  done
  echo
  echo "### ResNet-18 (CIFAR stem), 3×32×32 synthetic, batch 512, amp-bf16, fused AdamW, channels_last (2nd epoch of 10,240 images)"
  echo
  echo "| run | Loom samples/s | Python samples/s | Loom / Python (target ≥ 1.1) | Loom peak MiB | Python peak MiB (target: Loom ≤) |"
  echo "|---|---|---|---|---|---|"
  printf '%s\n' "${resnet_rows[@]}"
fi
exit $status
