#!/usr/bin/env bash
# Installs Loom into a temporary prefix, builds the examples in docs/examples/ out of tree against the
# installed SDK (find_package(Loom)), and loads and trains with them through the installed `loom`:
#   logistic-regression  a model (Release build)
#   lr-logger            a callback (Release build, PRECOMPILE_SDK)
#   stdout-sink          a metric sink (no build type: loom_add_plugin must default it to -O2)
#   ramp-dataset, gaussian-noise, clipped-fp32   a dataset, an augmentation op and a precision strategy
#                        (Release), trained with together and with logistic-regression
set -euo pipefail
build=$1 src=$2
tmp=$(mktemp -d "${TMPDIR:-/tmp}/loom-install-XXXXXX")
trap 'rm -rf "$tmp"' EXIT

cmake --install "$build" --prefix "$tmp/prefix" >/dev/null
launcher=()
command -v ccache >/dev/null && launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache)
# build_example NAME [cmake args...]: configures and builds docs/examples/NAME into $tmp/NAME.
build_example() {
  local name=$1
  shift
  cmake -S "$src/docs/examples/$name" -B "$tmp/$name" -DCMAKE_PREFIX_PATH="$tmp/prefix" "${launcher[@]}" "$@" \
        >"$tmp/$name.configure.log" 2>&1 || { cat "$tmp/$name.configure.log"; exit 1; }
  cmake --build "$tmp/$name" -j2 >"$tmp/$name.build.log" 2>&1 || { cat "$tmp/$name.build.log"; exit 1; }
}
build_example logistic-regression -DCMAKE_BUILD_TYPE=Release
build_example lr-logger -DCMAKE_BUILD_TYPE=Release
build_example stdout-sink -DCMAKE_EXPORT_COMPILE_COMMANDS=ON
build_example ramp-dataset -DCMAKE_BUILD_TYPE=Release
build_example gaussian-noise -DCMAKE_BUILD_TYPE=Release
build_example clipped-fp32 -DCMAKE_BUILD_TYPE=Release
# No CMAKE_BUILD_TYPE: loom_add_plugin still compiles the plugin optimised.
grep -q -- ' -O2 ' "$tmp/stdout-sink/compile_commands.json" || {
  echo "stdout-sink was configured without a build type but is not compiled with -O2:"
  cat "$tmp/stdout-sink/compile_commands.json"
  exit 1
}
# A plugin compiled with the other C++ ABI is stopped at configure time, with the flag and the fix (it
# would otherwise fail only when linking against LibTorch).
if cmake -S "$src/docs/examples/stdout-sink" -B "$tmp/abi0" -DCMAKE_PREFIX_PATH="$tmp/prefix" \
         -DCMAKE_CXX_FLAGS=-D_GLIBCXX_USE_CXX11_ABI=0 >"$tmp/abi0.log" 2>&1; then
  echo "a plugin configured with -D_GLIBCXX_USE_CXX11_ABI=0 was accepted"; exit 1
fi
# CMake wraps the message's lines: compare it with its white space folded.
tr -s ' \n' ' ' <"$tmp/abi0.log" | grep -q "CMAKE_CXX_FLAGS sets _GLIBCXX_USE_CXX11_ABI=0, but LibTorch and loom use" || {
  echo "no C++ ABI message from loom_add_plugin:"; cat "$tmp/abi0.log"; exit 1; }

export LOOM_PLUGIN_PATH="$tmp/logistic-regression/plugins:$tmp/lr-logger/plugins:$tmp/stdout-sink/plugins"
LOOM_PLUGIN_PATH+=":$tmp/ramp-dataset/plugins:$tmp/gaussian-noise/plugins:$tmp/clipped-fp32/plugins"
out=$("$tmp/prefix/bin/loom" plugins logistic-regression)
echo "$out"
grep -q "model plugin 'logistic-regression' 1.0.0" <<<"$out"
"$tmp/prefix/bin/loom" plugins --json | python3 -c '
import json, sys
j = json.load(sys.stdin)
assert not j["failures"], j["failures"]
names = {(p["kind"], p["name"]) for p in j["plugins"]}
for wanted in [("model", "logistic-regression"), ("callback", "lr-logger"), ("metric_sink", "stdout-sink"),
               ("dataset", "ramp"), ("augmentation", "gaussian-noise"), ("precision", "clipped-fp32"),
               ("dataset", "fashion-mnist"), ("metric_sink", "jsonl")]:
    assert wanted in names, (wanted, names)'

cat >"$tmp/c.toml" <<TOML
[run]
name = "third-party"
epochs = 1
threads = 1
output_dir = "$tmp/runs"
[dataset]
plugin = "synthetic"
samples = 256
[model]
plugin = "logistic-regression"
TOML
"$tmp/prefix/bin/loom" run "$tmp/c.toml"
test -f "$tmp"/runs/third-party/*/summary.json

# The dataset, augmentation and precision examples in one run: every epoch reports clipped-fp32's
# clipped_steps, and the test split is ramp's last 10 %.
cat >"$tmp/d.toml" <<TOML
[run]
name = "examples"
epochs = 2
threads = 1
device = "cpu"
output_dir = "$tmp/runs"
[loader]
batch_size = 32
[dataset]
plugin = "ramp"
samples = 640
[[augmentation]]
plugin = "gaussian-noise"
std = 0.05
[model]
plugin = "logistic-regression"
[precision]
plugin = "clipped-fp32"
max_norm = 0.5
TOML
"$tmp/prefix/bin/loom" run "$tmp/d.toml"
python3 - "$(echo "$tmp"/runs/examples/*)" <<'PY'
import json, sys
run = sys.argv[1]
records = [json.loads(line) for line in open(run + "/metrics.jsonl")]
epochs = [r for r in records if "train_loss" in r and "clipped_steps" in r]
assert len(epochs) == 2, records
summary = json.load(open(run + "/summary.json"))
assert summary["test_samples"] == 64, summary
PY

# The callback and the sink together, on the synthetic test config (it has no [[callback]] or
# [[metric_sink]] tables, so index 0 of each appends the first one; the always-present jsonl sink is not
# one of the file's tables).
with_both=(--set run.epochs=2 --set "run.output_dir=$tmp/runs"
           --set 'callback[0].plugin=lr-logger' --set 'callback[0].every_n_steps=10'
           --set 'metric_sink[0].plugin=stdout-sink')
# check --deep creates both plugins and writes nothing (the sink opens its file on the first record).
(cd "$tmp" && "$tmp/prefix/bin/loom" check --deep "$src/tests/configs/synthetic.toml" "${with_both[@]}")
test ! -e "$tmp/epochs.txt" && test ! -e "$tmp/runs/synthetic"
"$tmp/prefix/bin/loom" run "$src/tests/configs/synthetic.toml" "${with_both[@]}"
run_dir=$(echo "$tmp"/runs/synthetic/*)
test -f "$run_dir/summary.json"
# stdout-sink: one line per epoch, in order, each with the callback's epoch metric.
lines=$(wc -l <"$run_dir/epochs.txt")
[ "$lines" -eq 2 ] || { echo "epochs.txt has $lines lines, expected 2 (one per epoch):"; cat "$run_dir/epochs.txt"; exit 1; }
grep -q '^\[supervised\] epoch 1 step [0-9]*: .*lr_mean=[0-9]' "$run_dir/epochs.txt"
grep -q '^\[supervised\] epoch 2 step [0-9]*: .*lr_mean=[0-9]' "$run_dir/epochs.txt"
# lr-logger: its log lines, through Control::logger(), in the run's log.
grep -q 'lr-logger: \[supervised\] epoch 1 step 10: lr [0-9.e-]* loss [0-9.]*' "$run_dir/loom.log" || {
  echo "no lr-logger line in loom.log:"; cat "$run_dir/loom.log"; exit 1; }
# The jsonl sink is still there, first: its epoch records carry lr_mean too.
python3 - "$run_dir/metrics.jsonl" <<'PY'
import json, sys
records = [json.loads(line) for line in open(sys.argv[1])]
epochs = [r for r in records if r.get("epoch") and "train_loss" in r and "lr_mean" in r]
assert len(epochs) == 2, records
PY

# Resume: stop a longer run with SIGTERM after its first checkpoint, pretend the stopped process had written
# a line after that checkpoint, resume. stdout-sink must cut the file back to what the checkpoint
# committed (one line per epoch), and lr-logger's checkpointed sums must give the lr_mean of an
# uninterrupted run.
long=(--set run.epochs=4 --set dataset.samples=40000 --set "run.output_dir=$tmp/resume"
      --set 'callback[0].plugin=lr-logger' --set 'callback[0].every_n_steps=500'
      --set 'metric_sink[0].plugin=stdout-sink')
"$tmp/prefix/bin/loom" run "$src/tests/configs/synthetic.toml" "${long[@]}" --set run.name=whole >/dev/null
"$tmp/prefix/bin/loom" run "$src/tests/configs/synthetic.toml" "${long[@]}" --set run.name=cut >"$tmp/cut.log" 2>&1 &
pid=$!
for _ in $(seq 1 1200); do compgen -G "$tmp/resume/cut/*/checkpoint.pt" >/dev/null && break; sleep 0.05; done
kill -TERM "$pid" 2>/dev/null || true
rc=0
wait "$pid" || rc=$?
if [ "$rc" -eq 143 ]; then
  cut_dir=$(echo "$tmp"/resume/cut/*)
  echo "[supervised] epoch 99 step 0: written after the last checkpoint" >>"$cut_dir/epochs.txt"
  "$tmp/prefix/bin/loom" run --resume "$cut_dir" >"$tmp/resume.log" 2>&1 || { cat "$tmp/resume.log"; exit 1; }
  grep -q "lr-logger: resuming stage 'supervised'" "$cut_dir/loom.log"
  lines=$(wc -l <"$cut_dir/epochs.txt")
  [ "$lines" -eq 4 ] || { echo "epochs.txt after resume has $lines lines, expected 4:"; cat "$cut_dir/epochs.txt"; exit 1; }
  metrics() { grep -o 'lr_mean=[^ ]*\|train_loss=[^ ]*' "$1"; }
  diff <(metrics "$cut_dir/epochs.txt") <(metrics "$(echo "$tmp"/resume/whole/*)/epochs.txt") || {
    echo "a resumed run's lr_mean/train_loss differ from an uninterrupted run's"; exit 1; }
else
  # The run ended before the signal (a fast machine): nothing was interrupted, nothing to resume.
  [ "$rc" -eq 0 ] || { cat "$tmp/cut.log"; exit 1; }
  echo "install test: the run finished before SIGTERM; resume check skipped"
fi
echo "install test: ok"
