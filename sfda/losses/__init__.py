"""Per-sample losses, registered by name (see :mod:`sfda.losses.base` for the interface)."""

from .base import Loss, LossParams, build_loss

__all__ = ["Loss", "LossParams", "build_loss"]
