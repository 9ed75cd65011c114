"""The per-sample loss interface.

A loss maps ``(logits, targets)`` to one value per sample (shape ``[N]``); the caller multiplies by sample
weights and reduces. Terms that are not per sample are explicit hooks, called once per batch or per
pseudo-label refresh:

- ``update_labels(labels)``: the current (pseudo-)labels of the whole training set, after each refresh
  (class counts for NLNL's weights, resetting truncated GCE's mask, ...);
- ``penalty(model)``: a batch-level term added once (e.g. ANL's L1 penalty on the parameters);
- ``indices`` (dataset indices of the batch) is passed for losses that keep per-sample state.

Hyperparameters are declared once, in the class's nested ``Params`` dataclass (type, default, range, help);
the config loader checks them when the config loads and the loss reads them from ``self.hparams``.

State that a loss keeps between calls (per-sample rows, queues, counters) lives in module buffers (per-sample
rows in a :class:`sfda.state.PerSampleState`), so ``state_dict()`` holds all of it and a resumed run continues
exactly. Losses are computed in float32 even under autocast.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Dict, Optional, Type, Union, cast

import torch
from torch import nn

from ..params import Params, hparams_for
from ..registry import LOSSES

# the config section a programmatically built loss is reported under (``GCE(10, q=0)``); from a config file
# the loader reports the section it is in (``method.pl_loss`` or ``method.loss``)
KEY_PREFIX = "method.pl_loss."


@dataclass
class LossParams(Params):
    """Base of every loss's ``Params`` (a loss without hyperparameters keeps this empty one)."""


class Loss(nn.Module):
    """A per-sample loss; subclasses declare ``Params`` and implement ``forward``."""

    name: str = ""
    Params: Type[LossParams] = LossParams
    hparams: LossParams

    def __init__(self, num_classes: int, hparams: Optional[LossParams] = None, **overrides: Any) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.hparams = cast(LossParams, hparams_for(type(self), hparams, overrides, prefix=KEY_PREFIX))

    def forward(
        self, logits: torch.Tensor, targets: torch.Tensor, indices: Optional[torch.Tensor] = None
    ) -> torch.Tensor:
        raise NotImplementedError

    def update_labels(self, labels: torch.Tensor) -> None:
        """Called with the labels of the whole training set whenever they are (re)computed."""

    def penalty(self, model: nn.Module) -> Union[torch.Tensor, float]:
        """A batch-level term added once to the loss (not weighted per sample)."""
        return 0.0


def build_loss(spec: Dict[str, Any], num_classes: int) -> Loss:
    """The loss of a config section ``{name: ..., <its params>}`` (checked again here, as a programmatic call
    may not come from the config loader)."""
    return LOSSES.build(spec["name"], spec, num_classes, key="loss name", prefix=KEY_PREFIX)
