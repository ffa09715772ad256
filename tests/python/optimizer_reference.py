#!/usr/bin/env python3
"""torch.optim's SGD / AdamW over a recorded gradient trajectory: the reference for Loom's [optimizer]
implementations (tests/test_optimizer.cpp).

DIR holds init_<i>.npy (the parameters), grad_<k>_<i>.npy (their gradients at step k = 1..steps) and
lrs.npy (the learning rate of each step). --no-decay lists the tensors of the second parameter group
(weight decay 0); the others form the first. Writes the parameters after the last step as
expected_<i>.npy."""
import argparse
from pathlib import Path

import numpy as np
import torch


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("dir", type=Path)
    ap.add_argument("--tensors", type=int, required=True)
    ap.add_argument("--steps", type=int, required=True)
    ap.add_argument("--name", choices=["sgd", "adamw"], required=True)
    ap.add_argument("--impl", choices=["fused", "foreach", "loop"], required=True)
    ap.add_argument("--weight-decay", type=float, required=True)
    ap.add_argument("--momentum", type=float, default=0.0)
    ap.add_argument("--nesterov", type=int, choices=[0, 1], default=0)
    ap.add_argument("--betas", type=float, nargs=2, default=(0.9, 0.999))
    ap.add_argument("--eps", type=float, default=1e-8)
    ap.add_argument("--no-decay", default="", help="comma-separated tensor indices without weight decay")
    ap.add_argument("--channels-last", default="",
                    help="comma-separated indices of 4-D tensors laid out channels_last (parameter and gradients), "
                         "as Loom's are: vectorised kernels round a few elements differently in another layout")
    args = ap.parse_args()

    def load(name: str) -> torch.Tensor:
        return torch.from_numpy(np.load(args.dir / name))

    channels_last = {int(i) for i in args.channels_last.split(",") if i}

    def laid_out(i: int, t: torch.Tensor) -> torch.Tensor:
        return t.contiguous(memory_format=torch.channels_last) if i in channels_last else t.clone()

    params = [laid_out(i, load(f"init_{i}.npy")).requires_grad_() for i in range(args.tensors)]
    plain = {int(i) for i in args.no_decay.split(",") if i}
    groups = [{"params": [p for i, p in enumerate(params) if i not in plain]}]
    if plain:
        groups.append({"params": [p for i, p in enumerate(params) if i in plain], "weight_decay": 0.0})
    lrs = np.load(args.dir / "lrs.npy")
    kind = {"fused": {"fused": True}, "foreach": {"foreach": True}, "loop": {"foreach": False}}[args.impl]
    if args.name == "sgd":
        opt = torch.optim.SGD(groups, lr=float(lrs[0]), momentum=args.momentum, nesterov=bool(args.nesterov),
                              weight_decay=args.weight_decay, **kind)
    else:
        opt = torch.optim.AdamW(groups, lr=float(lrs[0]), betas=tuple(args.betas), eps=args.eps,
                                weight_decay=args.weight_decay, **kind)
    for k in range(1, args.steps + 1):
        for i, p in enumerate(params):
            p.grad = laid_out(i, load(f"grad_{k}_{i}.npy"))
        for g in opt.param_groups:
            g["lr"] = float(lrs[k - 1])
        opt.step()
    for i, p in enumerate(params):
        np.save(args.dir / f"expected_{i}.npy", p.detach().contiguous().numpy())


if __name__ == "__main__":
    main()
