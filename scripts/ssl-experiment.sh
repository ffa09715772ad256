#!/usr/bin/env bash
# The self-training experiment (issue 13; docs/self-training.md, results in docs/results.md).
#
# Fashion-MNIST with 100 labels per class: configs/fashion-mnist-ssl.toml (CNN, EMA, label smoothing, a
# weak "default" pipeline = crop + flip and a "strong" one = crop + flip + RandAugment(2, 9) + random
# erasing; the teacher trains 200 epochs on the 1,000 labeled images with the strong pipeline). Rows:
#   supervised only: the same config without [self_training] — same model, strong augmentation, EMA —
#     trained for at least as many optimizer steps as the longest stage (teacher or student) of any row, tested on its
#     best validation epoch (best-checkpoint);
#   pseudo-label threshold 0.95 and top-K (k = 4000 per class), 2 rounds each, and curriculum
#     (20/40/60/80/100 %, 5 rounds), each with strong student noise and with weak noise (the default
#     pipeline);
#   the best self-training row (by validation accuracy) and the supervised row again with seeds 1 and 2.
# Prints a markdown table (test accuracy mean ± spread, vs supervised, pseudo-label accuracy, selected,
# optimizer steps, wall time) and writes it with every number to OUTPUT_DIR/table.md and table.json.
#
#   scripts/ssl-experiment.sh [OUTPUT_DIR]          # default runs/ssl-experiment; ~75 min on 2 idle CPU cores
#   scripts/ssl-experiment.sh --quick [OUTPUT_DIR]  # every row on small subsets (~2 min): checks the script
#
# Env: LOOM (default build/bin/loom), THREADS (default 0 = every core), SEEDS (default "0 1 2": the seeds of
# the repeated rows; the first is every row's).
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
quick=0
if [[ ${1:-} == --quick ]]; then
  quick=1
  shift
fi
loom=${LOOM:-$root/build/bin/loom}
config=$root/configs/fashion-mnist-ssl.toml
out=${1:-$root/runs/ssl-experiment}
read -r -a seeds <<<"${SEEDS:-0 1 2}"
[[ -x $loom ]] || { echo "ssl-experiment: $loom not found; build first (./build.sh build)" >&2; exit 2; }
[[ ${#seeds[@]} -ge 1 ]] || { echo "ssl-experiment: SEEDS is empty" >&2; exit 2; }
mkdir -p "$out"
out=$(cd "$out" && pwd)

common=(--set "run.output_dir=$out" --set "run.threads=${THREADS:-0}")
ssl=()  # overrides of the pseudo-label runs only (the supervised run has no [self_training] table)
rounds_short=2
if [[ $quick == 1 ]]; then
  # Small subsets: 1,000 labeled images still, a 2,000-image pool, short stages, two curriculum rounds.
  common+=(--set run.epochs=1 --set run.val_every=5)
  ssl+=(--set self_training.teacher_epochs=10 --set self_training.pool_size=2000 --set self_training.k=100)
  curriculum=(--set self_training.rounds=2 --set 'self_training.percentiles=[50, 100]')
  rounds_short=1
else
  curriculum=()
fi

runs_file=$out/runs.tsv
: >"$runs_file"

# run KEY LABEL SEED CONFIG [--set ...]: one loom run, named ssl-KEY-seedSEED; records
# "KEY<TAB>LABEL<TAB>SEED<TAB>run dir<TAB>wall s".
run() {
  local key=$1 label=$2 seed=$3 cfg=$4
  shift 4
  echo "== $label (seed $seed)" >&2
  local name=ssl-$key-seed$seed started
  local log=$out/$name.log
  started=$(date +%s)
  if ! "$loom" run "$cfg" "${common[@]}" --set "run.seed=$seed" --set "run.name=$name" "$@" >"$log" 2>&1; then
    echo "ssl-experiment: run '$label' (seed $seed) failed; see $log" >&2
    tail -20 "$log" >&2
    exit 1
  fi
  local dir
  dir=$(sed -n 's/^run directory: //p' "$log" | tail -1)
  printf '%s\t%s\t%s\t%s\t%s\n' "$key" "$label" "$seed" "$dir" "$(( $(date +%s) - started ))" >>"$runs_file"
}

strong=(--set self_training.student_augmentation=strong)
weak=(--set self_training.student_augmentation=default)
threshold=(--set self_training.selection=threshold --set self_training.threshold=0.95
           --set "self_training.rounds=$rounds_short")
topk=(--set self_training.selection=top-k-per-class --set "self_training.rounds=$rounds_short")
[[ $quick == 1 ]] || topk+=(--set self_training.k=4000)
curr=(--set self_training.selection=curriculum "${curriculum[@]}")

# One function per row, so the best row can be repeated with other seeds by name.
row() {
  local seed=$2
  case $1 in
    threshold-strong)  run "$1" "threshold 0.95, strong noise" "$seed" "$config" "${ssl[@]}" "${threshold[@]}" "${strong[@]}" ;;
    threshold-weak)    run "$1" "threshold 0.95, weak noise" "$seed" "$config" "${ssl[@]}" "${threshold[@]}" "${weak[@]}" ;;
    topk-strong)       run "$1" "top-K per class, strong noise" "$seed" "$config" "${ssl[@]}" "${topk[@]}" "${strong[@]}" ;;
    topk-weak)         run "$1" "top-K per class, weak noise" "$seed" "$config" "${ssl[@]}" "${topk[@]}" "${weak[@]}" ;;
    curriculum-strong) run "$1" "curriculum, strong noise" "$seed" "$config" "${ssl[@]}" "${curr[@]}" "${strong[@]}" ;;
    curriculum-weak)   run "$1" "curriculum, weak noise" "$seed" "$config" "${ssl[@]}" "${curr[@]}" "${weak[@]}" ;;
    *) echo "ssl-experiment: no row '$1'" >&2; exit 2 ;;
  esac
}

start=$(date +%s)
rows=(curriculum-strong curriculum-weak topk-strong topk-weak threshold-strong threshold-weak)
for r in "${rows[@]}"; do row "$r" "${seeds[0]}"; done

summarize() { python3 "$root/scripts/ssl_table.py" "$out" "$@"; }

# Supervised only: the config without [self_training] (plugin "none": one supervised stage), with a best
# checkpoint, for at least as many optimizer steps as the longest stage of any run.
epochs=$(summarize --supervised-epochs)
awk '/^\[/ { skip = ($0 ~ /^\[self_training\]/) } !skip' "$config" >"$out/supervised.toml"
printf '\n[[callback]]\nplugin = "best-checkpoint"\n' >>"$out/supervised.toml"
supervised() { run supervised "supervised only" "$1" "$out/supervised.toml" --set "run.epochs=$epochs" --set run.test_on=best; }
supervised "${seeds[0]}"

# The best self-training row (by its final validation accuracy) and the supervised row with the other seeds.
best=$(summarize --best-row)
for seed in "${seeds[@]:1}"; do
  row "$best" "$seed"
  supervised "$seed"
done

total=$(( $(date +%s) - start ))
command=scripts/ssl-experiment.sh
[[ $quick == 1 ]] && command+=" --quick"
summarize --table --total-seconds "$total" --command "$command"
echo "ssl-experiment: $total s; runs under $out (list: $runs_file; table: $out/table.md)" >&2
