import pytest
import torch
from PIL import Image

from sfda.config import config_from_dict
from sfda.data.dataset import ImageList
from sfda.data.formats import build_format, split_indices
from sfda.data.lists import read_list
from sfda.data.transforms import deterministic
from sfda.errors import DataError


def _setup(tmp_path, n=4):
    (tmp_path / "img").mkdir()
    lines = []
    for i in range(n):
        Image.new("RGB", (20, 20), (10 * i, 0, 0)).save(tmp_path / "img" / f"{i}.png")
        lines.append(f"img/{i}.png {i % 2}")
    (tmp_path / "d.txt").write_text("\n".join(lines) + "\n")
    return read_list(tmp_path / "d.txt", 2)


def test_dataset_returns_image_label_index(tmp_path):
    entries = _setup(tmp_path)
    ds = ImageList(entries, tmp_path, lambda im: torch.tensor(im.size), list_file="d.txt")
    x, y, i = ds[3]
    assert x.tolist() == [20, 20] and y == 1 and i == 3
    assert ds.labels.tolist() == [0, 1, 0, 1]


def test_missing_image_names_list_line_and_path(tmp_path):
    entries = _setup(tmp_path)
    (tmp_path / "img" / "2.png").unlink()
    with pytest.raises(DataError, match=r"d\.txt:3: image '.*img/2\.png' not found.*data\.skip_bad_images"):
        ImageList(entries, tmp_path, lambda im: im, list_file="d.txt")


def test_corrupt_image_names_list_line_and_path(tmp_path):
    entries = _setup(tmp_path)
    (tmp_path / "img" / "1.png").write_bytes(b"garbage")
    ds = ImageList(entries, tmp_path, lambda im: im, list_file="d.txt")
    with pytest.raises(DataError, match=r"d\.txt:2: cannot decode image '.*img/1\.png'"):
        ds[1]


def test_skip_bad_images_drops_and_counts(tmp_path):
    entries = _setup(tmp_path)
    (tmp_path / "img" / "1.png").write_bytes(b"garbage")
    (tmp_path / "img" / "3.png").unlink()
    ds = ImageList(entries, tmp_path, lambda im: im, list_file="d.txt", skip_bad=True)
    assert len(ds) == 2 and [e.line for e in ds.skipped] == [2, 4]
    assert [ds[i][2] for i in range(len(ds))] == [0, 1]  # indices are renumbered densely


def test_cache_gives_the_same_images(tmp_path):
    entries = _setup(tmp_path)
    from torchvision import transforms as T

    a = ImageList(entries, tmp_path, T.PILToTensor(), pre=T.Resize((8, 8)))
    b = ImageList(entries, tmp_path, T.PILToTensor(), pre=T.Resize((8, 8)), cache_key="k")
    for i in range(4):
        assert torch.equal(a[i][0], b[i][0])


class _Counting:
    """A deterministic transform that counts its calls."""

    def __init__(self, tf, marked=True):
        self.tf, self.calls = tf, 0
        if marked:
            deterministic(self)

    def __call__(self, img):
        self.calls += 1
        return self.tf(img)


def test_a_deterministic_transform_runs_once_per_cached_image(tmp_path):
    entries = _setup(tmp_path)
    from torchvision import transforms as T

    plain = ImageList(
        entries, tmp_path, T.Compose([T.ToTensor(), T.Normalize((0.5,) * 3, (0.5,) * 3)]), pre=T.Resize((8, 8))
    )
    counting = _Counting(T.Compose([T.ToTensor(), T.Normalize((0.5,) * 3, (0.5,) * 3)]))
    cached = ImageList(entries, tmp_path, counting, pre=T.Resize((8, 8)), cache_key="k2")
    for _ in range(3):  # three epochs
        for i in range(4):
            assert torch.equal(cached[i][0], plain[i][0])  # bit for bit what the transform gives
    assert counting.calls == 4
    replaced = _Counting(T.PILToTensor())  # another transform (multi-view methods replace it): recomputed
    cached.transform = replaced
    assert torch.equal(cached[1][0], T.PILToTensor()(plain._load(plain.entries[1])))
    assert replaced.calls == 1


def test_unmarked_transforms_and_uncached_images_are_recomputed(tmp_path):
    entries = _setup(tmp_path)
    from torchvision import transforms as T

    unmarked = _Counting(T.PILToTensor(), marked=False)  # e.g. a random augmentation: never kept
    ds = ImageList(entries, tmp_path, unmarked, pre=T.Resize((8, 8)), cache_key="k3")
    ds[0], ds[0]
    assert unmarked.calls == 2
    marked = _Counting(T.PILToTensor())
    ds = ImageList(entries, tmp_path, marked, pre=T.Resize((8, 8)))  # no image cache: nothing kept
    ds[0], ds[0]
    assert marked.calls == 2


def test_the_digits_transforms_are_marked_deterministic():
    from sfda.data.transforms import cifar, digits, digits_rgb32, imagenet

    assert digits().train.sfda_deterministic and digits_rgb32().test.sfda_deterministic
    assert cifar().test.sfda_deterministic and not getattr(cifar().train, "sfda_deterministic", False)
    assert imagenet().test.sfda_deterministic and not getattr(imagenet().train, "sfda_deterministic", False)


def test_source_split_is_seeded_90_10():
    tr, va = split_indices(2427, 0.1, seed=2020)
    assert (len(tr), len(va)) == (2184, 243)  # SHOT's Art split sizes
    assert split_indices(2427, 0.1, seed=2020) == (tr, va)
    assert split_indices(2427, 0.1, seed=2021) != (tr, va)
    assert sorted(tr + va) == list(range(2427))


def test_list_format_split_and_missing_root(two_domains, tiny_config, tmp_path, monkeypatch):
    cfg = config_from_dict(tiny_config(two_domains, tmp_path))
    tr, va = build_format(cfg).source_split("source")
    assert len(tr) + len(va) == 160 and len(va) == 16
    x, y, i = tr[0]
    assert x.shape == (3, 16, 16)
    cfg = config_from_dict(tiny_config(two_domains, tmp_path, **{"data.root": None}))
    monkeypatch.delenv("SFDA_DATA", raising=False)
    with pytest.raises(DataError, match="SFDA_DATA"):
        build_format(cfg).domain("source", train=False)
    monkeypatch.setenv("SFDA_DATA", str(two_domains.parent))
    cfg = config_from_dict(
        tiny_config(two_domains, tmp_path, **{"data.root": None, "data.dataset_dir": two_domains.name})
    )
    assert len(build_format(cfg).domain("target", train=False)) == 160


def _truncated_jpeg(path):
    """A JPEG cut in half: Pillow's quick check (``verify``) accepts it, decoding it fails."""
    import io

    import numpy as np

    buf = io.BytesIO()
    Image.fromarray((np.random.default_rng(0).random((64, 64, 3)) * 255).astype("uint8")).save(buf, "JPEG")
    path.write_bytes(buf.getvalue()[: len(buf.getvalue()) * 3 // 4])


def test_an_image_that_passes_the_quick_check_but_cannot_be_decoded(tmp_path):
    from sfda.data.dataset import UndecodableImage

    entries = _setup(tmp_path)
    _truncated_jpeg(tmp_path / "img" / "1.png")
    plain = ImageList(entries, tmp_path, lambda im: im, list_file="d.txt")
    with pytest.raises(
        DataError, match=r"d\.txt:2: cannot decode image .*; replace the file or set data\.skip_bad_images=true$"
    ):
        plain[1]
    skipping = ImageList(entries, tmp_path, lambda im: im, list_file="d.txt", skip_bad=True)
    assert len(skipping) == 4  # it passed the quick check
    with pytest.raises(UndecodableImage) as err:  # the run drops it and starts again (test_user_errors.py)
        skipping[1]
    assert "skip_bad_images" not in str(err.value)  # never suggests the option that is already set
    assert str(err.value).endswith("replace or remove the file")


def test_cached_lists_drop_undecodable_images_at_once(tmp_path):
    from torchvision import transforms as T

    entries = _setup(tmp_path)
    _truncated_jpeg(tmp_path / "img" / "2.png")
    ds = ImageList(entries, tmp_path, T.PILToTensor(), pre=T.Resize((8, 8)), cache_key="k", skip_bad=True)
    assert len(ds) == 3 and [e.line for e in ds.skipped] == [3]
    assert ds.labels.tolist() == [0, 1, 1]
    assert [int(ds[i][0][0, 0, 0]) for i in range(3)] == [0, 10, 30]  # rows 0, 1 and 3 of the list, in order
