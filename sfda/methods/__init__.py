"""Training methods (source training, SHOT, ...), registered by name; see :mod:`sfda.methods.base`."""

from .base import Batch, Method, MethodParams, StepInfo, StepOutput

__all__ = ["Batch", "Method", "MethodParams", "StepInfo", "StepOutput"]
