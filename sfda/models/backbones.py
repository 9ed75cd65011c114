"""Backbones (``netF``): torchvision ImageNet models without their last layer, with SHOT's module names so
that SHOT's released ``source_F.pt`` files load unchanged, and SHOT's digit networks (LeNet, DTN).

Each factory takes ``pretrained`` and ``weights_path`` and returns a module with ``out_features``.
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torchvision

from ..registry import BACKBONES
from .weights import maybe_load


class ResNetBase(nn.Module):
    """SHOT's ResBase: conv1 .. layer4 + global average pool (the fc layer is dropped)."""

    def __init__(self, arch: str, pretrained: bool = True, weights_path=None):
        super().__init__()
        net = getattr(torchvision.models, arch)(weights=None)
        self.out_features = net.fc.in_features
        del net.fc
        for name in ("conv1", "bn1", "relu", "maxpool", "layer1", "layer2", "layer3", "layer4", "avgpool"):
            setattr(self, name, getattr(net, name))
        maybe_load(self, arch, pretrained, weights_path)

    def forward(self, x):
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return torch.flatten(self.avgpool(x), 1)


class VGGBase(nn.Module):
    """SHOT's VGGBase: ``features`` + the classifier without its last Linear (4096-d)."""

    def __init__(self, arch: str, pretrained: bool = True, weights_path=None):
        super().__init__()
        net = getattr(torchvision.models, arch)(weights=None)
        self.features = net.features
        self.avgpool = net.avgpool
        self.classifier = nn.Sequential(*[net.classifier[i] for i in range(6)])
        self.out_features = net.classifier[6].in_features
        maybe_load(self, arch, pretrained, weights_path)

    def forward(self, x):
        return self.classifier(torch.flatten(self.avgpool(self.features(x)), 1))


class AlexNetBase(VGGBase):
    """AlexNet's ``features`` + its classifier without the last Linear (4096-d)."""


def _register_torchvision(names, cls):
    for arch in names:
        def factory(pretrained: bool = True, weights_path=None, _arch=arch, **_):
            return cls(_arch, pretrained, weights_path)
        factory.__doc__ = f"torchvision {arch} ({cls.__name__})"
        BACKBONES.register(arch)(factory)


_register_torchvision(["resnet18", "resnet34", "resnet50", "resnet101", "resnet152",
                       "resnext50_32x4d", "resnext101_32x8d", "wide_resnet50_2"], ResNetBase)
_register_torchvision(["vgg11", "vgg13", "vgg16", "vgg19", "vgg11_bn", "vgg13_bn", "vgg16_bn", "vgg19_bn"], VGGBase)
_register_torchvision(["alexnet"], AlexNetBase)


@BACKBONES.register("lenet")
class LeNetBase(nn.Module):
    """SHOT's digit LeNet: conv 1->20 k5, pool, ReLU, conv 20->50 k5, Dropout2d 0.5, pool, ReLU; 800-d.

    ``hidden > 0`` adds the classic LeNet fully-connected layer (800 -> hidden, ReLU, dropout 0.5).
    """

    def __init__(self, pretrained: bool = False, weights_path=None, in_channels: int = 1, hidden: int = 0, **_):
        super().__init__()
        self.conv_params = nn.Sequential(
            nn.Conv2d(in_channels, 20, kernel_size=5), nn.MaxPool2d(2), nn.ReLU(),
            nn.Conv2d(20, 50, kernel_size=5), nn.Dropout2d(p=0.5), nn.MaxPool2d(2), nn.ReLU(),
        )
        self.out_features = 50 * 4 * 4
        self.fc_params = None
        if hidden > 0:
            self.fc_params = nn.Sequential(nn.Linear(self.out_features, hidden), nn.ReLU(), nn.Dropout(0.5))
            self.out_features = hidden
        if weights_path:
            maybe_load(self, "lenet", False, weights_path)

    def forward(self, x):
        x = torch.flatten(self.conv_params(x), 1)
        return self.fc_params(x) if self.fc_params is not None else x


@BACKBONES.register("dtn")
class DTNBase(nn.Module):
    """SHOT's DTN for SVHN->MNIST: three stride-2 5x5 convs (64, 128, 256) with BN, Dropout2d, ReLU; 4096-d."""

    def __init__(self, pretrained: bool = False, weights_path=None, in_channels: int = 3, **_):
        super().__init__()
        self.conv_params = nn.Sequential(
            nn.Conv2d(in_channels, 64, kernel_size=5, stride=2, padding=2), nn.BatchNorm2d(64), nn.Dropout2d(0.1), nn.ReLU(),
            nn.Conv2d(64, 128, kernel_size=5, stride=2, padding=2), nn.BatchNorm2d(128), nn.Dropout2d(0.3), nn.ReLU(),
            nn.Conv2d(128, 256, kernel_size=5, stride=2, padding=2), nn.BatchNorm2d(256), nn.Dropout2d(0.5), nn.ReLU(),
        )
        self.out_features = 256 * 4 * 4
        if weights_path:
            maybe_load(self, "dtn", False, weights_path)

    def forward(self, x):
        return torch.flatten(self.conv_params(x), 1)


@BACKBONES.register("small_cnn")
class SmallCNN(nn.Module):
    """A tiny two-layer CNN for tests and quick experiments on small images (any size; 2x2 pooled, 8*width-d)."""

    def __init__(self, pretrained: bool = False, weights_path=None, in_channels: int = 3, width: int = 16, **_):
        super().__init__()
        self.conv_params = nn.Sequential(
            nn.Conv2d(in_channels, width, 3, stride=2, padding=1), nn.BatchNorm2d(width), nn.ReLU(),
            nn.Conv2d(width, 2 * width, 3, stride=2, padding=1), nn.BatchNorm2d(2 * width), nn.ReLU(),
            nn.AdaptiveAvgPool2d(2),
        )
        self.out_features = 2 * width * 4
        if weights_path:
            maybe_load(self, "small_cnn", False, weights_path)

    def forward(self, x):
        return torch.flatten(self.conv_params(x), 1)
