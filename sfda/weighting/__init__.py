"""Per-sample weighters for the pseudo-label (or supervised) loss (see :mod:`sfda.weighting.base`)."""

from .base import Weighter, WeightInput, build_weighter

__all__ = ["WeightInput", "Weighter", "build_weighter"]
