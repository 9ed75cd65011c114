"""More ImageNet backbones for the NS paper's supervised experiments: torchvision DenseNet-121 and ViT-B/16,
and any timm model (Swin-T, ...) through the ``timm`` factory.

Each returns the network without its ImageNet head, with ``out_features``; ImageNet weights come through
:mod:`sfda.models.weights` (torchvision) or timm's own download (Hugging Face hub).
"""
from __future__ import annotations

import re

import torch.nn as nn
import torchvision

from ..errors import CheckpointError, ConfigError
from ..registry import BACKBONES
from .weights import load_local_weights, maybe_load

# torchvision's DenseNet checkpoints use the old key names 'norm.1', 'conv.2', ... inside dense layers
_DENSENET_KEY = re.compile(r"^(.*denselayer\d+\.(?:norm|relu|conv))\.((?:[12])\.(?:weight|bias|running_mean|running_var))$")


def densenet_remap(state: dict) -> dict:
    """Rename the old-style keys of torchvision's DenseNet ImageNet checkpoints ('norm.1' -> 'norm1')."""
    out = {}
    for k, v in state.items():
        m = _DENSENET_KEY.match(k)
        out[m.group(1) + m.group(2) if m else k] = v
    return out


@BACKBONES.register("densenet121")
def densenet121(pretrained: bool = True, weights_path=None, **_):
    """torchvision DenseNet-121 without its classifier (1024-d)."""
    net = torchvision.models.densenet121(weights=None)
    net.out_features = net.classifier.in_features
    net.classifier = nn.Identity()
    maybe_load(net, "densenet121", pretrained, weights_path, remap=densenet_remap)
    return net


@BACKBONES.register("vit_b_16")
def vit_b_16(pretrained: bool = True, weights_path=None, **_):
    """torchvision ViT-B/16 (224x224 inputs) without its head: the class token (768-d)."""
    net = torchvision.models.vit_b_16(weights=None)
    net.out_features = net.hidden_dim
    net.heads = nn.Identity()
    maybe_load(net, "vit_b_16", pretrained, weights_path)
    return net


@BACKBONES.register("timm")
def timm_backbone(pretrained: bool = True, weights_path=None, name: str = "", **kwargs):
    """Any timm model without its head (model.params.name, e.g. swin_tiny_patch4_window7_224); needs timm."""
    try:
        import timm
    except ImportError:
        raise ConfigError("model.backbone 'timm' needs the timm package: pip install timm "
                          "(or choose a torchvision backbone, e.g. model.backbone=resnet50)") from None
    if not name:
        raise ConfigError("model.backbone 'timm' needs model.params.name, e.g. model.params.name=swin_tiny_patch4_window7_224")
    if not timm.is_model(name):
        raise ConfigError(f"model.params.name: timm {timm.__version__} has no model '{name}' "
                          "(python -c \"import timm; print(timm.list_models('swin*'))\" lists names)")
    try:
        net = timm.create_model(name, pretrained=bool(pretrained and not weights_path), num_classes=0, **kwargs)
    except TypeError as e:
        raise ConfigError(f"model.params for timm model '{name}': {e}") from None
    except Exception as e:  # download failures: HTTP errors, offline hub, missing cache
        raise CheckpointError(
            f"could not get the pretrained weights of timm model '{name}' ({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}); "
            f"on a machine with internet run python -c \"import timm; timm.create_model('{name}', pretrained=True)\" "
            "and copy the Hugging Face cache ($HF_HOME, default ~/.cache/huggingface) here, or set model.weights_path=FILE, "
            "or train from scratch with model.pretrained=false") from None
    net.out_features = net.num_features
    if weights_path:
        state = load_local_weights(weights_path)
        own = net.state_dict()
        usable = {k: v for k, v in state.items() if k in own and own[k].shape == v.shape}
        missing = [k for k in own if k not in usable]
        if missing:
            raise CheckpointError(f"model.weights_path '{weights_path}' does not fit timm model '{name}': "
                                  f"{len(missing)} missing or mis-shaped key(s), e.g. '{missing[0]}'")
        net.load_state_dict(usable, strict=True)
    return net
