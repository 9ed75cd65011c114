"""CIFAR forms of the networks in the NS paper's supervised experiments (32x32 inputs, trained from scratch).

Each factory returns the network without its last Linear layer, with ``out_features``; the configs set
``model.bottleneck_dim: 0`` and ``model.classifier: linear``, so ``netB`` is the identity and ``netC`` is the
network's own final Linear layer.

- ``cifar_alexnet``: the CIFAR AlexNet of bearpaw/pytorch-classification (5 convs, 256-d, no dropout), the
  recipe the paper's CIFAR schedules come from.
- ``cifar_vgg19``: VGG-19 with BatchNorm, 512-d (bearpaw's ``vgg19_bn``).
- ``cifar_resnet``: He et al.'s CIFAR ResNet (6n+2 layers of basic blocks, 16/32/64 channels) with the
  parameter-free option-A shortcut: ``cifar_resnet32`` (0.46 M parameters, the CIFAR-LT network of
  Cui et al. / LDAM) and ``cifar_resnet110`` (1.7 M).
- ``cifar_resnext29``: ResNeXt-29 (``cifar_resnext.py``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal, Optional

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..params import ParamError, Params, hparams_for, param
from ..registry import BACKBONES
from .base import PARAMS_PREFIX, Backbone


def _kaiming_fan_out(module: nn.Module) -> None:
    """bearpaw's initialisation: conv weights N(0, sqrt(2 / (k*k*out))), BatchNorm (1, 0)."""
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            n = m.kernel_size[0] * m.kernel_size[1] * m.out_channels
            nn.init.normal_(m.weight, 0.0, math.sqrt(2.0 / n))
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)


@BACKBONES.register("cifar_alexnet")
class CifarAlexNet(Backbone):
    """AlexNet for 32x32 CIFAR images (bearpaw/pytorch-classification): 5 convs, 256-d features."""

    def build(self, hp: Any) -> None:
        self.features = nn.Sequential(
            nn.Conv2d(3, 64, kernel_size=11, stride=4, padding=5),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(2, 2),
            nn.Conv2d(64, 192, kernel_size=5, padding=2),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(2, 2),
            nn.Conv2d(192, 384, kernel_size=3, padding=1),
            nn.ReLU(inplace=True),
            nn.Conv2d(384, 256, kernel_size=3, padding=1),
            nn.ReLU(inplace=True),
            nn.Conv2d(256, 256, kernel_size=3, padding=1),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(2, 2),
        )
        self.out_features = 256

    def forward(self, x):
        return torch.flatten(self.features(x), 1)


VGG19 = [64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M", 512, 512, 512, 512, "M"]


@BACKBONES.register("cifar_vgg19")
class CifarVGG19(Backbone):
    """VGG-19 for 32x32 CIFAR images, with BatchNorm (bearpaw's vgg19_bn): 16 convs, 512-d features."""

    @dataclass
    class Params(Params):
        batch_norm: bool = param(True, help="BatchNorm after every convolution (bearpaw's vgg19_bn)")

    def build(self, hp: Any) -> None:
        batch_norm = hp.batch_norm
        layers, c = [], 3
        for v in VGG19:
            if v == "M":
                layers.append(nn.MaxPool2d(2, 2))
                continue
            layers.append(nn.Conv2d(c, v, kernel_size=3, padding=1))
            if batch_norm:
                layers.append(nn.BatchNorm2d(v))
            layers.append(nn.ReLU(inplace=True))
            c = v
        self.features = nn.Sequential(*layers)
        self.out_features = 512
        _kaiming_fan_out(self)

    def forward(self, x):
        return torch.flatten(self.features(x), 1)


class _ShortcutA(nn.Module):
    """Option-A shortcut: subsample by 2 and zero-pad the new channels (no parameters)."""

    def __init__(self, planes: int):
        super().__init__()
        self.pad = planes // 4

    def forward(self, x):
        return F.pad(x[:, :, ::2, ::2], (0, 0, 0, 0, self.pad, self.pad))


class BasicBlock(nn.Module):
    def __init__(self, in_planes: int, planes: int, stride: int = 1, shortcut: str = "A"):
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.shortcut = nn.Identity()
        if stride != 1 or in_planes != planes:
            if shortcut == "A":
                self.shortcut = _ShortcutA(planes)
            else:
                self.shortcut = nn.Sequential(
                    nn.Conv2d(in_planes, planes, 1, stride=stride, bias=False), nn.BatchNorm2d(planes)
                )

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


@dataclass
class CifarResNetParams(Params):
    depth: int = param(32, low=8, help="layers: 6n+2 (20, 32, 44, 56, 110, ...)")
    shortcut: Literal["A", "B"] = param("A", help="A: zero-padding (no parameters), B: 1x1 convolution")

    def check(self) -> None:
        if (self.depth - 2) % 6 != 0:
            raise ParamError("depth", f"must be 6n+2 for a CIFAR ResNet (20, 32, 44, 56, 110, ...), got {self.depth}")


@dataclass
class CifarResNet110Params(CifarResNetParams):
    depth: int = param(110, low=8, help="layers: 6n+2 (20, 32, 44, 56, 110, ...)")


@BACKBONES.register("cifar_resnet", params=CifarResNetParams)
class CifarResNet(Backbone):
    """He et al.'s CIFAR ResNet: depth 6n+2, basic blocks with 16/32/64 channels, 64-d features."""

    def build(self, hp: Any) -> None:
        assert isinstance(hp, CifarResNetParams)
        depth, shortcut = hp.depth, hp.shortcut
        n = (depth - 2) // 6
        self.conv1 = nn.Conv2d(3, 16, 3, stride=1, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(16)
        layers, in_planes = [], 16
        for planes, stride in ((16, 1), (32, 2), (64, 2)):
            blocks = []
            for s in [stride] + [1] * (n - 1):
                blocks.append(BasicBlock(in_planes, planes, s, shortcut))
                in_planes = planes
            layers.append(nn.Sequential(*blocks))
        self.layer1, self.layer2, self.layer3 = layers
        self.out_features = 64
        for m in self.modules():  # He et al. / LDAM: kaiming-normal convolutions
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight)

    def forward(self, x):
        x = F.relu(self.bn1(self.conv1(x)))
        x = self.layer3(self.layer2(self.layer1(x)))
        return torch.flatten(F.adaptive_avg_pool2d(x, 1), 1)


@BACKBONES.register("cifar_resnet32", params=CifarResNetParams)
def cifar_resnet32(
    pretrained: bool = False, weights_path: Optional[str] = None, hparams: Optional[Params] = None, **overrides: Any
) -> nn.Module:
    """CIFAR ResNet-32 (0.46 M parameters), the CIFAR-LT network."""
    return CifarResNet(pretrained, weights_path, hparams_for(cifar_resnet32, hparams, overrides, prefix=PARAMS_PREFIX))


@BACKBONES.register("cifar_resnet110", params=CifarResNet110Params)
def cifar_resnet110(
    pretrained: bool = False, weights_path: Optional[str] = None, hparams: Optional[Params] = None, **overrides: Any
) -> nn.Module:
    """CIFAR ResNet-110 (1.7 M parameters)."""
    return CifarResNet(pretrained, weights_path, hparams_for(cifar_resnet110, hparams, overrides, prefix=PARAMS_PREFIX))
