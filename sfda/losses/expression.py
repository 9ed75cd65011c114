"""``expression``: a loss written as a formula over ``p`` (softmax) and ``y`` (one-hot label), NeuroLoss-style.

    method:
      pl_loss: {name: expression, formula: "exp(2.4092 - p * (1 + y)) - cos(cos(sin(p)))"}
      pl_loss: {name: expression, formula: baikal}       # a shipped formula by name (FORMULAS below)

Per sample: the formula evaluated elementwise over the K classes, summed over them (``class_reduction``),
times -1 when ``flip`` is set; the batch reduction (a mean, or the sample weights) is the caller's. The
language and its 27 + 7 operators: :mod:`sfda.losses.expression_grammar` and docs/losses.md. A formula that
does not parse stops the config at load time with the position of the error.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, Literal, NamedTuple, Optional

import torch
import torch.nn.functional as F

from ..params import ParamError, param
from ..registry import LOSSES
from .base import Loss, LossParams
from .expression_grammar import FormulaError, Node, evaluate, parse


class NamedFormula(NamedTuple):
    formula: str
    source: str


# Shipped formulas (``formula: NAME``). Each is checked against a direct implementation in the tests.
# NeuroLoss1-3 are not here: their equations are not public (docs/losses.md shows how to add a formula).
FORMULAS: Dict[str, NamedFormula] = {
    "ce": NamedFormula("-y * log(p)", "cross-entropy -sum_k y_k ln(p_k + eps): the NeuroLoss code's CE baseline"),
    "ngl": NamedFormula(
        "exp(2.4092 - p * (1 + y)) - cos(cos(sin(p)))",
        "NGL (Akhmedova and Koerber 2024); the built-in `ngl` with class_reduction sum "
        "(class_reduction: mean for the reference's mean over the classes)",
    ),
    "baikal": NamedFormula(
        "-(log(p) - y / p)", "the 'Baikal' baseline of the NeuroLoss code: -sum_k [ln(p_k + eps) - y_k / (p_k + eps)]"
    ),
    "brier": NamedFormula("square(p - y)", "Brier (quadratic) score sum_k (p_k - y_k)^2"),
}


def formula_text(formula: str) -> str:
    """The formula itself: ``formula`` unless it names a shipped one."""
    named = FORMULAS.get(formula.strip().lower()) if isinstance(formula, str) else None
    return named.formula if named is not None else formula


def parse_formula(formula: str) -> Node:
    """The syntax tree of a formula or shipped formula name (:class:`FormulaError` if it does not parse)."""
    return parse(formula_text(formula))


@LOSSES.register("expression", aliases=("formula",))
class ExpressionLoss(Loss):
    """A loss written as a formula over p, y, K and constants with the NeuroLoss operators (docs/losses.md).

    p is the softmax, y the one-hot label (optionally smoothed); the formula's value is summed over the classes
    and optionally negated (``flip``). Parsed by sfda's own grammar, never by Python eval."""

    @dataclass
    class Params(LossParams):
        formula: str = param(
            "ce", help="a formula over p, y, K (docs/losses.md) or a shipped name: " + ", ".join(FORMULAS)
        )
        flip: bool = param(False, help="multiply the per-sample value by -1 (the NeuroLoss 'flip' sign)")
        class_reduction: Literal["sum", "mean"] = param("sum", help="sum (NeuroLoss) or mean over the classes")
        label_smoothing: float = param(
            0.0, low=0.0, high=1.0, high_open=True, help="y = (1 - ls) one-hot + ls / K, as the NeuroLoss code's option"
        )

        def check(self) -> None:
            try:
                parse_formula(self.formula)
            except FormulaError as e:
                raise ParamError("formula", str(e)) from None

    hparams: Params

    def __init__(self, num_classes: int, hparams: Optional[LossParams] = None, **overrides):
        super().__init__(num_classes, hparams, **overrides)
        self.tree = parse_formula(self.hparams.formula)

    def per_class(self, probs: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """The formula's value for every class: [N, K] from float32 probabilities and (soft) labels [N, K]."""
        k = torch.tensor(float(probs.shape[1]), dtype=torch.float32, device=probs.device)
        return evaluate(self.tree, {"p": probs, "y": labels, "K": k}).expand_as(probs)

    def forward(
        self, logits: torch.Tensor, targets: torch.Tensor, indices: Optional[torch.Tensor] = None
    ) -> torch.Tensor:
        probs = torch.softmax(logits.float(), dim=1)
        labels = F.one_hot(targets.long(), probs.shape[1]).to(probs.dtype)
        smoothing = float(self.hparams.label_smoothing)
        if smoothing > 0:
            labels = labels * (1.0 - smoothing) + smoothing / probs.shape[1]
        values = self.per_class(probs, labels)
        per_sample = values.mean(dim=1) if self.hparams.class_reduction == "mean" else values.sum(dim=1)
        return -per_sample if self.hparams.flip else per_sample
