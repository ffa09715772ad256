"""Reference models for tests/test_model_zoo.cpp: torchvision's ResNets and the authors' WideResNet port.

Usage: model_zoo_reference.py OUT_DIR CASE...   with CASE = name,arch,depth,variant,channels,size
       model_zoo_reference.py --weight-files OUT_DIR
  arch resnet:      variant is the stem, imagenet (torchvision as is) or cifar (conv1 3x3/1, maxpool Identity)
  arch wide-resnet: variant is the widen factor
For each case it writes OUT_DIR/<name>.weights.pt, the model's state_dict as a user would save it
(torch.save(model.state_dict(), path)), and OUT_DIR/<name>.ref.pt: a flat dict of tensors with the
parameter count, an input, its labels, the eval-mode logits and the train-mode gradients of the
cross-entropy loss ("grad.<parameter name>").
--weight-files writes the files of the loader's error tests (see weight_files()).
"""
import math
import os
import sys

import torch
import torch.nn as nn
import torch.nn.functional as F

NUM_CLASSES = 10


# --- WideResNet, as xternalz/WideResNet-pytorch (wideresnet.py), parameterised on the input channels ---------
class BasicBlock(nn.Module):
    def __init__(self, in_planes, out_planes, stride, dropRate=0.0):
        super().__init__()
        self.bn1 = nn.BatchNorm2d(in_planes)
        self.relu1 = nn.ReLU(inplace=True)
        self.conv1 = nn.Conv2d(in_planes, out_planes, kernel_size=3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_planes)
        self.relu2 = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(out_planes, out_planes, kernel_size=3, stride=1, padding=1, bias=False)
        self.droprate = dropRate
        self.equalInOut = in_planes == out_planes
        self.convShortcut = (not self.equalInOut) and nn.Conv2d(
            in_planes, out_planes, kernel_size=1, stride=stride, padding=0, bias=False) or None

    def forward(self, x):
        if not self.equalInOut:
            x = self.relu1(self.bn1(x))
        else:
            out = self.relu1(self.bn1(x))
        out = self.relu2(self.bn2(self.conv1(out if self.equalInOut else x)))
        if self.droprate > 0:
            out = F.dropout(out, p=self.droprate, training=self.training)
        out = self.conv2(out)
        return torch.add(x if self.equalInOut else self.convShortcut(x), out)


class NetworkBlock(nn.Module):
    def __init__(self, nb_layers, in_planes, out_planes, block, stride, dropRate=0.0):
        super().__init__()
        self.layer = nn.Sequential(*[block(i == 0 and in_planes or out_planes, out_planes, i == 0 and stride or 1,
                                           dropRate) for i in range(int(nb_layers))])

    def forward(self, x):
        return self.layer(x)


class WideResNet(nn.Module):
    def __init__(self, depth, num_classes, widen_factor=1, dropRate=0.0, in_channels=3):
        super().__init__()
        nChannels = [16, 16 * widen_factor, 32 * widen_factor, 64 * widen_factor]
        assert (depth - 4) % 6 == 0
        n = (depth - 4) / 6
        self.conv1 = nn.Conv2d(in_channels, nChannels[0], kernel_size=3, stride=1, padding=1, bias=False)
        self.block1 = NetworkBlock(n, nChannels[0], nChannels[1], BasicBlock, 1, dropRate)
        self.block2 = NetworkBlock(n, nChannels[1], nChannels[2], BasicBlock, 2, dropRate)
        self.block3 = NetworkBlock(n, nChannels[2], nChannels[3], BasicBlock, 2, dropRate)
        self.bn1 = nn.BatchNorm2d(nChannels[3])
        self.relu = nn.ReLU(inplace=True)
        self.fc = nn.Linear(nChannels[3], num_classes)
        self.nChannels = nChannels[3]
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                n = m.kernel_size[0] * m.kernel_size[1] * m.out_channels
                m.weight.data.normal_(0, math.sqrt(2. / n))
            elif isinstance(m, nn.BatchNorm2d):
                m.weight.data.fill_(1)
                m.bias.data.zero_()
            elif isinstance(m, nn.Linear):
                m.bias.data.zero_()

    def forward(self, x):
        out = self.conv1(x)
        out = self.block1(out)
        out = self.block2(out)
        out = self.block3(out)
        out = self.relu(self.bn1(out))
        out = F.avg_pool2d(out, 8)
        out = out.view(-1, self.nChannels)
        return self.fc(out)


def torchvision_resnet(depth, stem, channels):
    import torchvision  # here: the WideResNet cases and --weight-files need only torch

    model = getattr(torchvision.models, f"resnet{depth}")(weights=None, num_classes=NUM_CLASSES)
    if stem == "cifar":
        model.conv1 = nn.Conv2d(channels, 64, kernel_size=3, stride=1, padding=1, bias=False)
        nn.init.kaiming_normal_(model.conv1.weight, mode="fan_out", nonlinearity="relu")
        model.maxpool = nn.Identity()
    elif channels != 3:
        model.conv1 = nn.Conv2d(channels, 64, kernel_size=7, stride=2, padding=3, bias=False)
        nn.init.kaiming_normal_(model.conv1.weight, mode="fan_out", nonlinearity="relu")
    return model


def randomised(model):
    # Freshly initialised BatchNorms are the identity in eval mode; move their statistics and affine
    # parameters away from 0/1 so that a weight loaded into the wrong place cannot go unnoticed.
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.2, 0.2)
                m.running_mean.uniform_(-0.2, 0.2)
                m.running_var.uniform_(0.5, 1.5)
                m.num_batches_tracked.fill_(7)
    return model


def reference(out_dir, name, arch, depth, variant, channels, size):
    torch.manual_seed(0)
    if arch == "resnet":
        model = randomised(torchvision_resnet(depth, variant, channels))
    else:
        model = randomised(WideResNet(depth, NUM_CLASSES, widen_factor=int(variant), in_channels=channels))
    torch.save(model.state_dict(), os.path.join(out_dir, f"{name}.weights.pt"))

    x = torch.randn(2, channels, size, size)
    y = torch.tensor([1, 7])
    model.eval()
    with torch.no_grad():
        logits = model(x)
    model.train()
    F.cross_entropy(model(x), y).backward()
    ref = {
        "num_params": torch.tensor(sum(p.numel() for p in model.parameters())),
        "input": x,
        "labels": y,
        "logits": logits,
    }
    ref.update({f"grad.{n}": p.grad for n, p in model.named_parameters()})
    torch.save(ref, os.path.join(out_dir, f"{name}.ref.pt"))


def weight_files(out_dir):
    """WRN-10-1 (3 channels, 10 classes: small and quick) weights: as saved, and broken in the ways a user might."""
    torch.manual_seed(0)
    model = randomised(WideResNet(10, NUM_CLASSES, widen_factor=1))
    sd = model.state_dict()
    torch.save(sd, os.path.join(out_dir, "wrn.pt"))
    torch.save({k: v for k, v in sd.items() if k != "fc.bias"}, os.path.join(out_dir, "missing.pt"))
    torch.save({**sd, "fc.scale": torch.ones(NUM_CLASSES)}, os.path.join(out_dir, "extra.pt"))
    # As PyTorch < 0.4.1 wrote BatchNorms: no num_batches_tracked.
    torch.save({k: v for k, v in sd.items() if not k.endswith("num_batches_tracked")}, os.path.join(out_dir, "old.pt"))
    torch.save({"conv1.weight": 3}, os.path.join(out_dir, "int.pt"))
    torch.save({"model": sd, "epoch": 3}, os.path.join(out_dir, "checkpoint.pt"))
    torch.save(model, os.path.join(out_dir, "module.pt"))


def main():
    if sys.argv[1] == "--weight-files":
        weight_files(sys.argv[2])
        return
    out_dir = sys.argv[1]
    for case in sys.argv[2:]:
        name, arch, depth, variant, channels, size = case.split(",")
        reference(out_dir, name, arch, int(depth), variant, int(channels), int(size))
        print(f"{name}: ok")


if __name__ == "__main__":
    main()
