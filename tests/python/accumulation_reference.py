#!/usr/bin/env python3
"""The seed note's gradient-accumulation loop with its bugs fixed, as a reference for Loom.

Fixed: `if` where the note had `for`; each micro-batch's loss weighted by its samples over the group's
samples (so the last, shorter group is not under-weighted); the optimizer and the LR schedule step once
per optimizer step, never per micro-batch; the logged loss is the undivided one.

Trains the same MLP on the same Fashion-MNIST samples in Loom's order (reusing tests/bench/bench_loop.py's
reproduction of Loom's split, epoch order and initialisation) and compares the final weights with a
Loom run's model.pt. Exit 0 when they agree within --tolerance (relative, per tensor)."""
import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))
import bench_loop as bl  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--loom-model", required=True, help="model.pt of the Loom run")
    ap.add_argument("--limit", type=int, default=1000, help="labeled samples (Loom: labeled_fraction = limit/55000)")
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--steps", type=int, default=4, help="micro-batches per optimizer step")
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--hidden", type=int, default=64)
    ap.add_argument("--seed", type=int, default=3)
    ap.add_argument("--lr", type=float, default=0.05)
    ap.add_argument("--momentum", type=float, default=0.9)
    ap.add_argument("--root", default="/usr/share/datasets/fashion-mnist")
    ap.add_argument("--tolerance", type=float, default=1e-5)
    args = ap.parse_args()

    import torch
    torch.set_num_threads(1)
    torch.manual_seed(bl.derive_seed(args.seed, "model/0"))  # Loom seeds the k-th model with "model/<k>"
    fraction, n = bl.fraction_for(args.limit)
    images = bl.read_idx_gz(Path(args.root) / "train-images-idx3-ubyte.gz")
    labels = bl.read_idx_gz(Path(args.root) / "train-labels-idx1-ubyte.gz")
    labeled = bl.labeled_indices(torch, fraction)
    scale, shift = 1.0 / (255.0 * bl.STD), -bl.MEAN / bl.STD
    x_all = torch.from_numpy(images[labeled.numpy()]).to(torch.float32).mul_(scale).add_(shift).unsqueeze(1)
    y_all = torch.from_numpy(labels[labeled.numpy()]).long()

    model = torch.nn.Sequential(torch.nn.Flatten(1), torch.nn.Linear(784, args.hidden), torch.nn.ReLU(),
                                torch.nn.Linear(args.hidden, 10))
    optimizer = torch.optim.SGD(model.parameters(), lr=args.lr, momentum=args.momentum)
    micro_per_epoch = (n + args.batch - 1) // args.batch
    steps_per_epoch = (micro_per_epoch + args.steps - 1) // args.steps
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=steps_per_epoch * args.epochs)
    loss_fn = torch.nn.CrossEntropyLoss()

    for epoch in range(args.epochs):
        model.train()
        order = bl.epoch_order(torch, n, args.seed, epoch)
        micro = [order[s:s + args.batch] for s in range(0, n, args.batch)]
        optimizer.zero_grad()
        total_loss, seen = 0.0, 0
        for i, positions in enumerate(micro):
            group_start = i - i % args.steps
            group = micro[group_start:group_start + args.steps]
            group_samples = sum(len(p) for p in group)
            loss = loss_fn(model(x_all[positions]), y_all[positions])
            (loss * len(positions) / group_samples).backward()
            total_loss += loss.detach() * len(positions)   # undivided; read once per epoch, not per step
            seen += len(positions)
            if (i + 1) % args.steps == 0 or i + 1 == len(micro):   # `if`, not the note's `for`
                optimizer.step()
                optimizer.zero_grad()
                scheduler.step()                                  # per optimizer step
        print(f"epoch {epoch + 1}: train_loss {float(total_loss) / seen:.6f}")

    loom = [p for _, p in torch.jit.load(args.loom_model).named_parameters()]
    ours = list(model.parameters())
    if len(loom) != len(ours):
        print(f"parameter count differs: loom {len(loom)}, python {len(ours)}")
        return 1
    worst = 0.0
    for a, b in zip(loom, ours):
        if a.shape != b.shape:
            print(f"shape differs: loom {tuple(a.shape)}, python {tuple(b.shape)}")
            return 1
        rel = float((a - b.detach()).norm() / b.detach().norm().clamp_min(1e-12))
        worst = max(worst, rel)
    print(f"max relative weight difference: {worst:.3e} (tolerance {args.tolerance:.1e})")
    return 0 if worst <= args.tolerance else 1


if __name__ == "__main__":
    sys.exit(main())
