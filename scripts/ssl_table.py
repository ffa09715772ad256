#!/usr/bin/env python3
"""Reads the runs of scripts/ssl-experiment.sh (OUTPUT_DIR/runs.tsv) and answers one question per flag.

  ssl_table.py OUT --supervised-epochs   epochs of the labeled split that give at least as many optimizer
                                          steps as the longest stage (teacher or student) of any run so far
  ssl_table.py OUT --best-row            the self-training row with the highest final validation accuracy
  ssl_table.py OUT --table [--total-seconds S] [--command C]
                                          prints the markdown tables; writes OUT/table.md and OUT/table.json

Every number comes from the run directories: metrics.jsonl (optimizer steps per stage), summary.json (the
host's final test) and pseudo_label_rounds.json / pseudo_labels_round<r>.json (per round).
"""
import argparse
import json
import math
import statistics
import sys
from pathlib import Path


def read_runs(out):
    runs = []
    for line in (out / "runs.tsv").read_text().splitlines():
        key, label, seed, run_dir, wall = line.split("\t")
        runs.append({"key": key, "label": label, "seed": int(seed), "dir": Path(run_dir), "wall": int(wall)})
    if not runs:
        sys.exit(f"ssl_table: {out / 'runs.tsv'} lists no runs")
    return runs


def metrics(run_dir):
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines() if line.strip()]


def stage_steps(run_dir):
    """Optimizer steps of each training stage (its last epoch record)."""
    steps = {}
    for record in metrics(run_dir):
        if "optimizer_steps" in record and "epoch" in record:
            steps[record["stage"]] = record["optimizer_steps"]
    return steps


def rounds(run_dir):
    """Per round: test/val accuracy, pseudo-label accuracy, selected, the student's optimizer steps."""
    log = run_dir / "pseudo_label_rounds.json"
    if not log.exists():
        return []
    entries = json.loads(log.read_text())
    entries = entries["rounds"] if isinstance(entries, dict) else entries
    steps = stage_steps(run_dir)
    out = []
    for e in entries:
        r = e["round"]
        row = {"round": r, "test_accuracy": e.get("test_accuracy"), "val_accuracy": e.get("val_accuracy"),
               "pseudo_label_accuracy": e.get("pseudo_label_accuracy"), "selected": e.get("selected"),
               "stage_steps": steps.get(e["stage"])}
        selection = run_dir / f"pseudo_labels_round{r}.json"
        if r > 0 and selection.exists():
            s = json.loads(selection.read_text())
            row["percentile"] = s["selection"].get("percentile")
            row["pseudo_label_accuracy_per_class"] = s.get("pseudo_label_accuracy_per_class")
        out.append(row)
    return out


def final_test(run):
    return json.loads((run["dir"] / "summary.json").read_text())["test_accuracy"]


def final_val(run):
    r = rounds(run["dir"])
    return r[-1]["val_accuracy"] if r else None


def supervised_epochs(runs):
    longest = per_epoch = 0
    for run in runs:
        for record in metrics(run["dir"]):
            stage = record.get("stage", "")
            if "optimizer_steps" in record and stage != "test":
                longest = max(longest, record["optimizer_steps"])
            if stage == "teacher" and "optimizer_steps_in_epoch" in record:
                per_epoch = record["optimizer_steps_in_epoch"]  # an epoch of the labeled split
    if not longest or not per_epoch:
        sys.exit("ssl_table: no stage or teacher epoch found in the runs so far")
    return max(1, math.ceil(longest / per_epoch))


def pct(x):
    return "" if x is None else f"{100 * x:.2f}"


def spread(values):
    mean = statistics.fmean(values)
    if len(values) == 1:
        return mean, None, f"{100 * mean:.2f}"
    sd = statistics.stdev(values)
    return mean, sd, f"{100 * mean:.2f} ± {100 * sd:.2f} (min {100 * min(values):.2f}, max {100 * max(values):.2f})"


def table(out, runs, total_seconds, command):
    keys = list(dict.fromkeys(r["key"] for r in runs))
    rows = []
    for key in keys:
        mine = sorted((r for r in runs if r["key"] == key), key=lambda r: r["seed"])
        tests = [final_test(r) for r in mine]
        mean, sd, text = spread(tests)
        steps = [stage_steps(r["dir"]) for r in mine]
        rows.append({"key": key, "label": mine[0]["label"], "seeds": [r["seed"] for r in mine],
                     "test_accuracy": tests, "mean": mean, "std": sd, "text": text,
                     "optimizer_steps_total": sum(steps[0].values()),
                     "longest_stage_steps": max(steps[0].values()),
                     "wall_seconds": [r["wall"] for r in mine],
                     "rounds": rounds(mine[0]["dir"]), "run_dirs": [str(r["dir"]) for r in mine]})
    supervised = next((r for r in rows if r["key"] == "supervised"), None)
    ssl_rows = [r for r in rows if r["key"] != "supervised"]
    # The best row is chosen as the script chose it: by final validation accuracy, never by test.
    best_key = best_row(runs)
    best = next((r for r in ssl_rows if r["key"] == best_key), None)

    lines = [f"Command: `{command}` — {total_seconds} s in all." if command else "", "",
             "| setting | seeds | test accuracy % (mean ± sd) | vs supervised (points) | final pseudo-label acc. % "
             "| rounds | optimizer steps (all stages) | longest stage (steps) | wall s per run |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        delta = "" if not supervised or r is supervised else f"{100 * (r['mean'] - supervised['mean']):+.2f}"
        last = r["rounds"][-1] if r["rounds"] else {}
        lines.append(f"| {r['label']} | {', '.join(map(str, r['seeds']))} | {r['text']} | {delta} | "
                     f"{pct(last.get('pseudo_label_accuracy'))} | {max(len(r['rounds']) - 1, 0) or ''} | "
                     f"{r['optimizer_steps_total']} | {r['longest_stage_steps']} | "
                     f"{', '.join(map(str, r['wall_seconds']))} |")
    lines += ["", f"Per round (seed {runs[0]['seed']}; round 0 is the teacher):", "",
              "| setting | round | kept % | selected | pseudo-label acc. % | student steps | val acc. % | test acc. % |",
              "|---|---|---|---|---|---|---|---|"]
    for r in ssl_rows:
        for i, rd in enumerate(r["rounds"]):
            lines.append(f"| {r['label'] if i == 0 else ''} | {rd['round']} | {rd.get('percentile') or ''} | "
                         f"{rd.get('selected') or ''} | {pct(rd.get('pseudo_label_accuracy'))} | "
                         f"{rd.get('stage_steps') or ''} | {pct(rd.get('val_accuracy'))} | {pct(rd.get('test_accuracy'))} |")
    if best and supervised:
        gain = 100 * (best["mean"] - supervised["mean"])
        lines += ["", f"Best self-training row (by validation accuracy): {best['label']}, {gain:+.2f} points "
                      f"test accuracy over supervised only "
                      f"({'target of +3.0 met' if gain >= 3.0 else 'target of +3.0 not met'})."]
    text = "\n".join(lines).strip() + "\n"
    (out / "table.md").write_text(text)
    summary = {"command": command, "total_seconds": total_seconds, "rows": rows,
               "best_row": best["key"] if best else None,
               "gain_points": 100 * (best["mean"] - supervised["mean"]) if best and supervised else None}
    (out / "table.json").write_text(json.dumps(summary, indent=2) + "\n")
    print(text, end="")


def best_row(runs):
    """The self-training row whose first-seed run ends with the highest validation accuracy."""
    first = {}
    for r in runs:
        if r["key"] != "supervised" and r["key"] not in first:
            first[r["key"]] = r
    candidates = [r for r in first.values() if final_val(r) is not None]
    return max(candidates, key=final_val)["key"] if candidates else None


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("out", type=Path)
    p.add_argument("--supervised-epochs", action="store_true")
    p.add_argument("--best-row", action="store_true")
    p.add_argument("--table", action="store_true")
    p.add_argument("--total-seconds", type=int, default=0)
    p.add_argument("--command", default="")
    a = p.parse_args()
    runs = read_runs(a.out)
    if a.supervised_epochs:
        print(supervised_epochs(runs))
    elif a.best_row:
        best = best_row(runs)
        if not best:
            sys.exit("ssl_table: no self-training run to choose from")
        print(best)
    elif a.table:
        table(a.out, runs, a.total_seconds, a.command)
    else:
        p.error("give one of --supervised-epochs, --best-row, --table")


if __name__ == "__main__":
    main()
