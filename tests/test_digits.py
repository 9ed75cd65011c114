"""The offline digits builder, its digits.png fallback chain, the torchvision digits format and the demo."""

import io
import re
import struct
import tarfile

import numpy as np
import pytest
import torch
from PIL import Image

from sfda.data import digits_offline as D
from sfda.errors import DataError


def synthetic_digits_png(path):
    """A digits.png-shaped image: 50 x 100 cells of 20x20; cell (r, c) has a bright 8x8 square whose
    position encodes the column, and rows 5k..5k+4 are digit k."""
    img = np.zeros((1000, 2000), dtype=np.uint8)
    for r in range(50):
        for c in range(100):
            y0, x0 = r * 20 + 2 + (c % 2) * 10, c * 20 + 2
            img[y0 : y0 + 8, x0 : x0 + 8] = 255
    Image.fromarray(img).save(path)
    return path


def test_grid_cutting_labels_and_preprocessing(tmp_path):
    png = synthetic_digits_png(tmp_path / "digits.png").read_bytes()
    x, y = D.mnist5k_from_png(png)
    assert x.shape == (5000, 28, 28) and y.shape == (5000,)
    assert torch.equal(torch.bincount(y), torch.full((10,), 500))
    assert y[0] == 0 and y[499] == 0 and y[500] == 1 and y[4999] == 9  # rows 5k..5k+4 are digit k
    assert x.max() == 1.0 and x.min() >= 0  # scaled so the maximum is 1
    assert torch.all(x[:, :4, :] == 0) and torch.all(x[:, :, -4:] == 0)  # 4-pixel frame (MNIST framing)
    # cell 0 has its square at the top, cell 1 (odd column) at the bottom of the cell
    top, bottom = x[0, 4:14].sum(), x[0, 14:24].sum()
    assert top > bottom
    assert x[1, 14:24].sum() > x[1, 4:14].sum()


def test_uci_preparation():
    x, y = D.uci_digits()
    assert x.shape == (1797, 28, 28) and set(y.tolist()) == set(range(10))
    mx = x.amax(dim=(1, 2))  # scaled to max 1 at 8x8, then bilinearly upsampled: peaks stay close to 1
    assert (mx <= 1).all() and (mx > 0.5).all() and mx.mean() > 0.95


def test_fallback_chain_error_lists_every_attempt(tmp_path, monkeypatch):
    monkeypatch.setattr(D, "DEBIAN_PATHS", (str(tmp_path / "no" / "digits.png"),))
    monkeypatch.delenv("SFDA_DIGITS_PNG", raising=False)
    with pytest.raises(DataError) as e:
        D.find_digits_png(str(tmp_path / "missing.png"), allow_download=False)
    msg = str(e.value)
    assert "missing.png (not found)" in msg and "no/digits.png (not installed)" in msg
    assert "apt-get install opencv-doc" in msg and "--digits-png" in msg and "\n" not in msg


def test_explicit_path_and_env_variable(tmp_path, monkeypatch):
    p = synthetic_digits_png(tmp_path / "d.png")
    data, where = D.find_digits_png(str(p), allow_download=False)
    assert where == str(p) and data == p.read_bytes()
    monkeypatch.setenv("SFDA_DIGITS_PNG", str(p))
    assert D.find_digits_png(None, allow_download=False)[1] == str(p)


def test_extract_from_a_debian_package(tmp_path):
    payload = b"\x89PNG fake"
    tar_buf = io.BytesIO()
    with tarfile.open(fileobj=tar_buf, mode="w:gz") as tf:
        info = tarfile.TarInfo("./usr/share/doc/opencv-doc/examples/data/digits.png")
        info.size = len(payload)
        tf.addfile(info, io.BytesIO(payload))
    body = tar_buf.getvalue()

    def member(name, data):
        head = f"{name:<16}{0:<12}{0:<6}{0:<6}{100644:<8}{len(data):<10}`\n".encode()
        return head + data + (b"\n" if len(data) % 2 else b"")

    deb = tmp_path / "opencv-doc_1_all.deb"
    deb.write_bytes(b"!<arch>\n" + member("debian-binary", b"2.0\n") + member("data.tar.gz", body))
    assert D._extract_deb_member(deb, "examples/data/digits.png") == payload


def test_builder_writes_images_and_lists(tmp_path):
    out = D.build(
        tmp_path / "dd", str(synthetic_digits_png(tmp_path / "digits.png")), allow_download=False, log=lambda *_: None
    )
    assert D.is_built(out)
    lines = (out / "lists" / "mnist5k.txt").read_text().splitlines()
    assert len(lines) == 5000 and lines[0] == "mnist5k/0/00000.png 0" and lines[-1].endswith(" 9")
    uci = (out / "lists" / "uci.txt").read_text().splitlines()
    assert len(uci) == 1797
    im = Image.open(out / lines[0].split()[0])
    assert im.size == (28, 28) and im.mode == "L"
    # the shipped lists are exactly what the builder writes
    from sfda.paths import LISTS_DIR

    assert (LISTS_DIR / "digits-offline" / "uci.txt").read_text() == (out / "lists" / "uci.txt").read_text()
    assert (LISTS_DIR / "digits-offline" / "mnist5k.txt").read_text() == (out / "lists" / "mnist5k.txt").read_text()


def _idx(path, arr, magic):
    with open(path, "wb") as f:
        f.write(struct.pack(">I", magic) + b"".join(struct.pack(">I", d) for d in arr.shape))
        f.write(arr.astype(np.uint8).tobytes())


def test_torchvision_digits_format_on_a_fake_mnist(tmp_path):
    from sfda.config import config_from_dict
    from sfda.data.formats import build_format

    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for split, n in (("train", 12), ("t10k", 6)):
        _idx(raw / f"{split}-images-idx3-ubyte", rng.integers(0, 255, (n, 28, 28)), 2051)
        _idx(raw / f"{split}-labels-idx1-ubyte", np.arange(n) % 10, 2049)
    cfg = config_from_dict(
        {
            "data": {
                "format": "torchvision_digits",
                "root": str(tmp_path),
                "num_classes": 10,
                "transform": "digits",
                "params": {"download": False},
            }
        }
    )
    digits_format = build_format(cfg)
    tr, te = digits_format.source_split("mnist")
    assert (len(tr), len(te)) == (12, 6)
    x, y, i = te[3]
    assert x.shape == (1, 28, 28) and y == 3 and i == 3 and te.labels[:4].tolist() == [0, 1, 2, 3]
    with pytest.raises(DataError, match=r"could not load USPS \(test\).*download=True"):
        digits_format.domain("usps", train=False)
    with pytest.raises(DataError, match="unknown digit domain 'kmnist'"):
        digits_format.domain("kmnist", train=False)


def test_digits_offline_prints_a_hint_that_finds_the_folder(tmp_path, monkeypatch, capsys):
    """`sfda data digits-offline --out DIR` prints settings that make the digits configs read DIR."""
    import re

    from sfda.cli import main
    from sfda.config import load_config
    from sfda.data.formats import data_root

    def built(folder):
        folder.mkdir(parents=True)
        (folder / "READY").write_text("sfda digits-offline\n")  # built already: the command only prints the hint
        return folder

    def hint(out=None):
        assert main(["data", "digits-offline"] + (["--out", str(out)] if out else [])) == 0
        return capsys.readouterr().out

    monkeypatch.delenv("SFDA_DATA", raising=False)
    monkeypatch.chdir(tmp_path)
    mine = built(tmp_path / "elsewhere" / "my-digits")
    text = hint(mine)
    assert f"data.root={mine}" in text and f"`sfda demo --data {mine}`" in text
    assert "SFDA_DATA" not in text  # the configs read $SFDA_DATA/digits-offline: no SFDA_DATA value reaches my-digits
    root = re.search(r"data\.root=([^`\s]+)`", text).group(1)
    assert data_root(load_config("digits/shot/mnist5k_uci", [f"data.root={root}"])) == mine

    named = built(tmp_path / "store" / "digits-offline")
    text = hint(named)
    parent = re.search(r"export SFDA_DATA=([^`\s]+)`", text).group(1)
    assert parent == str(named.parent) and f"data.root={named}" in text
    monkeypatch.setenv("SFDA_DATA", parent)
    assert data_root(load_config("digits/shot/mnist5k_uci")) == named
    assert "the digits configs find it there ($SFDA_DATA)" in hint()  # the default folder: no setting needed

    monkeypatch.delenv("SFDA_DATA")
    built(tmp_path / "data" / "digits-offline")
    assert "the digits configs find it there (./data" in hint()
    assert data_root(load_config("digits/shot/mnist5k_uci")).resolve() == tmp_path / "data" / "digits-offline"


def test_demo_end_to_end(tmp_path, capsys):
    from sfda.cli import main

    png = synthetic_digits_png(tmp_path / "digits.png")
    rc = main(
        [
            "demo",
            "--out",
            str(tmp_path / "runs"),
            "--data",
            str(tmp_path / "dd"),
            "--digits-png",
            str(png),
            "--no-download",
            "--cpu",
            "--set",
            "optim.epochs=1",
            "log.tensorboard=false",
        ]
    )
    assert rc == 0
    out = capsys.readouterr().out
    assert "| Source only |" in out and "| SHOT |" in out and "| SHOT+NS-WS |" in out
    metrics = sorted(p.relative_to(tmp_path / "runs").as_posix() for p in (tmp_path / "runs").rglob("metrics.json"))
    # --set optim.epochs=1 changes what is computed: each run folder carries the config's hash (docs/run-folders.md)
    assert all(re.search(r"\+[0-9a-f]{8}/seed2019/", m) for m in metrics)
    metrics = sorted(re.sub(r"\+[0-9a-f]{8}/", "/", m) for m in metrics)
    assert metrics == [
        "digits/shot/mnist5k_uci/seed2019/metrics.json",
        "digits/shot_ns/mnist5k_uci/seed2019/metrics.json",
        "digits/source/mnist5k/seed2019/metrics.json",
    ]


@pytest.mark.parametrize(
    "task, source_transform",
    [("mnist5k_uci", "digits"), ("uci_mnist5k", "digits_aug")],
)
def test_offline_digits_configs_ship_shots_recipe_per_direction(task, source_transform):
    """docs/digits-offline.md: SHOT's LeNetBase (no extra fc layer) in both stages; the large MNIST-5k source
    is not augmented (SHOT's MNIST -> USPS), the small UCI source is (SHOT's USPS -> MNIST); targets never."""
    from sfda.config import load_config

    adapt = load_config(f"configs/digits/shot/{task}.yaml")
    source = load_config(adapt.source.config)
    for cfg in (adapt, source):
        assert cfg.model.backbone == "lenet" and cfg.model.params["hidden"] == 0
    assert source.data.transform == source_transform
    assert adapt.data.transform == "digits"
