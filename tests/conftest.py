import sys
from pathlib import Path

import pytest
import torch
from torchvision import transforms as T

sys.path.insert(0, str(Path(__file__).parent))

from sfda.data.transforms import TransformSpec  # noqa: E402
from sfda.registry import TRANSFORMS  # noqa: E402

from helpers import make_two_domain_set  # noqa: E402

torch.set_num_threads(2)


if "tiny16" not in TRANSFORMS:
    @TRANSFORMS.register("tiny16")
    def tiny16(**_):
        """16x16 RGB test images, scaled to [-1, 1]; flips in training."""
        norm = T.Normalize((0.5,) * 3, (0.5,) * 3)
        return TransformSpec("RGB", T.Resize((16, 16)), T.Compose([T.ToTensor(), norm]),
                             T.Compose([T.ToTensor(), norm]), "tiny16")


@pytest.fixture(scope="module")
def one_thread():
    """For a module of tiny models: they run far faster on one thread (two threads on a busy two-core machine
    spin-wait). Use with ``pytestmark = pytest.mark.usefixtures("one_thread")``."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="session")
def two_domains(tmp_path_factory):
    return make_two_domain_set(tmp_path_factory.mktemp("twodomains"))
