"""Any timm model (Swin-T, ...) as a backbone (``netF``), for the NS paper's supervised experiments.

timm is optional (``pip install timm``, or the ``timm`` extra: ``pip install -e ".[timm]"``); it is imported
only when a config selects ``model.backbone: timm``. ImageNet weights come through timm's own download
(Hugging Face hub) or ``model.weights_path``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Dict, Optional

import torch.nn as nn

from ..errors import CheckpointError, ConfigError
from ..params import ParamError, Params, hparams_for, param
from ..registry import BACKBONES
from .weights import load_local_weights

INSTALL_HINT = 'pip install timm, or pip install -e ".[timm]"'


@dataclass
class TimmParams(Params):
    name: str = param("", help="timm model name (required), e.g. swin_tiny_patch4_window7_224")
    kwargs: Dict[str, Any] = param({}, help="extra keyword arguments for timm.create_model")

    def check(self) -> None:
        if not self.name:
            raise ParamError("name", "must name a timm model, e.g. model.params.name=swin_tiny_patch4_window7_224")


def import_timm() -> Any:
    try:
        import timm
    except ImportError:
        raise ConfigError(
            f"model.backbone 'timm' needs the timm package: {INSTALL_HINT} "
            "(or choose a torchvision backbone, e.g. model.backbone=resnet50)"
        ) from None
    return timm


@BACKBONES.register("timm", params=TimmParams)
def timm_backbone(
    pretrained: bool = True, weights_path: Optional[str] = None, hparams: Optional[Params] = None, **overrides: Any
) -> nn.Module:
    """Any timm model without its head (model.params.name, e.g. swin_tiny_patch4_window7_224); needs timm."""
    hp = hparams_for(timm_backbone, hparams, overrides, prefix="model.params.")
    assert isinstance(hp, TimmParams)
    timm = import_timm()
    name = hp.name
    if not timm.is_model(name):
        raise ConfigError(
            f"model.params.name: timm {timm.__version__} has no model '{name}' "
            "(python -c \"import timm; print(timm.list_models('swin*'))\" lists names)"
        )
    try:
        net = timm.create_model(name, pretrained=bool(pretrained and not weights_path), num_classes=0, **hp.kwargs)
    except TypeError as e:
        raise ConfigError(f"model.params.kwargs for timm model '{name}': {e}") from None
    except Exception as e:  # download failures: HTTP errors, offline hub, missing cache
        first_line = str(e).splitlines()[0] if str(e) else ""
        raise CheckpointError(
            f"could not get the pretrained weights of timm model '{name}' ({type(e).__name__}: {first_line}); "
            f"on a machine with internet run python -c \"import timm; timm.create_model('{name}', pretrained=True)\" "
            "and copy the Hugging Face cache ($HF_HOME, default ~/.cache/huggingface) here, or set "
            "model.weights_path=FILE, or train from scratch with model.pretrained=false"
        ) from None
    net.out_features = net.num_features
    if weights_path:
        state = load_local_weights(weights_path)
        own = net.state_dict()
        usable = {k: v for k, v in state.items() if k in own and own[k].shape == v.shape}
        missing = [k for k in own if k not in usable]
        if missing:
            raise CheckpointError(
                f"model.weights_path '{weights_path}' does not fit timm model '{name}': "
                f"{len(missing)} missing or mis-shaped key(s), e.g. '{missing[0]}'"
            )
        net.load_state_dict(usable, strict=True)
    return net
