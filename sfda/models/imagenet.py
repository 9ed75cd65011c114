"""ImageNet backbones (``netF``) from torchvision, without their ImageNet head, each with ``out_features``.

ResNet, ResNeXt, Wide-ResNet, VGG and AlexNet keep SHOT's module names, so that SHOT's released
``source_F.pt`` files load unchanged; DenseNet-121 and ViT-B/16 serve the NS paper's supervised experiments.
ImageNet weights come through :mod:`sfda.models.weights` (downloaded once, or ``model.weights_path``).
None of them has parameters of its own (``model.params`` stays empty).
"""

from __future__ import annotations

import re
from typing import Any, Callable, Optional

import torch
import torch.nn as nn

from ..params import Params, hparams_for
from ..registry import BACKBONES
from .weights import maybe_load


def _models() -> Any:
    """``torchvision.models``, imported on first use (it takes seconds; a command that builds no ImageNet
    backbone, or stops on a config error, never pays for it)."""
    import torchvision.models

    return torchvision.models


class ResNetBase(nn.Module):
    """SHOT's ResBase: conv1 .. layer4 + global average pool (the fc layer is dropped)."""

    def __init__(self, arch: str, pretrained: bool = True, weights_path: Optional[str] = None):
        super().__init__()
        net = getattr(_models(), arch)(weights=None)
        self.out_features = net.fc.in_features
        del net.fc
        for name in ("conv1", "bn1", "relu", "maxpool", "layer1", "layer2", "layer3", "layer4", "avgpool"):
            setattr(self, name, getattr(net, name))
        maybe_load(self, arch, pretrained, weights_path)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return torch.flatten(self.avgpool(x), 1)


class VGGBase(nn.Module):
    """SHOT's VGGBase: ``features`` + the classifier without its last Linear (4096-d)."""

    def __init__(self, arch: str, pretrained: bool = True, weights_path: Optional[str] = None):
        super().__init__()
        net = getattr(_models(), arch)(weights=None)
        self.features = net.features
        self.avgpool = net.avgpool
        self.classifier = nn.Sequential(*[net.classifier[i] for i in range(6)])
        self.out_features = net.classifier[6].in_features
        maybe_load(self, arch, pretrained, weights_path)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(torch.flatten(self.avgpool(self.features(x)), 1))


class AlexNetBase(VGGBase):
    """AlexNet's ``features`` + its classifier without the last Linear (4096-d)."""


def _torchvision_factory(arch: str, cls: type) -> Callable[..., nn.Module]:
    def factory(
        pretrained: bool = True, weights_path: Optional[str] = None, hparams: Optional[Params] = None, **overrides: Any
    ) -> nn.Module:
        hparams_for(factory, hparams, overrides, prefix="model.params.")  # no parameters: rejects any
        return cls(arch, pretrained, weights_path)

    factory.__doc__ = f"torchvision {arch} ({cls.__name__})"
    return factory


for _names, _cls in (
    (
        [
            "resnet18",
            "resnet34",
            "resnet50",
            "resnet101",
            "resnet152",
            "resnext50_32x4d",
            "resnext101_32x8d",
            "wide_resnet50_2",
        ],
        ResNetBase,
    ),
    (["vgg11", "vgg13", "vgg16", "vgg19", "vgg11_bn", "vgg13_bn", "vgg16_bn", "vgg19_bn"], VGGBase),
    (["alexnet"], AlexNetBase),
):
    for _arch in _names:
        BACKBONES.register(_arch)(_torchvision_factory(_arch, _cls))


# torchvision's DenseNet checkpoints use the old key names 'norm.1', 'conv.2', ... inside dense layers
_DENSENET_KEY = re.compile(
    r"^(.*denselayer\d+\.(?:norm|relu|conv))\.((?:[12])\.(?:weight|bias|running_mean|running_var))$"
)


def densenet_remap(state: dict) -> dict:
    """Rename the old-style keys of torchvision's DenseNet ImageNet checkpoints ('norm.1' -> 'norm1')."""
    out = {}
    for k, v in state.items():
        m = _DENSENET_KEY.match(k)
        out[m.group(1) + m.group(2) if m else k] = v
    return out


@BACKBONES.register("densenet121")
def densenet121(
    pretrained: bool = True, weights_path: Optional[str] = None, hparams: Optional[Params] = None, **overrides: Any
) -> nn.Module:
    """torchvision DenseNet-121 without its classifier (1024-d)."""
    hparams_for(densenet121, hparams, overrides, prefix="model.params.")
    net = _models().densenet121(weights=None)
    net.out_features = net.classifier.in_features
    net.classifier = nn.Identity()
    maybe_load(net, "densenet121", pretrained, weights_path, remap=densenet_remap)
    return net


@BACKBONES.register("vit_b_16")
def vit_b_16(
    pretrained: bool = True, weights_path: Optional[str] = None, hparams: Optional[Params] = None, **overrides: Any
) -> nn.Module:
    """torchvision ViT-B/16 (224x224 inputs) without its head: the class token (768-d)."""
    hparams_for(vit_b_16, hparams, overrides, prefix="model.params.")
    net = _models().vit_b_16(weights=None)
    net.out_features = net.hidden_dim
    net.heads = nn.Identity()
    maybe_load(net, "vit_b_16", pretrained, weights_path)
    return net
