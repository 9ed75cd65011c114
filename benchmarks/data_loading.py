#!/usr/bin/env python
"""Image loading throughput with and without ``data.cache_images``, measured in one run.

SHOT re-decodes every full-size JPEG and resizes it to 256x256 on every pass (45 passes per Office-Home
task). With the cache, each image is decoded and resized once and later passes start from the 256x256
uint8 copy; the random crop, flip and normalisation still run per sample, so training inputs are
distributed exactly as before. This script writes N synthetic JPEGs at Office-Home-like sizes, then times
passes over them with the SHOT train transform, alternating the two modes.

    python benchmarks/data_loading.py --images 300
The last line reads ``speedup=X.XX`` (cached passes per second / uncached passes per second).

``--digits`` measures the second level of the cache instead: N 28x28 grayscale PNGs with the ``digits``
transform (ToTensor + normalise, no augmentation), both datasets caching the uint8 images; one recomputes the
transform on every pass, the other keeps its tensors (a transform marked deterministic, as the offline digits
and digits-LT configs use). ``speedup=`` is again passes per second, kept / recomputed.

    python benchmarks/data_loading.py --digits --images 4000
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

from sfda.data.dataset import ImageList
from sfda.data.lists import Entry
from sfda.data.transforms import digits, imagenet


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--images", type=int, default=300)
    ap.add_argument(
        "--size",
        type=int,
        nargs=2,
        default=[1000, 750],
        help="JPEG width height (Product/RealWorld images are often larger)",
    )
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--digits", action="store_true", help="28x28 digits: kept tensors vs recomputed transform")
    a = ap.parse_args()
    import torch
    from torchvision import transforms as T

    torch.set_num_threads(1)  # as inside a DataLoader worker
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        if a.digits:
            for i in range(a.images):
                Image.fromarray(rng.integers(0, 255, (28, 28), dtype=np.uint8), "L").save(root / f"{i}.png")
            entries = [Entry(f"{i}.png", 0, i + 1) for i in range(a.images)]
            tf = digits()
            recompute = T.Compose(list(tf.train.transforms))  # the same steps, not marked deterministic
            t0 = time.perf_counter()
            cached = ImageList(entries, root, tf.train, mode="L", pre=tf.pre, cache_key=tf.key)
            build = time.perf_counter() - t0
            plain = ImageList(entries, root, recompute, mode="L", pre=tf.pre, cache_key=tf.key)
            for i in range(len(cached)):  # the first pass computes the tensors it keeps
                cached[i]
        else:
            entries = []
            for i in range(a.images):
                w, h = a.size
                base = rng.integers(0, 255, (h // 8, w // 8, 3), dtype=np.uint8)
                img = Image.fromarray(base).resize((w, h), Image.BILINEAR)  # smooth content compresses like photos
                img.save(root / f"{i}.jpg", quality=90)
                entries.append(Entry(f"{i}.jpg", 0, i + 1))
            tf = imagenet()
            t0 = time.perf_counter()
            cached = ImageList(entries, root, tf.train, pre=tf.pre, cache_key=tf.key)
            build = time.perf_counter() - t0
            plain = ImageList(entries, root, tf.train, pre=tf.pre)
        times = {"plain": [], "cached": []}
        for r in range(a.repeats):
            for name, ds in (
                (("plain", plain), ("cached", cached)) if r % 2 == 0 else (("cached", cached), ("plain", plain))
            ):
                t0 = time.perf_counter()
                for i in range(len(ds)):
                    ds[i]
                times[name].append(time.perf_counter() - t0)
    med = {k: statistics.median(v) for k, v in times.items()}
    if a.digits:
        print(f"{a.images} 28x28 PNGs, digits transform, images cached as uint8, one process with one thread")
        print(f"  transform on every pass: {a.images / med['plain']:.0f} images/s per process")
        print(f"  tensors kept           : {a.images / med['cached']:.0f} images/s per process (after the first pass)")
    else:
        print(
            f"{a.images} JPEGs of {a.size[0]}x{a.size[1]}, SHOT train transform, one process with one thread "
            "(as a loader worker)"
        )
        print(f"  plain : {a.images / med['plain']:.0f} images/s per process")
        print(
            f"  cached: {a.images / med['cached']:.0f} images/s per process (cache built once in {build:.1f} s with "
            "threads)"
        )
    print(f"speedup={med['plain'] / med['cached']:.2f}")


if __name__ == "__main__":
    main()
