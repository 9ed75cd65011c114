"""Base of the backbones written as ``nn.Module`` classes and trained from scratch (digits, CIFAR).

Every backbone is called as ``factory(pretrained, weights_path, hparams, **overrides)``. A :class:`Backbone`
subclass only declares its ``Params`` and builds its layers in :meth:`Backbone.build` from the typed
parameters (``model.params``); the base resolves them (keyword values checked as the config loader checks
them) and loads ``model.weights_path`` once the layers exist.
"""

from __future__ import annotations

from typing import Any, Optional

from torch import nn

from ..params import Params, hparams_for
from .weights import maybe_load

PARAMS_PREFIX = "model.params."  # where a backbone's parameters are set, for messages


class Backbone(nn.Module):
    """A backbone trained from scratch: no ImageNet weights (``pretrained`` is accepted and ignored)."""

    out_features: int

    def __init__(
        self,
        pretrained: bool = False,
        weights_path: Optional[str] = None,
        hparams: Optional[Params] = None,
        **overrides: Any,
    ):
        super().__init__()
        self.build(hparams_for(type(self), hparams, overrides, prefix=PARAMS_PREFIX))
        if weights_path:
            maybe_load(self, type(self).__name__, False, weights_path)

    def build(self, hp: Any) -> None:
        """Create the layers from the typed parameters ``hp`` and set ``out_features``."""
        raise NotImplementedError
