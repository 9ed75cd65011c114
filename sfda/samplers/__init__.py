"""Class-aware training samplers (see :mod:`sfda.samplers.base`)."""

from .base import ClassSampler, build_sampler

__all__ = ["ClassSampler", "build_sampler"]
