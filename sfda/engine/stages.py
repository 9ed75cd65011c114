"""The two stages of one experiment: which command-line override configures which stage, the source-stage
config of an adaptation config, and the keys both stages must agree on.

The rule (``sfda run --help`` and the README say it too): an override given to ``sfda run`` (or ``sfda adapt``,
which finds its source model the same way) applies to every stage whose config has the key, except keys that
belong to the adaptation stage by nature: ``method.*`` (the method, its loss), ``weighting.*``, ``sampler.*``,
``source.*``, ``data.target`` and the run's names (``name``, ``label``, ``task``, ``benchmark``).
``--source-set KEY=VALUE`` overrides the source stage alone, after everything else.

Keys that must match across the stages (the architecture, the input size and normalisation, the number of
classes) are compared between the source model's saved ``config.yaml`` and the adaptation config; a
mismatch stops with one line naming the key and both values.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Iterable, List, Sequence, Tuple

import yaml

from ..config import Cfg, load_config
from ..errors import ConfigError
from .rundir import plain

# sections/keys of an adaptation config that never configure its source stage
ADAPTATION_ONLY: Tuple[str, ...] = (
    "method",
    "weighting",
    "sampler",
    "source",
    "data.target",
    "name",
    "label",
    "task",
    "benchmark",
)
# settings of the adaptation config that its source stage inherits (besides the command line's overrides)
CARRIED: Tuple[str, ...] = (
    "seed",
    "output_root",
    "device",
    "deterministic",
    "data.root",
    "data.num_workers",
    "data.cache_images",
    "data.skip_bad_images",
)
# what the source model and its adaptation must agree on
MUST_MATCH: Tuple[str, ...] = (
    "model.backbone",
    "model.params",
    "model.bottleneck_dim",
    "model.bottleneck",
    "model.classifier",
    "data.num_classes",
)
# the evaluation-time input (image mode, size, normalisation) comes from these; training augmentation may differ
INPUT_KEYS: Tuple[str, ...] = ("data.transform", "data.resize_size", "data.crop_size")


def _key(item: str) -> str:
    return item.split("=", 1)[0].strip()


def adaptation_only(item: str) -> bool:
    key = _key(item)
    return any(key == k or key.startswith(k + ".") for k in ADAPTATION_ONLY)


def split_overrides(overrides: Iterable[str]) -> Tuple[List[str], List[str]]:
    """(overrides for both stages, overrides for the adaptation stage only)."""
    both: List[str] = []
    adapt: List[str] = []
    for item in overrides or ():
        (adapt if adaptation_only(item) else both).append(item)
    return both, adapt


def _get(cfg: Any, dotted: str) -> Any:
    node = cfg
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node


def source_config(cfg: Cfg, overrides: Sequence[str] = (), source_overrides: Sequence[str] = ()) -> Cfg:
    """The source-stage config of an adaptation config: the ``source.config`` file, with the adaptation
    config's carried settings, then every override that is not adaptation-only, then ``--source-set``."""
    if not cfg.source.config:
        raise ConfigError(
            "source.config is not set: `sfda run` needs it to train the source model "
            "(or set source.checkpoint to a folder with source_F/B/C.pt)"
        )
    carried = [f"{k}={json.dumps(_get(cfg, k))}" for k in CARRIED]
    both, _ = split_overrides(overrides)
    return load_config(cfg.source.config, carried + both + list(source_overrides))


def describe_routing(overrides: Sequence[str], source_overrides: Sequence[str]) -> str:
    """One line saying which overrides went to which stage, or "" when every override went to both."""
    both, adapt = split_overrides(overrides)
    if not adapt and not source_overrides:
        return ""
    parts = [f"both stages: {' '.join(both) or '-'}", f"adaptation only: {' '.join(adapt) or '-'}"]
    if source_overrides:
        parts.append(f"source only: {' '.join(source_overrides)}")
    return "overrides for " + "; ".join(parts)


def check_source_matches(cfg: Cfg, source_dir: Path) -> None:
    """Stop with one line if the source model in ``source_dir`` was trained with another architecture, input
    size or normalisation, or class count than ``cfg`` adapts with (needs the folder's ``config.yaml``; a
    folder without one, e.g. SHOT's own checkpoints, is not checked)."""
    saved_file = Path(source_dir) / "config.yaml"
    if not saved_file.is_file():
        return
    try:
        saved = yaml.safe_load(saved_file.read_text()) or {}
    except (OSError, yaml.YAMLError):
        return
    mismatched = [
        key
        for key in MUST_MATCH
        if plain(_get(saved, key) if _get(saved, key) is not None or key != "model.params" else {})
        != plain(_get(cfg, key))
    ]
    if not mismatched and _eval_input(saved) != _eval_input(cfg):
        mismatched = [key for key in INPUT_KEYS if _get(saved, key) != _get(cfg, key)] or list(INPUT_KEYS[:1])
    if mismatched:
        key = mismatched[0]
        ours, theirs = plain(_get(cfg, key)), plain(_get(saved, key))
        raise ConfigError(
            f"'{key}' is {json.dumps(ours)} here but the source model in {source_dir} was trained "
            f"with {json.dumps(theirs)}; use the same value (or train a source model for this one)"
        )


def _eval_input(cfg: Any) -> str:
    """The evaluation-time input pipeline a config gives (mode, deterministic resize, test transform)."""
    from ..registry import TRANSFORMS

    name = _get(cfg, "data.transform")
    if name not in TRANSFORMS:
        return f"unknown transform {name!r}"
    spec = TRANSFORMS.get(name)(resize_size=_get(cfg, "data.resize_size"), crop_size=_get(cfg, "data.crop_size"))
    return f"{spec.mode} | {spec.pre!r} | {spec.test!r}"
