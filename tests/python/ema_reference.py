#!/usr/bin/env python3
"""A plain PyTorch EMA loop, the reference for Loom's `ema` callback (tests/test_callbacks.cpp).

DIR holds the model's tensors before training, init_<i>.npy (parameters, then buffers), and the
per-step deltas, delta_<k>_<i>.npy for k = 1..steps. Step k applies them to the live tensors (float
tensors: p -= 0.1 * delta, like SGD; integer buffers such as num_batches_tracked: += delta), then every
n-th step updates the average:

    decay_t = min(decay, (1 + t) / (10 + t)) with warmup, else decay   (t: updates done before this one)
    ema.lerp_(live, 1 - decay_t)   for float tensors;  ema = live   for integer buffers

Writes the average as expected_<i>.npy."""
import argparse
from pathlib import Path

import numpy as np
import torch


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("dir", type=Path)
    ap.add_argument("--tensors", type=int, required=True)
    ap.add_argument("--steps", type=int, required=True)
    ap.add_argument("--decay", type=float, required=True)
    ap.add_argument("--warmup", type=int, choices=[0, 1], required=True)
    ap.add_argument("--every", type=int, default=1)
    args = ap.parse_args()

    def load(name: str) -> torch.Tensor:
        return torch.from_numpy(np.load(args.dir / name))

    live = [load(f"init_{i}.npy") for i in range(args.tensors)]
    ema = [t.clone() for t in live]
    updates = 0
    with torch.no_grad():
        for k in range(1, args.steps + 1):
            for i, t in enumerate(live):
                delta = load(f"delta_{k}_{i}.npy")
                if t.is_floating_point():
                    t.sub_(delta, alpha=0.1)
                else:
                    t.add_(delta)
            if k % args.every != 0:
                continue
            decay = min(args.decay, (1 + updates) / (10 + updates)) if args.warmup else args.decay
            for e, t in zip(ema, live):
                if e.is_floating_point():
                    e.lerp_(t, 1 - decay)
                else:
                    e.copy_(t)
            updates += 1
    for i, e in enumerate(ema):
        np.save(args.dir / f"expected_{i}.npy", e.numpy())


if __name__ == "__main__":
    main()
