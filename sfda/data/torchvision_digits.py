"""SHOT's standard digit tasks through torchvision: SVHN, MNIST and USPS, downloaded into the data root on
first use. As in SHOT, the source model is selected on the source test split, the target is adapted on its
training split and evaluated on its test split.

USPS here is torchvision's (7291 train / 2007 test, 16x16, resized to 28x28), not the 28x28 CoGAN pickle
SHOT used (7438 / 1860), so numbers are close to but not exactly comparable with SHOT's.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional

import torch
from PIL import Image
from torch.utils.data import Dataset

from ..errors import DataError
from ..params import Params, param
from ..registry import FORMATS, TRANSFORMS
from .formats import DatasetFormat
from .transforms import TransformSpec, build_transform

DOMAINS = {"mnist": "MNIST", "usps": "USPS", "svhn": "SVHN"}


class TorchvisionDataset(Dataset):
    """Wrap a torchvision dataset to return (image, label, index) and expose ``labels``."""

    def __init__(self, base, transform, mode: str, pre=None):
        self.base, self.transform, self.mode, self.pre = base, transform, mode, pre
        targets = getattr(base, "targets", None)
        if targets is None:
            targets = base.labels
        self.labels = torch.as_tensor(list(targets) if not torch.is_tensor(targets) else targets, dtype=torch.long)

    def __len__(self):
        return len(self.base)

    def __getitem__(self, i):
        img, y = self.base[i]
        if not isinstance(img, Image.Image):
            img = Image.fromarray(img)
        img = img.convert(self.mode)
        if self.pre is not None:
            img = self.pre(img)
        return self.transform(img), int(y), i


@FORMATS.register("torchvision_digits")
class TorchvisionDigitsFormat(DatasetFormat):
    """SVHN / MNIST / USPS from torchvision (download into data.root on first use)."""

    download_fallback = True

    @dataclass
    class Params(Params):
        download: bool = param(True, help="download through torchvision when missing (false: never use the network)")

    def __init__(self, cfg: Any, hparams: Optional[Params] = None):
        super().__init__(cfg, hparams)
        self.num_classes = 10
        self.tf = build_transform(cfg)
        self.download = self.hparams.download

    def _base(self, name: str, train: bool):
        import torchvision.datasets as D

        if name not in DOMAINS:
            raise DataError(
                f"unknown digit domain '{name}' (data.source/data.target must be one of {', '.join(DOMAINS)})"
            )
        root = str(self.root)
        try:
            if name == "svhn":
                return D.SVHN(root, split="train" if train else "test", download=self.download)
            return getattr(D, DOMAINS[name])(root, train=train, download=self.download)
        except Exception as e:  # URLError, RuntimeError('Dataset not found'), checksum errors
            split = "train" if train else "test"
            raise DataError(
                f"could not load {DOMAINS[name]} ({split}) from '{root}' ({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}); "
                f"on a machine with internet run python -c \"import torchvision; torchvision.datasets.{DOMAINS[name]}('{root}', "
                f"{'split=' + repr(split) if name == 'svhn' else 'train=' + str(train)}, download=True)\" and copy '{root}' here, "
                f"or point data.root at a folder that has it"
            ) from None

    def domain(self, name: str, train: bool):
        tf = self.tf.train if train else self.tf.test
        return TorchvisionDataset(self._base(name, train), tf, self.tf.mode, self.tf.pre)

    def source_split(self, name: str):
        return self.domain(name, True), self.domain(name, False)


@TRANSFORMS.register("digits_aug")
def digits_aug(**_) -> TransformSpec:
    """28x28 grayscale with SHOT's USPS source augmentation: random 28 crop after 4-pixel padding, rotation 10."""
    from torchvision import transforms as T

    base = TRANSFORMS.get("digits")()
    train = T.Compose([T.RandomCrop(28, padding=4), T.RandomRotation(10), base.train])
    return TransformSpec(base.mode, base.pre, train, base.test, base.key)
