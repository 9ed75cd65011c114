"""Registered image transforms. Each returns a :class:`TransformSpec`: a deterministic ``pre`` step (cached
when ``data.cache_images`` is on) followed by ``train`` (augmenting) or ``test`` steps, and the image mode."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional

from ..registry import TRANSFORMS

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass
class TransformSpec:
    mode: str  # PIL mode images are converted to: RGB or L
    pre: Optional[Callable]  # deterministic, gives a fixed-size PIL image (None: no fixed-size step, no cache)
    train: Callable
    test: Callable
    key: str  # identifies `pre` for the image cache


def deterministic(tf: Callable) -> Callable:
    """Mark ``tf`` as giving the same tensor for the same image every time: a dataset whose images are cached
    (``data.cache_images``) then keeps its output instead of recomputing it every epoch (bit for bit the same
    tensors; :class:`sfda.data.dataset.ImageList`)."""
    tf.sfda_deterministic = True  # type: ignore[attr-defined]
    return tf


@TRANSFORMS.register("imagenet")
def imagenet(resize_size: int = 256, crop_size: int = 224, **_) -> TransformSpec:
    """SHOT: square resize to 256 (aspect ratio not kept), random 224 crop + flip / centre crop."""
    from torchvision import transforms as T

    norm = T.Normalize(IMAGENET_MEAN, IMAGENET_STD)
    return TransformSpec(
        mode="RGB",
        pre=T.Resize((resize_size, resize_size)),
        train=T.Compose([T.RandomCrop(crop_size), T.RandomHorizontalFlip(), T.ToTensor(), norm]),
        test=deterministic(T.Compose([T.CenterCrop(crop_size), T.ToTensor(), norm])),
        key=f"imagenet{resize_size}",
    )


@TRANSFORMS.register("digits")
def digits(**_) -> TransformSpec:
    """Grayscale digits at 28x28 (LeNet), normalised to [-1, 1]; no augmentation, as SHOT's MNIST->USPS."""
    from torchvision import transforms as T

    tf = deterministic(T.Compose([T.ToTensor(), T.Normalize((0.5,), (0.5,))]))
    return TransformSpec(mode="L", pre=T.Resize((28, 28)), train=tf, test=tf, key="digits28")


@TRANSFORMS.register("digits_rgb32")
def digits_rgb32(**_) -> TransformSpec:
    """RGB digits at 32x32 (DTN, SVHN->MNIST), normalised to [-1, 1]."""
    from torchvision import transforms as T

    tf = deterministic(T.Compose([T.ToTensor(), T.Normalize((0.5,) * 3, (0.5,) * 3)]))
    return TransformSpec(mode="RGB", pre=T.Resize((32, 32)), train=tf, test=tf, key="digits_rgb32")


@TRANSFORMS.register("cifar")
def cifar(**_) -> TransformSpec:
    """CIFAR: 4-pixel padded random crop + flip; CIFAR mean/std normalisation."""
    from torchvision import transforms as T

    norm = T.Normalize((0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616))
    return TransformSpec(
        mode="RGB",
        pre=T.Resize((32, 32)),
        train=T.Compose([T.RandomCrop(32, padding=4), T.RandomHorizontalFlip(), T.ToTensor(), norm]),
        test=deterministic(T.Compose([T.ToTensor(), norm])),
        key="cifar32",
    )


@TRANSFORMS.register("imagenet_rrc")
def imagenet_rrc(resize_size: int = 256, crop_size: int = 224, **_) -> TransformSpec:
    """ImageNet training from scratch: RandomResizedCrop + flip / resize of the short side + centre crop."""
    from torchvision import transforms as T

    norm = T.Normalize(IMAGENET_MEAN, IMAGENET_STD)
    return TransformSpec(
        mode="RGB",
        pre=None,
        train=T.Compose([T.RandomResizedCrop(crop_size), T.RandomHorizontalFlip(), T.ToTensor(), norm]),
        test=T.Compose([T.Resize(resize_size), T.CenterCrop(crop_size), T.ToTensor(), norm]),
        key=f"imagenet_rrc{resize_size}",
    )


def build_transform(cfg) -> TransformSpec:
    d = cfg.data
    return TRANSFORMS.get(d.transform, key="data.transform")(resize_size=d.resize_size, crop_size=d.crop_size)
