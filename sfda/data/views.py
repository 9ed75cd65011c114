"""Multi-view training samples (one weak and two strong views per image) for the contrastive methods.

:class:`MultiView` is an image transform that applies several transforms to one image and stacks the
results, so a dataset that returns ``(image, label, index)`` returns ``(views [V, C, H, W], label, index)``
and the loader's batches hold ``[N, V, C, H, W]`` (see :class:`sfda.datatypes.Batch`). A method turns a
training set into a multi-view one in its ``setup`` with :func:`use_views`: the weak view is the set's own
training transform (what SHOT trains on), each strong view the recipe below followed by the set's test
transform (tensor conversion, normalisation, and for ImageNet-style sets a centre crop that is a no-op on the
recipe's output size). The evaluation set is not touched.

Strong recipes (``method.strong_views``; ``auto`` picks by ``data.transform``):

- ``mocov2`` (AdaContrast's and PLUE's strong view; ImageNet-style sets and CIFAR): RandomResizedCrop to the
  crop size with scale (0.2, 1) and the default ratio; ColorJitter(0.4, 0.4, 0.4, 0.1) with p 0.8; RandomGrayscale
  p 0.2; PIL Gaussian blur with radius sigma ~ U(0.1, 2) and p 0.5 (not for images under 64 pixels); horizontal
  flip. The references crop the original image; here the crop is taken from the set's fixed-size ``pre`` image
  (256 x 256 for ``imagenet``), which keeps the image cache usable.
- ``affine`` (the digit benchmarks, and any set without a recipe): size-preserving, no flip (digits are not
  mirror-symmetric): RandomAffine(rotation 15 degrees, translation 10 %, scale 0.85-1.15, shear 10 degrees, black
  fill); brightness/contrast jitter 0.4 with p 0.8; PIL Gaussian blur with sigma ~ U(0.1, 1) and p 0.5.
"""

from __future__ import annotations

from typing import Any, Callable, List, Sequence

import torch
from PIL import Image, ImageFilter

from ..errors import SfdaError

STRONG_BY_TRANSFORM = {
    "imagenet": "mocov2",
    "imagenet_rrc": "mocov2",
    "cifar": "mocov2",
    "digits": "affine",
    "digits_rgb32": "affine",
}
RECIPES = ("mocov2", "affine")


class RandomBlur:
    """PIL Gaussian blur with radius sigma ~ U(low, high) (the MoCo-v2 blur); torch's RNG draws sigma."""

    def __init__(self, low: float = 0.1, high: float = 2.0):
        self.low, self.high = low, high

    def __call__(self, img: Image.Image) -> Image.Image:
        sigma = self.low + (self.high - self.low) * float(torch.rand(()))
        return img.filter(ImageFilter.GaussianBlur(radius=sigma))

    def __repr__(self) -> str:
        return f"RandomBlur(sigma=U({self.low}, {self.high}))"


class MultiView:
    """Applies each transform to the same image and stacks the tensors: [V, C, H, W]."""

    def __init__(self, transforms: Sequence[Callable]):
        self.transforms = list(transforms)

    def __call__(self, img: Any) -> torch.Tensor:
        return torch.stack([tf(img) for tf in self.transforms])

    def __repr__(self) -> str:
        return "MultiView(" + ", ".join(repr(t) for t in self.transforms) + ")"


def mocov2(size: int, blur: bool = True) -> Callable:
    from torchvision import transforms as T

    steps: List[Callable] = [
        T.RandomResizedCrop(size, scale=(0.2, 1.0)),
        T.RandomApply([T.ColorJitter(0.4, 0.4, 0.4, 0.1)], p=0.8),
        T.RandomGrayscale(p=0.2),
    ]
    if blur:
        steps.append(T.RandomApply([RandomBlur(0.1, 2.0)], p=0.5))
    steps.append(T.RandomHorizontalFlip())
    return T.Compose(steps)


def affine() -> Callable:
    from torchvision import transforms as T

    return T.Compose(
        [
            T.RandomAffine(degrees=15, translate=(0.1, 0.1), scale=(0.85, 1.15), shear=10, fill=0),
            T.RandomApply([T.ColorJitter(brightness=0.4, contrast=0.4)], p=0.8),
            T.RandomApply([RandomBlur(0.1, 1.0)], p=0.5),
        ]
    )


def strong_recipe(name: str, data: Any) -> Callable:
    """The PIL part of a strong view: ``name`` is mocov2, affine or auto (by ``data.transform``)."""
    if name == "auto":
        name = STRONG_BY_TRANSFORM.get(str(data.transform), "affine")
    if name == "mocov2":
        size = 32 if data.transform == "cifar" else int(data.crop_size)
        return mocov2(size, blur=size >= 64)
    if name == "affine":
        return affine()
    raise SfdaError(f"method.strong_views must be auto, {' or '.join(RECIPES)}, got '{name}'")


def use_views(dataset: Any, strong: Callable, n_strong: int = 2) -> None:
    """Make ``dataset`` return [1 + n_strong, C, H, W] per sample: its own training transform (the weak view),
    then ``n_strong`` independent draws of ``strong`` (see :func:`strong_view`). Calling it again keeps the weak
    view and replaces the strong ones."""
    if not hasattr(dataset, "transform"):
        raise SfdaError(
            f"the training set ({type(dataset).__name__}) has no 'transform' attribute: multi-view "
            "methods (adacontrast, plue) need a dataset format whose datasets apply `transform`"
        )
    weak = dataset.transform.transforms[0] if isinstance(dataset.transform, MultiView) else dataset.transform
    dataset.transform = MultiView([weak] + [strong] * n_strong)


def strong_view(recipe: Callable, finish: Callable) -> Callable:
    """A strong view: the PIL ``recipe`` then ``finish`` (the set's test transform: tensor, normalisation)."""
    from torchvision import transforms as T

    return T.Compose([recipe, finish])
