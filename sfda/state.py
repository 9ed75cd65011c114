"""Per-sample state: tensors with one row per training sample, kept as module buffers so that they are part
of ``state_dict`` (a resumed run continues with them exactly) and move with ``.to(device)``.

Losses with per-sample history (NLNL's label history, truncated GCE's mask) and the methods' memory banks
(features and predictions of every target sample) hold their rows in one :class:`PerSampleState`. The rows
are grown on demand to the dataset size (``grow``) or replaced whole (``assign``); loading a saved state
resizes the buffers to the saved shapes first, so a state saved after growth loads into a fresh module.
"""

from __future__ import annotations

from typing import Dict, Optional, Sequence, Tuple, Union

import torch
import torch.nn as nn

Device = Union[torch.device, str, None]


class PerSampleState(nn.Module):
    """Named buffers whose first dimension indexes the training samples.

    ``PerSampleState(history=((3,), torch.float32, 0.0), visits=((), torch.long, 0))`` declares two buffers,
    [N, 3] float and [N] long, empty until grown; new rows take the declared fill value.
    """

    def __init__(self, **specs: Tuple[Sequence[int], torch.dtype, float]):
        super().__init__()
        self._fills: Dict[str, float] = {}
        for name, (tail, dtype, fill) in specs.items():
            self.register_buffer(name, torch.full((0, *tail), fill, dtype=dtype))
            self._fills[name] = fill

    def __len__(self) -> int:
        """Rows held (0 before the first ``grow`` or ``assign``)."""
        return min((int(getattr(self, n).shape[0]) for n in self._fills), default=0)

    def get(self, name: str) -> torch.Tensor:
        return getattr(self, name)

    def grow(self, n: int, device: Device = None) -> None:
        """Make every buffer at least ``n`` rows long (new rows = the fill value); a no-op if they are."""
        for name, fill in self._fills.items():
            t = getattr(self, name)
            dev = t.device if device is None else torch.device(device)
            if t.shape[0] >= n:
                if t.device != dev:
                    self._buffers[name] = t.to(dev)
                continue
            extra = torch.full((n - t.shape[0], *t.shape[1:]), fill, dtype=t.dtype, device=dev)
            self._buffers[name] = torch.cat([t.to(dev), extra])

    def assign(self, name: str, value: torch.Tensor) -> None:
        """Replace a buffer whole (e.g. a memory bank filled from an eval pass); its shape may change."""
        if name not in self._fills:
            raise KeyError(f"no per-sample buffer '{name}'")
        self._buffers[name] = value

    def reset(self, n: Optional[int] = None, device: Device = None) -> None:
        """Every row back to the fill value (``n`` rows, default the current length)."""
        n = len(self) if n is None else n
        for name, fill in self._fills.items():
            t = getattr(self, name)
            dev = t.device if device is None else torch.device(device)
            self._buffers[name] = torch.full((n, *t.shape[1:]), fill, dtype=t.dtype, device=dev)

    def _load_from_state_dict(
        self, state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys, error_msgs
    ):
        # resize to the saved shapes first: the saved rows are what the run had grown to
        for name in self._fills:
            saved = state_dict.get(prefix + name)
            if saved is not None:
                cur = getattr(self, name)
                self._buffers[name] = torch.empty(saved.shape, dtype=cur.dtype, device=cur.device)
        super()._load_from_state_dict(
            state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys, error_msgs
        )
