"""The three-part SFDA network: backbone ``netF`` -> bottleneck ``netB`` -> classifier ``netC``."""

from __future__ import annotations

import torch.nn as nn

from ..errors import ConfigError
from ..registry import BACKBONES
from .heads import Bottleneck, Classifier


class SFDANet(nn.Module):
    def __init__(self, netF: nn.Module, netB: nn.Module, netC: nn.Module):
        super().__init__()
        self.netF, self.netB, self.netC = netF, netB, netC

    @property
    def num_classes(self) -> int:
        return self.netC.num_classes

    def forward(self, x, return_features: bool = False):
        f = self.netB(self.netF(x))
        logits = self.netC(f)
        return (f, logits) if return_features else logits


def build_model(cfg) -> SFDANet:
    m = cfg.model
    netF = BACKBONES.build(
        m.backbone,
        m.params,
        key="model.backbone",
        prefix="model.params.",
        pretrained=m.pretrained,
        weights_path=m.weights_path,
    )
    dim = getattr(netF, "out_features", None)
    if not dim:
        raise ConfigError(f"backbone '{m.backbone}' does not declare out_features")
    if m.bottleneck_dim > 0:
        netB = Bottleneck(dim, m.bottleneck_dim, m.bottleneck, m.bottleneck_dropout)
    else:
        netB = nn.Identity()
        netB.out_features = dim
    netC = Classifier(netB.out_features, int(cfg.data.num_classes), m.classifier)
    return SFDANet(netF, netB, netC)
