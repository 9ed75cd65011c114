"""Checkpoints in SHOT's three-file layout (``<prefix>_F.pt``, ``<prefix>_B.pt``, ``<prefix>_C.pt``, plain
state dicts), written atomically, and the run state used to resume."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

from .. import parallel
from ..errors import CheckpointError, os_cause

PARTS = ("F", "B", "C")


def atomic_save(obj: Any, path: os.PathLike) -> None:
    """Write to a temporary file in the same folder, then rename: a crash never leaves half a file. On several
    processes only rank 0 writes (every rank holds the same values)."""
    if not parallel.is_main():
        return
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        torch.save(obj, tmp)
        os.replace(tmp, path)
    except OSError as e:  # disk full, read-only file system, ...: one line, and no half-written file left
        tmp.unlink(missing_ok=True)
        raise CheckpointError(f"cannot write '{path}': {os_cause(e)}") from None


def save_fbc(model, folder: os.PathLike, prefix: str = "source") -> None:
    for part in PARTS:
        sd = {k: v.detach().cpu().clone() for k, v in getattr(model, f"net{part}").state_dict().items()}
        atomic_save(sd, Path(folder) / f"{prefix}_{part}.pt")


def has_fbc(folder: os.PathLike, prefix: str = "source") -> bool:
    return all((Path(folder) / f"{prefix}_{p}.pt").is_file() for p in PARTS)


def _convert_keys(sd: dict) -> dict:
    """Accept the new parametrisation keys of torch.nn.utils.parametrizations.weight_norm and DataParallel."""
    out = {}
    for k, v in sd.items():
        k = k[7:] if k.startswith("module.") else k
        k = k.replace("parametrizations.weight.original0", "weight_g").replace(
            "parametrizations.weight.original1", "weight_v"
        )
        out[k] = v
    return out


def load_fbc(model, folder: os.PathLike, prefix: str = "source") -> None:
    folder = Path(folder)
    for part in PARTS:
        f = folder / f"{prefix}_{part}.pt"
        if not f.is_file():
            raise CheckpointError(
                f"checkpoint '{f}' not found; train the source model first (`sfda train-source`) "
                "or point source.checkpoint at a folder with source_F.pt, source_B.pt, source_C.pt"
            )
        try:
            sd = torch.load(f, map_location="cpu", weights_only=True)
        except Exception as e:  # noqa: BLE001 - torch raises many types for damaged or foreign files
            raise CheckpointError(
                f"checkpoint '{f}' cannot be read ({type(e).__name__}): it is damaged or not a "
                "state dict; retrain the source model or point source.checkpoint at another "
                "folder"
            ) from None
        sd = _convert_keys(sd)
        net = getattr(model, f"net{part}")
        own = net.state_dict()
        if part == "C":
            key = "fc.weight_v" if "fc.weight_v" in sd else "fc.weight"
            if key in sd and key in own and sd[key].shape[0] != own[key].shape[0]:
                raise CheckpointError(
                    f"checkpoint '{f}' has {sd[key].shape[0]} classes but the config has "
                    f"data.num_classes={own[key].shape[0]}; use the matching source model or config"
                )
        missing = [k for k in own if k not in sd]
        unexpected = [k for k in sd if k not in own]
        if missing or unexpected:
            detail = f"missing '{missing[0]}'" if missing else f"unexpected '{unexpected[0]}'"
            raise CheckpointError(
                f"checkpoint '{f}' does not fit model.backbone/model.bottleneck_dim/model.classifier "
                f"of this config ({len(missing)} missing, {len(unexpected)} unexpected keys, {detail})"
            )
        for k, v in sd.items():
            if own[k].shape != v.shape:
                raise CheckpointError(
                    f"checkpoint '{f}': '{k}' has shape {tuple(v.shape)}, the model expects {tuple(own[k].shape)}"
                )
        net.load_state_dict(sd)
