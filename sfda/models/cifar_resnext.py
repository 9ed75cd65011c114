"""ResNeXt-29 for CIFAR, the largest network of the NS paper's supervised experiments: 8x64d (cardinality 8,
widen factor 4; 34.4 M parameters), 32x32 inputs, trained from scratch. Like the other CIFAR backbones
(``cifar.py``) it returns the network without its last Linear layer, with ``out_features`` (1024).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..params import ParamError, Params, param
from ..registry import BACKBONES
from .base import Backbone


class ResNeXtBottleneck(nn.Module):
    """1x1 reduce -> grouped 3x3 -> 1x1 expand, with a projection shortcut when the shape changes."""

    def __init__(self, in_channels: int, out_channels: int, stride: int, cardinality: int, widen_factor: int):
        super().__init__()
        d = cardinality * out_channels // widen_factor
        self.conv_reduce = nn.Conv2d(in_channels, d, 1, bias=False)
        self.bn_reduce = nn.BatchNorm2d(d)
        self.conv_conv = nn.Conv2d(d, d, 3, stride=stride, padding=1, groups=cardinality, bias=False)
        self.bn = nn.BatchNorm2d(d)
        self.conv_expand = nn.Conv2d(d, out_channels, 1, bias=False)
        self.bn_expand = nn.BatchNorm2d(out_channels)
        self.shortcut = nn.Identity()
        if in_channels != out_channels or stride != 1:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False), nn.BatchNorm2d(out_channels)
            )

    def forward(self, x):
        y = F.relu(self.bn_reduce(self.conv_reduce(x)))
        y = F.relu(self.bn(self.conv_conv(y)))
        y = self.bn_expand(self.conv_expand(y))
        return F.relu(self.shortcut(x) + y)


@BACKBONES.register("cifar_resnext29")
class CifarResNeXt29(Backbone):
    """ResNeXt-29 for CIFAR (default 8x64d: cardinality 8, widen factor 4), 1024-d features."""

    @dataclass
    class Params(Params):
        cardinality: int = param(8, low=1, help="groups of the 3x3 convolutions")
        widen_factor: int = param(4, low=1, help="channel multiplier of the stages (64, 128, 256 x widen_factor)")
        depth: int = param(29, low=11, help="layers: 9n+2 (29 = 3 blocks per stage)")

        def check(self) -> None:
            if (self.depth - 2) % 9 != 0:
                raise ParamError(
                    "depth", f"must be 9n+2 for a CIFAR ResNeXt (29 = 3 blocks per stage), got {self.depth}"
                )

    def build(self, hp: Any) -> None:
        cardinality, widen_factor = hp.cardinality, hp.widen_factor
        n = (hp.depth - 2) // 9
        stages = [64, 64 * widen_factor, 128 * widen_factor, 256 * widen_factor]
        self.conv_1_3x3 = nn.Conv2d(3, 64, 3, 1, 1, bias=False)
        self.bn_1 = nn.BatchNorm2d(64)
        blocks = []
        for i, stride in enumerate((1, 2, 2)):
            stage = [
                ResNeXtBottleneck(
                    stages[i] if j == 0 else stages[i + 1],
                    stages[i + 1],
                    stride if j == 0 else 1,
                    cardinality,
                    widen_factor,
                )
                for j in range(n)
            ]
            blocks.append(nn.Sequential(*stage))
        self.stage_1, self.stage_2, self.stage_3 = blocks
        self.out_features = stages[3]
        for m in self.modules():  # ResNeXt.pytorch (prlz77), used by bearpaw: kaiming-normal fan-out convs
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def forward(self, x):
        x = F.relu(self.bn_1(self.conv_1_3x3(x)))
        x = self.stage_3(self.stage_2(self.stage_1(x)))
        return torch.flatten(F.adaptive_avg_pool2d(x, 1), 1)
