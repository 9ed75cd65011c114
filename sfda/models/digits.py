"""Small backbones (``netF``) for small images, trained from scratch: SHOT's digit networks (LeNet for
MNIST/USPS, DTN for SVHN -> MNIST) and ``small_cnn``, a tiny CNN for tests and quick experiments."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn as nn

from ..params import Params, param
from ..registry import BACKBONES
from .base import Backbone

CHANNELS_HELP = "image channels (1: grey, 3: RGB)"


@BACKBONES.register("lenet")
class LeNetBase(Backbone):
    """SHOT's digit LeNet: conv 1->20 k5, pool, ReLU, conv 20->50 k5, Dropout2d 0.5, pool, ReLU; 800-d.

    ``hidden > 0`` adds the classic LeNet fully-connected layer (800 -> hidden, ReLU, dropout 0.5).
    """

    @dataclass
    class Params(Params):
        in_channels: int = param(1, low=1, help=CHANNELS_HELP)
        hidden: int = param(0, low=0, help="units of LeNet's fully-connected layer after the convolutions (0: none)")

    def build(self, hp: Any) -> None:
        self.conv_params = nn.Sequential(
            nn.Conv2d(hp.in_channels, 20, kernel_size=5),
            nn.MaxPool2d(2),
            nn.ReLU(),
            nn.Conv2d(20, 50, kernel_size=5),
            nn.Dropout2d(p=0.5),
            nn.MaxPool2d(2),
            nn.ReLU(),
        )
        self.out_features = 50 * 4 * 4
        self.fc_params = None
        if hp.hidden > 0:
            self.fc_params = nn.Sequential(nn.Linear(self.out_features, hp.hidden), nn.ReLU(), nn.Dropout(0.5))
            self.out_features = hp.hidden

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.flatten(self.conv_params(x), 1)
        return self.fc_params(x) if self.fc_params is not None else x


@BACKBONES.register("dtn")
class DTNBase(Backbone):
    """SHOT's DTN for SVHN->MNIST: three stride-2 5x5 convs (64, 128, 256) with BN, Dropout2d, ReLU; 4096-d."""

    @dataclass
    class Params(Params):
        in_channels: int = param(3, low=1, help=CHANNELS_HELP)

    def build(self, hp: Any) -> None:
        self.conv_params = nn.Sequential(
            nn.Conv2d(hp.in_channels, 64, kernel_size=5, stride=2, padding=2),
            nn.BatchNorm2d(64),
            nn.Dropout2d(0.1),
            nn.ReLU(),
            nn.Conv2d(64, 128, kernel_size=5, stride=2, padding=2),
            nn.BatchNorm2d(128),
            nn.Dropout2d(0.3),
            nn.ReLU(),
            nn.Conv2d(128, 256, kernel_size=5, stride=2, padding=2),
            nn.BatchNorm2d(256),
            nn.Dropout2d(0.5),
            nn.ReLU(),
        )
        self.out_features = 256 * 4 * 4

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.flatten(self.conv_params(x), 1)


@BACKBONES.register("small_cnn")
class SmallCNN(Backbone):
    """A tiny two-layer CNN for tests and quick experiments on small images (any size; 2x2 pooled, 8*width-d)."""

    @dataclass
    class Params(Params):
        in_channels: int = param(3, low=1, help=CHANNELS_HELP)
        width: int = param(16, low=1, help="channels of the first convolution (the second has twice as many)")

    def build(self, hp: Any) -> None:
        width = hp.width
        self.conv_params = nn.Sequential(
            nn.Conv2d(hp.in_channels, width, 3, stride=2, padding=1),
            nn.BatchNorm2d(width),
            nn.ReLU(),
            nn.Conv2d(width, 2 * width, 3, stride=2, padding=1),
            nn.BatchNorm2d(2 * width),
            nn.ReLU(),
            nn.AdaptiveAvgPool2d(2),
        )
        self.out_features = 2 * width * 4

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.flatten(self.conv_params(x), 1)
