"""Per-sample losses, registered by name (see :mod:`sfda.losses.base` for the interface)."""
from .base import Loss, build_loss

__all__ = ["Loss", "build_loss"]
