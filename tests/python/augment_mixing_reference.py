#!/usr/bin/env python3
"""torchvision's side of Loom's random-erasing, mixup and cutmix ops (tests/test_augment_mixing.cpp).

    augment_mixing_reference.py DIR

DIR/cases.json lists cases {"name", "op", "seed", "params", "batches": [batch names], "classes"}; every
batch B has DIR/B_x.npy (inputs) and DIR/B_y.npy (int64 [N] or float [N, C] targets). For each case a
torch.Generator seeded like Loom's (at::make_generator<CPUGeneratorImpl>(seed) == manual_seed(seed)) replays
the op's documented draws (the comments at the top of the plugins' sources), batch after batch, and the
result is computed by torchvision.transforms.v2 with the parameters those draws give:

  random-erasing  torchvision.transforms.v2.functional.erase(image, i, j, h, w, v) per erased sample;
  mixup           torchvision.transforms.v2.MixUp with its λ draw replaced by the replayed λ;
  cutmix          torchvision.transforms.v2.CutMix with its λ draw replaced by the replayed λ and its box
                  center drawn by torchvision itself from the global generator, set to the replayed state.

Writes DIR/B_ref_x.npy, DIR/B_ref_y.npy and prints JSON {batch: {"mixed", "lam", "box", "erased": [...]}}.

    augment_mixing_reference.py loss DIR

DIR/logits.npy, DIR/soft.npy (probabilities), DIR/hard.npy (int64): writes DIR/loss_<kind>_<s>.npy, the
per-sample torch.nn.functional.cross_entropy(..., label_smoothing=s) for s in 0, 0.1, 0.3."""
import json
import math
import sys
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torchvision.transforms import v2
from torchvision.transforms.v2 import functional as TF

ATTEMPTS = 10  # torchvision RandomErasing's


def erase_params(g, n, c, height, width, p, scale, ratio, random):
    """Loom's random-erasing draws (plugins/augmentation/random-erasing/random_erasing.cpp), replayed."""
    f64 = dict(dtype=torch.float64, generator=g)
    chosen = torch.rand(n, **f64) < p
    area = torch.rand(n, ATTEMPTS, **f64).mul(scale[1] - scale[0]).add(scale[0]) * float(height * width)
    lo, hi = math.log(ratio[0]), math.log(ratio[1])
    aspect = torch.rand(n, ATTEMPTS, **f64).mul(hi - lo).add(lo).exp()
    hs, ws = (area * aspect).sqrt().round(), (area / aspect).sqrt().round()
    corner = torch.rand(n, 2, **f64)
    params = []
    for b in range(n):
        fits = [k for k in range(ATTEMPTS) if hs[b, k] < height and ws[b, k] < width]
        if not chosen[b] or not fits:
            params.append(None)
            continue
        h, w = int(hs[b, fits[0]]), int(ws[b, fits[0]])
        i = int(math.floor(corner[b, 0].item() * (height - h + 1)))
        j = int(math.floor(corner[b, 1].item() * (width - w + 1)))
        params.append((i, j, h, w))
    total = sum(c * h * w for (_, _, h, w) in filter(None, params))
    noise = torch.randn(total, dtype=torch.float32, generator=g) if random and total > 0 else None
    return params, noise


def random_erasing(g, x, y, prm, _classes):
    n, c, height, width = x.shape
    random = prm.get("value", "zero") == "random"
    params, noise = erase_params(g, n, c, height, width, prm.get("p", 0.5), prm.get("scale", [0.02, 0.33]),
                                 prm.get("ratio", [0.3, 3.3]), random)
    out, offset = x.clone(), 0
    for b, rect in enumerate(params):
        if rect is None:
            continue
        i, j, h, w = rect
        if random:
            v = noise[offset:offset + c * h * w].view(c, h, w).to(x.dtype)
            offset += c * h * w
        else:
            v = torch.tensor([0.0], dtype=x.dtype)[:, None, None]  # RandomErasing(value=0)
        out[b] = TF.erase(x[b], i, j, h, w, v)
    return out, y, {"erased": [list(r) if r else None for r in params]}


class FixedLambda:
    def __init__(self, lam):
        self.lam = lam

    def sample(self, shape=()):
        return torch.tensor(self.lam, dtype=torch.float64)


def mixing_draws(g, prm, alpha_default):
    mixed = torch.rand(1, dtype=torch.float64, generator=g).item() < prm.get("p", 1.0)
    gam = torch._standard_gamma(torch.full((2,), prm.get("alpha", alpha_default), dtype=torch.float64), generator=g)
    a, b = gam[0].item(), gam[1].item()
    return mixed, (a / (a + b) if a + b > 0 else 0.5)


def one_hot(y, classes):
    return y if y.dim() == 2 else F.one_hot(y, classes).float()


def mixup(g, x, y, prm, classes):
    mixed, lam = mixing_draws(g, prm, 0.2)
    if not mixed:
        return x, one_hot(y, classes), {"mixed": False, "lam": lam}
    t = v2.MixUp(alpha=prm.get("alpha", 0.2), num_classes=classes)
    t._dist = FixedLambda(lam)
    ox, oy = t(x, y)
    return ox, oy, {"mixed": True, "lam": lam}


def cutmix(g, x, y, prm, classes):
    mixed, lam = mixing_draws(g, prm, 1.0)
    t = v2.CutMix(alpha=prm.get("alpha", 1.0), num_classes=classes)
    t._dist = FixedLambda(lam)
    torch.set_rng_state(g.get_state())  # torchvision draws the box center from the global generator
    params = t.make_params([x])
    g.set_state(torch.get_rng_state())  # both center draws happen whether or not the batch is mixed
    info = {"mixed": mixed, "lam": params["lam_adjusted"], "box": list(params["box"])}
    if not mixed:
        return x, one_hot(y, classes), info
    labels = y
    out_x = t.transform(x, dict(params, labels=labels, batch_size=x.shape[0]))
    out_y = t.transform(labels, dict(params, labels=labels, batch_size=x.shape[0]))
    return out_x, out_y, info


OPS = {"random-erasing": random_erasing, "mixup": mixup, "cutmix": cutmix}


def cases(d: Path) -> int:
    report = {}
    for case in json.loads((d / "cases.json").read_text()):
        g = torch.Generator().manual_seed(case["seed"])
        for batch in case["batches"]:
            x = torch.from_numpy(np.load(d / f"{batch}_x.npy"))
            y = torch.from_numpy(np.load(d / f"{batch}_y.npy"))
            ox, oy, info = OPS[case["op"]](g, x, y, case["params"], case["classes"])
            np.save(d / f"{batch}_ref_x.npy", ox.contiguous().numpy())
            np.save(d / f"{batch}_ref_y.npy", oy.contiguous().numpy())
            report[batch] = info
    print(json.dumps(report))
    return 0


def loss(d: Path) -> int:
    logits = torch.from_numpy(np.load(d / "logits.npy"))
    for kind in ("soft", "hard"):
        targets = torch.from_numpy(np.load(d / f"{kind}.npy"))
        for s in (0.0, 0.1, 0.3):
            out = F.cross_entropy(logits, targets, reduction="none", label_smoothing=s)
            np.save(d / f"loss_{kind}_{s}.npy", out.numpy())
    return 0


if __name__ == "__main__":
    if sys.argv[1] == "loss":
        sys.exit(loss(Path(sys.argv[2])))
    sys.exit(cases(Path(sys.argv[1])))
