#!/usr/bin/env bash
# The self-training experiment (issue 6; docs/self-training.md, results in docs/results.md):
# Fashion-MNIST with 100 labels per class, configs/fashion-mnist-ssl.toml (MLP [512, 256], dropout 0.25,
# batch 128, AdamW + one-cycle; teacher 150 epochs on the 1,000 labeled images; 10 student epochs per
# round). Four runs of the pseudo-label plugin — each reports rounds 0 (its teacher) to 3:
#   top-K per class (k = 4000) with student noise, the same without noise, a confidence threshold with
#   noise, a threshold without noise
# and one supervised-only run on the labeled images, trained for at least as many optimizer steps as the
# largest student got (its epoch count is computed from the students' metrics). Prints a markdown table
# of test accuracy, pseudo-label accuracy and per-class selection counts.
#
#   scripts/ssl-experiment.sh [OUTPUT_DIR]        # default runs/ssl-experiment; ~11 min on 2 idle CPU cores
#   SMOKE=1 scripts/ssl-experiment.sh /tmp/ssl    # a tiny version (1-2 epochs, k = 50) that checks the script
#
# Env: LOOM (default build/bin/loom), THREADS (default 0 = every core), SEED (default 0), THRESHOLD
# (default 0.95).
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
loom=${LOOM:-$root/build/bin/loom}
config=$root/configs/fashion-mnist-ssl.toml
out=${1:-$root/runs/ssl-experiment}
threshold=${THRESHOLD:-0.95}
[[ -x $loom ]] || { echo "ssl-experiment: $loom not found; build first (./build.sh build)" >&2; exit 2; }
mkdir -p "$out"
out=$(cd "$out" && pwd)

common=(--set "run.output_dir=$out" --set "run.threads=${THREADS:-0}" --set "run.seed=${SEED:-0}")
ssl=()  # overrides of the pseudo-label runs only (the supervised run has no [self_training] table)
if [[ ${SMOKE:-0} == 1 ]]; then
  common+=(--set run.epochs=1)
  ssl+=(--set self_training.teacher_epochs=2 --set self_training.rounds=2 --set self_training.k=50)
fi

runs_file=$out/runs.tsv
: >"$runs_file"

# run LABEL NAME [--set ...]: one loom run; records "LABEL<TAB>run dir".
run() {
  local label=$1 name=$2
  shift 2
  echo "== $label" >&2
  local log=$out/$name.log
  if ! "$loom" run "$config" "${common[@]}" --set "run.name=$name" "$@" >"$log" 2>&1; then
    echo "ssl-experiment: run '$label' failed; see $log" >&2
    tail -20 "$log" >&2
    exit 1
  fi
  local dir
  dir=$(sed -n 's/^run directory: //p' "$log" | tail -1)
  printf '%s\t%s\n' "$label" "$dir" >>"$runs_file"
}

start=$(date +%s)
run "top-k, noise" ssl-topk-noise "${ssl[@]}"
run "top-k, no noise" ssl-topk-clean "${ssl[@]}" --set self_training.noise=false
run "threshold $threshold, noise" ssl-threshold-noise "${ssl[@]}" --set self_training.selection=threshold \
    --set "self_training.threshold=$threshold"
run "threshold $threshold, no noise" ssl-threshold-clean "${ssl[@]}" --set self_training.selection=threshold \
    --set "self_training.threshold=$threshold" --set self_training.noise=false

# Supervised only: the labeled images alone, for at least as many optimizer steps as any student took.
epochs=$(python3 - "$runs_file" <<'EOF'
import json, math, sys
from pathlib import Path
student_steps = per_epoch = 0
for line in Path(sys.argv[1]).read_text().splitlines():
    for record in map(json.loads, (Path(line.split("\t")[1]) / "metrics.jsonl").read_text().splitlines()):
        if "/student" in record.get("stage", "") and "optimizer_steps" in record:
            student_steps = max(student_steps, record["optimizer_steps"])
        if record.get("stage") == "teacher" and "optimizer_steps_in_epoch" in record:
            per_epoch = record["optimizer_steps_in_epoch"]  # an epoch of the labeled split
print(max(1, math.ceil(student_steps / per_epoch)))
EOF
)
# The same config without its [self_training] table (plugin "none": one supervised stage).
awk '/^\[/ { skip = ($0 ~ /^\[self_training\]/) } !skip' "$config" >"$out/supervised.toml"
config=$out/supervised.toml
run "supervised only ($epochs epochs)" ssl-supervised --set "run.epochs=$epochs"

python3 - "$runs_file" <<'EOF'
import json, sys
from pathlib import Path

rows = [line.split("\t") for line in Path(sys.argv[1]).read_text().splitlines()]
baseline = None
table = []
for label, run_dir in rows:
    run_dir = Path(run_dir)
    summary = json.loads((run_dir / "summary.json").read_text())
    metrics = [json.loads(l) for l in (run_dir / "metrics.jsonl").read_text().splitlines()]
    steps = {}
    for m in metrics:
        if "optimizer_steps" in m:
            steps[m["stage"]] = max(steps.get(m["stage"], 0), m["optimizer_steps"])
    if "round0_test_accuracy" not in summary:  # the supervised-only run
        baseline = summary["test_accuracy"]
        table.append((label, "-", summary["test_accuracy"], None, None, None, steps.get("supervised", 0),
                      summary["wall_seconds"]))
        continue
    r = 0
    while f"round{r}_test_accuracy" in summary:
        per_class = selected = None
        pl_acc = summary.get(f"round{r}_pseudo_label_accuracy")
        if r > 0:
            record = json.loads((run_dir / f"pseudo_labels_round{r}.json").read_text())
            selected = record["selected"]
            per_class = " / ".join(str(c) for c in record["selected_per_class"])
        stage = "teacher" if r == 0 else f"round{r}/student"
        table.append((label if r == 0 else "", r, summary[f"round{r}_test_accuracy"], pl_acc, selected, per_class,
                      steps.get(stage, 0), summary["wall_seconds"] if r == 0 else None))
        r += 1

classes = "T-shirt / Trouser / Pullover / Dress / Coat / Sandal / Shirt / Sneaker / Bag / Boot"
print("| setting | round | test acc. | vs supervised | pseudo-label acc. | selected | selected per class "
      f"({classes}) | optimizer steps | run s |")
print("|---|---|---|---|---|---|---|---|---|")
fmt = lambda v, f: "" if v is None else f.format(v)
for label, r, acc, pl_acc, selected, per_class, steps, wall in table:
    delta = "" if baseline is None or r == "-" else f"{100 * (acc - baseline):+.2f}"
    print(f"| {label} | {r} | {100 * acc:.2f} | {delta} | {fmt(pl_acc, '{:.2%}')} | {fmt(selected, '{}')} | "
          f"{per_class or ''} | {steps} | {fmt(wall, '{:.0f}')} |")
EOF
echo "ssl-experiment: $(( $(date +%s) - start )) s; runs under $out (list: $runs_file)" >&2
