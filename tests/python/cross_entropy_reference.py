#!/usr/bin/env python3
"""PyTorch's per-sample cross-entropy, the reference for Loom's loss (tests/test_pseudo_label.cpp).

Reads a JSON file {"logits": [[...], ...], "soft": [[...], ...], "hard": [...]} and prints
{"soft": [...], "hard": [...]}: torch.nn.functional.cross_entropy(logits, targets, reduction="none")
with probability targets (soft pseudo labels) and with class-index targets, in float32; and the same
with label_smoothing = data["label_smoothing"] ("soft_smoothed", "hard_smoothed")."""
import json
import sys

import torch
import torch.nn.functional as F


def main() -> int:
    with open(sys.argv[1]) as f:
        data = json.load(f)
    logits = torch.tensor(data["logits"], dtype=torch.float32)
    soft = torch.tensor(data["soft"], dtype=torch.float32)
    hard = torch.tensor(data["hard"], dtype=torch.int64)
    s = float(data.get("label_smoothing", 0.0))
    print(json.dumps({
        "soft": F.cross_entropy(logits, soft, reduction="none").tolist(),
        "hard": F.cross_entropy(logits, hard, reduction="none").tolist(),
        "soft_smoothed": F.cross_entropy(logits, soft, reduction="none", label_smoothing=s).tolist(),
        "hard_smoothed": F.cross_entropy(logits, hard, reduction="none", label_smoothing=s).tolist(),
    }))
    return 0


if __name__ == "__main__":
    sys.exit(main())
