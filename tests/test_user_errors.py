"""Data files as people write them, damaged files and folders: one line naming the file and what to do."""

import json

import pytest
import torch

from sfda.data.lists import read_list
from sfda.errors import CheckpointError, DataError
from sfda.models.checkpoint import atomic_save, load_fbc
from sfda.results.table import collect


def test_a_list_with_a_utf8_byte_order_mark_reads_fine(tmp_path):
    f = tmp_path / "a.txt"
    f.write_bytes("\ufeffimg/a b.png 1\nimg/c.png 0\n".encode("utf-8"))
    entries = read_list(f)
    assert [(e.path, e.label, e.line) for e in entries] == [("img/a b.png", 1, 1), ("img/c.png", 0, 2)]


def test_a_list_that_is_not_utf8_names_the_file_line_and_byte(tmp_path):
    f = tmp_path / "latin1.txt"
    f.write_bytes("img/a.png 1\nimg/caf\u00e9.png 0\n".encode("latin-1"))
    with pytest.raises(DataError) as e:
        read_list(f)
    assert str(e.value) == f"{f}:2: not UTF-8 (byte 0xe9 at offset 19); save the list as UTF-8"


def test_a_corrupt_checkpoint_names_the_file_and_the_fix(tmp_path):
    from sfda.config import config_from_dict
    from sfda.models.network import build_model

    cfg = config_from_dict(
        {"model": {"backbone": "small_cnn", "pretrained": False, "bottleneck_dim": 8}, "data": {"num_classes": 3}}
    )
    model = build_model(cfg)
    for part in ("F", "B", "C"):
        (tmp_path / f"source_{part}.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError) as e:
        load_fbc(model, tmp_path, "source")
    msg = str(e.value)
    assert (
        msg.startswith(f"checkpoint '{tmp_path / 'source_F.pt'}' cannot be read (")
        and "retrain the source model" in msg
    )
    assert "weights_only" not in msg and "\n" not in msg


def test_a_failed_write_leaves_no_temporary_file(tmp_path, monkeypatch):
    def full_disk(obj, f, *a, **k):
        with open(f, "wb") as fh:
            fh.write(b"half")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(torch, "save", full_disk)
    with pytest.raises(CheckpointError) as e:
        atomic_save({"x": 1}, tmp_path / "state.pt")
    assert str(e.value) == f"cannot write '{tmp_path / 'state.pt'}': no space left on the device"
    assert list(tmp_path.iterdir()) == []


def test_table_names_every_metrics_file_it_cannot_read(tmp_path):
    good = tmp_path / "a" / "seed1"
    bad = tmp_path / "b" / "seed1"
    good.mkdir(parents=True)
    bad.mkdir(parents=True)
    (good / "metrics.json").write_text(json.dumps({"finished": True, "task": "t", "seed": 1, "accuracy": 50.0}))
    (bad / "metrics.json").write_text('{"finished": tr')
    notes = []
    runs = collect(tmp_path, warn=notes.append)
    assert len(runs) == 1 and notes == [
        f"warning: cannot read {bad / 'metrics.json'} (JSONDecodeError); its run is left out of the table"
    ]


def test_skip_bad_images_drops_a_file_that_fails_to_decode_during_the_run(
    tmp_path, make_two_domain_set, tiny_config, capsys
):
    """A truncated JPEG passes the quick check when the list is read and fails when the stage reads it:
    the stage drops it, records it, starts again, and ends exactly as a run in which that file is missing
    (dropped when the list is read, as skip_bad_images does for missing files)."""
    import io

    import numpy as np
    from PIL import Image

    from sfda.config import config_from_dict
    from sfda.data import dataset
    from sfda.engine.runner import run_dir, run_stage

    def one_set(name, damaged):
        root = make_two_domain_set(tmp_path / name, per_class=12)
        lines = (root / "lists" / "source.txt").read_text().splitlines()
        if damaged:
            buf = io.BytesIO()
            Image.fromarray((np.random.default_rng(0).random((64, 64, 3)) * 255).astype("uint8")).save(buf, "JPEG")
            (root / "source" / "bad.jpg").write_bytes(buf.getvalue()[: len(buf.getvalue()) * 3 // 4])
        lines.insert(5, "source/bad.jpg 0")  # missing from the clean set
        (root / "lists" / "source.txt").write_text("\n".join(lines) + "\n")
        return config_from_dict(
            tiny_config(
                root,
                tmp_path / name / "runs",
                **{"method.name": "source", "optim.epochs": 2, "data.skip_bad_images": True},
            )
        )

    damaged, missing = one_set("damaged", True), one_set("missing", False)
    assert run_stage(damaged, stop_after_epoch=1) is None  # drops the file, starts again, stops after epoch 1
    text = capsys.readouterr().out
    dataset._UNDECODABLE.clear()  # a new process resumes: it reads the run folder's list of dropped files
    a = run_stage(damaged)
    assert "resuming from epoch 1/2" in capsys.readouterr().out
    line = next(x for x in text.splitlines() if x.startswith("skipping"))
    assert line.startswith("skipping 1 image(s) that cannot be decoded (first: ") and "source.txt:6, " in line
    assert line.endswith(
        f"starting this stage again from epoch 0 without them (listed in {run_dir(damaged) / 'skipped_images.txt'})"
    )
    recorded = (run_dir(damaged) / "skipped_images.txt").read_text().splitlines()
    assert recorded == [str(tmp_path / "damaged" / "source" / "bad.jpg")]
    b = run_stage(missing)

    def untimed(history):
        return [{k: v for k, v in h.items() if k != "time_s"} for h in history]

    assert a["accuracy"] == b["accuracy"] and untimed(a["history"]) == untimed(b["history"])
