"""ImageNet weights for torchvision backbones: downloaded once through torchvision's weights API, or read
from a local file. Offline failures say exactly which file to fetch and where to put it."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Optional

import torch

from ..errors import CheckpointError


def _hub_dir() -> Path:
    return Path(torch.hub.get_dir()) / "checkpoints"


def imagenet_state_dict(arch: str, weights_name: str = "IMAGENET1K_V1") -> dict:
    """State dict of torchvision's ``arch`` with ImageNet weights (SHOT used the V1 weights)."""
    import torchvision  # imported on use: it takes seconds, and most commands never need it

    enum = torchvision.models.get_model_weights(arch)
    w = getattr(enum, weights_name)
    fname = os.path.basename(w.url)
    cached = _hub_dir() / fname
    try:
        return w.get_state_dict(progress=True, check_hash=False)
    except Exception as e:  # URLError, HTTPError, socket errors, SSL errors ...
        raise CheckpointError(
            f"could not get ImageNet weights for {arch} ({type(e).__name__}: {e}); on a machine with internet "
            f"download {w.url} and put it at {cached} (or set model.weights_path=/path/to/{fname}), "
            f"or train from scratch with model.pretrained=false"
        ) from None


def load_local_weights(path: str) -> dict:
    p = Path(os.path.expanduser(path))
    if not p.is_file():
        raise CheckpointError(f"model.weights_path '{p}' not found")
    try:
        obj = torch.load(p, map_location="cpu", weights_only=True)
    except Exception as e:
        raise CheckpointError(
            f"model.weights_path '{p}' is not a readable PyTorch file ({type(e).__name__}: {e})"
        ) from None
    if isinstance(obj, dict) and "state_dict" in obj and isinstance(obj["state_dict"], dict):
        obj = obj["state_dict"]
    if not isinstance(obj, dict):
        raise CheckpointError(f"model.weights_path '{p}' does not hold a state dict")
    return {k[7:] if k.startswith("module.") else k: v for k, v in obj.items()}


def load_into(module: torch.nn.Module, state: dict, what: str, ignore_prefixes=("fc.", "classifier.6.")) -> None:
    """Load backbone weights, ignoring the ImageNet head; report missing keys clearly."""
    own = module.state_dict()
    usable = {k: v for k, v in state.items() if k in own}
    # checkpoints saved before PyTorch 0.4.1 (e.g. torchvision's DenseNet) have no BatchNorm counters;
    # load_state_dict fills them in
    missing = [k for k in own if k not in usable and not k.endswith("num_batches_tracked")]
    if missing:
        raise CheckpointError(f"{what} does not fit this backbone: {len(missing)} missing key(s), e.g. '{missing[0]}'")
    for k, v in usable.items():
        if own[k].shape != v.shape:
            raise CheckpointError(
                f"{what}: '{k}' has shape {tuple(v.shape)}, the backbone expects {tuple(own[k].shape)}"
            )
    module.load_state_dict(usable, strict=True)


def maybe_load(module: torch.nn.Module, arch: str, pretrained: bool, weights_path: Optional[str], remap=None) -> None:
    if weights_path:
        state = load_local_weights(weights_path)
        what = f"model.weights_path '{weights_path}'"
    elif pretrained:
        state = imagenet_state_dict(arch)
        what = f"ImageNet weights of {arch}"
    else:
        return
    if remap is not None:
        state = remap(state)
    load_into(module, state, what)
