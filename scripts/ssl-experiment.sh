#!/usr/bin/env bash
# The self-training experiment (issue 13; docs/self-training.md, results in docs/results.md).
#
# Fashion-MNIST with 100 labels per class: configs/fashion-mnist-ssl.toml (CNN, EMA, label smoothing, a
# weak "default" pipeline = crop + flip and a "strong" one = crop + flip + RandAugment(2, 9) + random
# erasing; the teacher trains 200 epochs on the 1,000 labeled images with the strong pipeline), with a fixed
# random 20,000 of the unlabeled images as the pool. Rows, every student fresh and 5 epochs long:
#   curriculum (20/40/60/80/100 %, 5 rounds), top-K (1,500 per class) and threshold 0.95 (2 rounds each),
#     each with strong student noise and with weak noise (the default pipeline);
#   three levers on the best of those (by final validation accuracy): students that start from their
#     teacher, labeled_share 0.5 instead of 0.25, a wider student ([student_model]);
#   supervised only: the same config without [self_training] — same model, strong augmentation, EMA —
#     trained for at least as many optimizer steps as the longest stage of any row, tested on its best
#     validation epoch (best-checkpoint);
#   the best self-training row of all (by validation accuracy) and the supervised row with seeds 1 and 2.
# Prints a markdown table (test accuracy mean ± sd, vs supervised, pseudo-label accuracy, optimizer steps,
# wall time; then every round of every row) and writes it with every number to OUTPUT_DIR/table.md and
# OUTPUT_DIR/table.json.
#
#   scripts/ssl-experiment.sh [OUTPUT_DIR]          # default runs/ssl-experiment; ~70 min on 2 idle CPU cores
#   scripts/ssl-experiment.sh --quick [OUTPUT_DIR]  # every row on small subsets (~4 min): checks the script
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
  # A fixed random 20,000 of the 54,000 unlabeled images: five curriculum rounds of fresh students fit the
  # time budget; top-K keeps 1,500 per class (75 % of the pool).
  ssl+=(--set self_training.pool_size=20000 --set self_training.k=1500)
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
curr=(--set self_training.selection=curriculum --set self_training.rounds=5 "${curriculum[@]}")

# row KEY SEED [LEVER]: one self-training row; LEVER changes one thing of the row (its key and label say
# which): teacher-init (students start from their teacher), share-50 (labeled_share 0.5), wide-student
# ([student_model] channels [48, 96], hidden 192).
row() {
  local key=$1 seed=$2 lever=${3:-} label args=()
  case $key in
    threshold-strong)  label="threshold 0.95, strong noise";  args=("${threshold[@]}" "${strong[@]}") ;;
    threshold-weak)    label="threshold 0.95, weak noise";    args=("${threshold[@]}" "${weak[@]}") ;;
    topk-strong)       label="top-K per class, strong noise"; args=("${topk[@]}" "${strong[@]}") ;;
    topk-weak)         label="top-K per class, weak noise";   args=("${topk[@]}" "${weak[@]}") ;;
    curriculum-strong) label="curriculum, strong noise";      args=("${curr[@]}" "${strong[@]}") ;;
    curriculum-weak)   label="curriculum, weak noise";        args=("${curr[@]}" "${weak[@]}") ;;
    *) echo "ssl-experiment: no row '$key'" >&2; exit 2 ;;
  esac
  case $lever in
    "") ;;
    teacher-init) label+=", students start from their teacher"; args+=(--set self_training.student_init=teacher) ;;
    share-50)     label+=", labeled share 0.5"; args+=(--set self_training.labeled_share=0.5) ;;
    wide-student) label+=", wider student"; args+=(--set 'student_model.channels=[48, 96]' --set student_model.hidden=192) ;;
    *) echo "ssl-experiment: no lever '$lever'" >&2; exit 2 ;;
  esac
  # Every row states what it changes from the config (the recommended recipe): fresh students unless a lever
  # says otherwise.
  run "$key${lever:++$lever}" "$label" "$seed" "$config" "${ssl[@]}" --set self_training.student_init=fresh "${args[@]}"
}

summarize() { python3 "$root/scripts/ssl_table.py" "$out" "$@"; }

start=$(date +%s)
rows=(curriculum-strong curriculum-weak topk-strong topk-weak threshold-strong threshold-weak)
for r in "${rows[@]}"; do row "$r" "${seeds[0]}"; done

# The levers, each on the best row so far (by final validation accuracy): how the student starts, the
# labeled share, a larger student.
base=$(summarize --best-row)
for lever in teacher-init share-50 wide-student; do row "$base" "${seeds[0]}" "$lever"; done

# Supervised only: the config without [self_training] (plugin "none": one supervised stage), with a best
# checkpoint, for at least as many optimizer steps as the longest stage of any run.
epochs=$(summarize --supervised-epochs)
awk '/^\[/ { skip = ($0 ~ /^\[self_training\]/) } !skip' "$config" >"$out/supervised.toml"
printf '\n[[callback]]\nplugin = "best-checkpoint"\n' >>"$out/supervised.toml"
supervised() { run supervised "supervised only" "$1" "$out/supervised.toml" --set "run.epochs=$epochs" --set run.test_on=best; }
supervised "${seeds[0]}"

# The best self-training row of all (by final validation accuracy) and the supervised row with the other seeds.
best=$(summarize --best-row)
for seed in "${seeds[@]:1}"; do
  row "${best%%+*}" "$seed" "$( [[ $best == *+* ]] && echo "${best#*+}" )"
  supervised "$seed"
done

total=$(( $(date +%s) - start ))
command=scripts/ssl-experiment.sh
[[ $quick == 1 ]] && command+=" --quick"
summarize --table --total-seconds "$total" --command "$command"
echo "ssl-experiment: $total s; runs under $out (list: $runs_file; table: $out/table.md)" >&2
