"""The offline digits benchmark: MNIST-5k (OpenCV's ``digits.png``) and UCI digits (scikit-learn).

Both domains are brought to the same resolution so that the shift is one of style, not blur:
MNIST-5k 20x20 cells are area-downsampled to 8x8, UCI's 8x8 values are divided by 16; every image is
scaled to a maximum of 1, upsampled bilinearly to 20x20 and padded by 4 pixels to 28x28 (MNIST framing).
The images are written as PNG files with SHOT-format lists, so the benchmark runs through exactly the
loading code used for Office-Home.

``digits.png`` is found through, in order: an explicit path (``--digits-png`` or ``$SFDA_DIGITS_PNG``),
the Debian ``opencv-doc`` package's copy, a download from OpenCV's repository (SHA-256 verified), and
extraction from the ``opencv-doc`` package fetched with ``apt-get download``.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import shutil
import subprocess
import tarfile
import tempfile
import urllib.request
from pathlib import Path
from typing import List, Optional, Tuple

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from ..errors import DataError
from .lists import write_list

DIGITS_PNG_SHA256 = "60c917758ef97cc090f35cd8e293e4de691ef942847da0ff80dedab33d57c662"
DIGITS_PNG_URL = "https://raw.githubusercontent.com/opencv/opencv/4.x/samples/data/digits.png"
DEBIAN_PATHS = (
    "/usr/share/doc/opencv-doc/examples/data/digits.png",
    "/usr/share/doc/opencv-doc/examples/data/digits.png.gz",
)
DOMAINS = ("mnist5k", "uci")
FOLDER = "digits-offline"  # the configs' data.dataset_dir: the benchmark is read from $SFDA_DATA/digits-offline
CELL, ROWS, COLS = 20, 50, 100


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _read_maybe_gz(path: Path) -> bytes:
    data = path.read_bytes()
    return gzip.decompress(data) if path.suffix == ".gz" or data[:2] == b"\x1f\x8b" else data


def _extract_deb_member(deb: Path, member_suffix: str) -> Optional[bytes]:
    """Read one file out of a .deb (an ar archive holding data.tar.*) without dpkg."""
    raw = deb.read_bytes()
    if not raw.startswith(b"!<arch>\n"):
        return None
    pos = 8
    while pos + 60 <= len(raw):
        header = raw[pos : pos + 60]
        name = header[:16].decode().strip().rstrip("/")
        size = int(header[48:58].decode().strip())
        body = raw[pos + 60 : pos + 60 + size]
        pos += 60 + size + (size % 2)
        if name.startswith("data.tar"):
            with tarfile.open(fileobj=io.BytesIO(body)) as tf:
                for m in tf.getmembers():
                    if m.name.endswith(member_suffix) or m.name.endswith(member_suffix + ".gz"):
                        f = tf.extractfile(m)
                        if f is not None:
                            data = f.read()
                            return gzip.decompress(data) if m.name.endswith(".gz") else data
    return None


def find_digits_png(explicit: Optional[str] = None, *, allow_download: bool = True) -> Tuple[bytes, str]:
    """Return (png bytes, where it came from); raise DataError listing every attempt if none works."""
    tried: List[str] = []
    candidates = [explicit, os.environ.get("SFDA_DIGITS_PNG")]
    for c in candidates:
        if c:
            p = Path(c).expanduser()
            if p.is_file():
                return _read_maybe_gz(p), str(p)
            tried.append(f"{p} (not found)")
    for c in DEBIAN_PATHS:
        p = Path(c)
        if p.is_file():
            data = _read_maybe_gz(p)
            if _sha256(data) == DIGITS_PNG_SHA256:
                return data, str(p)
            tried.append(f"{p} (checksum mismatch)")
        else:
            tried.append(f"{p} (not installed)")
    if allow_download:
        try:
            with urllib.request.urlopen(DIGITS_PNG_URL, timeout=20) as r:
                data = r.read()
            if _sha256(data) == DIGITS_PNG_SHA256:
                return data, DIGITS_PNG_URL
            tried.append(f"{DIGITS_PNG_URL} (checksum mismatch)")
        except Exception as e:
            tried.append(f"{DIGITS_PNG_URL} ({type(e).__name__})")
        if shutil.which("apt-get"):
            with tempfile.TemporaryDirectory() as tmp:
                try:
                    subprocess.run(
                        ["apt-get", "download", "opencv-doc"],
                        cwd=tmp,
                        check=True,
                        stdout=subprocess.DEVNULL,
                        stderr=subprocess.DEVNULL,
                        timeout=600,
                    )
                    debs = sorted(Path(tmp).glob("opencv-doc_*.deb"))
                    data = _extract_deb_member(debs[0], "examples/data/digits.png") if debs else None
                    if data is not None and _sha256(data) == DIGITS_PNG_SHA256:
                        return data, "apt-get download opencv-doc"
                    tried.append("apt-get download opencv-doc (digits.png not found in the package)")
                except Exception as e:
                    tried.append(f"apt-get download opencv-doc ({type(e).__name__})")
        else:
            tried.append("apt-get download opencv-doc (apt-get not available)")
    raise DataError(
        "cannot find OpenCV's digits.png; tried: "
        + "; ".join(tried)
        + ". Fix: `apt-get install opencv-doc`, or download samples/data/digits.png from "
        "github.com/opencv/opencv and pass --digits-png PATH (or set SFDA_DIGITS_PNG)"
    )


def _prepare(images: torch.Tensor) -> torch.Tensor:
    """[N, 8, 8] in [0, 1] -> [N, 28, 28]: scale to max 1, bilinear to 20x20, pad 4."""
    x = images.float().unsqueeze(1)
    mx = x.amax(dim=(2, 3), keepdim=True).clamp_min(1e-8)
    x = x / mx
    x = F.interpolate(x, size=(20, 20), mode="bilinear", align_corners=False)
    x = F.pad(x, (4, 4, 4, 4))
    return x.squeeze(1).clamp(0, 1)


def mnist5k_from_png(png: bytes) -> Tuple[torch.Tensor, torch.Tensor]:
    """Cut the 50x100 grid of 20x20 cells (rows 5k..5k+4 hold digit k) and prepare them."""
    img = np.asarray(Image.open(io.BytesIO(png)).convert("L"), dtype=np.float32) / 255.0
    if img.shape != (ROWS * CELL, COLS * CELL):
        raise DataError(f"digits.png should be {COLS * CELL}x{ROWS * CELL} pixels, got {img.shape[1]}x{img.shape[0]}")
    cells = img.reshape(ROWS, CELL, COLS, CELL).transpose(0, 2, 1, 3).reshape(ROWS * COLS, CELL, CELL)
    labels = torch.arange(ROWS * COLS) // (COLS * 5)
    small = F.interpolate(torch.from_numpy(cells).unsqueeze(1), size=(8, 8), mode="area").squeeze(1)
    return _prepare(small), labels


def uci_digits() -> Tuple[torch.Tensor, torch.Tensor]:
    from sklearn.datasets import load_digits

    d = load_digits()
    x = torch.from_numpy(d.images.astype(np.float32) / 16.0)
    return _prepare(x), torch.from_numpy(d.target.astype(np.int64))


def _write_domain(out: Path, name: str, images: torch.Tensor, labels: torch.Tensor) -> List[Tuple[str, int]]:
    order = sorted(range(len(labels)), key=lambda i: (int(labels[i]), i))
    entries = []
    arr = (images.numpy() * 255.0 + 0.5).astype(np.uint8)
    for i in order:
        rel = f"{name}/{int(labels[i])}/{i:05d}.png"
        p = out / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(arr[i], mode="L").save(p)
        entries.append((rel, int(labels[i])))
    return entries


def build(out: os.PathLike, digits_png: Optional[str] = None, *, allow_download: bool = True, log=print) -> Path:
    """Write ``out/{mnist5k,uci}/<label>/<index>.png`` and ``out/lists/{mnist5k,uci}.txt``."""
    out = Path(out)
    png, where = find_digits_png(digits_png, allow_download=allow_download)
    log(f"digits.png from {where}")
    tmp = out.with_name(out.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    for name, (x, y) in (("mnist5k", mnist5k_from_png(png)), ("uci", uci_digits())):
        entries = _write_domain(tmp, name, x, y)
        write_list(entries, tmp / "lists" / f"{name}.txt")
        log(f"{name}: {len(entries)} images")
    if out.exists():
        shutil.rmtree(out)
    os.replace(tmp, out)
    (out / "READY").write_text("sfda digits-offline\n")
    return out


def is_built(root: os.PathLike) -> bool:
    return (Path(root) / "READY").is_file()


def default_root() -> Path:
    env = os.environ.get("SFDA_DATA")
    return (Path(env) if env else Path("data")) / FOLDER


def ensure(root: Optional[os.PathLike] = None) -> Path:
    """The benchmark folder ``root`` (default: :func:`default_root`), built first if it is not there."""
    path = Path(root) if root else default_root()
    if not is_built(path):
        build(path)
    return path
