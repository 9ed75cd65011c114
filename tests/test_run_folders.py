"""Run folders and stages as a user meets them: which override configures which stage (`sfda run`), the
checks across stages, a folder that belongs to one resolved config and one process, one-line errors."""

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from sfda.config import config_from_dict, load_config
from sfda.engine.rundir import RunFolderError, RunLock, identity
from sfda.engine.runner import run_both, run_dir, run_stage
from sfda.engine.stages import check_source_matches, describe_routing, source_config, split_overrides
from sfda.errors import ConfigError

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture
def configs(two_domains, tmp_path, tiny_config):
    """A source config file and an adaptation config file pointing at it (tiny, one or two epochs)."""
    src = tiny_config(
        two_domains, tmp_path / "runs", **{"name": "t/source", "method.name": "source", "optim.epochs": 1}
    )
    adapt = tiny_config(
        two_domains,
        tmp_path / "runs",
        **{"name": "t/shot", "method.name": "shot", "optim.epochs": 1, "source.config": "source.yaml"},
    )
    (tmp_path / "source.yaml").write_text(yaml.safe_dump(src))
    (tmp_path / "adapt.yaml").write_text(yaml.safe_dump(adapt))
    return tmp_path / "adapt.yaml", tmp_path / "source.yaml"


def _out(capsys):
    captured = capsys.readouterr()
    return captured.out + captured.err


def _files(folder, lock=True):
    """Name -> modification time of each file (``lock=False``: without the lock file, which taking the lock touches)."""
    return {p.name: p.stat().st_mtime_ns for p in folder.iterdir() if lock or p.name != ".lock"}


# -- issue 18: every override reaches the stage it configures -------------------------------------------------
def test_overrides_reach_the_source_stage_except_adaptation_only_keys(configs):
    adapt_file, _ = configs
    overrides = [
        "data.val_fraction=0.2",
        "data.resize_size=20",
        "data.crop_size=16",
        "model.bottleneck_dim=16",
        "method.cls_par=0.5",
        "weighting.name=ns",
    ]
    cfg = load_config(adapt_file, overrides)
    src = source_config(cfg, overrides)
    assert src.data.val_fraction == 0.2 and src.data.resize_size == 20 and src.model.bottleneck_dim == 16
    assert src.method.name == "source" and "cls_par" not in src.method and src.weighting.name == "none"
    assert cfg.method.cls_par == 0.5
    # --source-set wins for the source stage alone
    src2 = source_config(cfg, overrides, ["data.val_fraction=0.3"])
    assert src2.data.val_fraction == 0.3 and cfg.data.val_fraction == 0.2


def test_split_and_routing_line():
    both, adapt = split_overrides(["optim.lr=0.1", "method.k=3", "sampler.name=cbs", "data.target=b", "seed=3"])
    assert both == ["optim.lr=0.1", "seed=3"] and adapt == ["method.k=3", "sampler.name=cbs", "data.target=b"]
    assert describe_routing(["optim.lr=0.1"], []) == ""
    assert describe_routing(["optim.lr=0.1", "method.k=3"], ["optim.epochs=2"]) == (
        "overrides for both stages: optim.lr=0.1; adaptation only: method.k=3; source only: optim.epochs=2"
    )


def test_a_changed_source_override_trains_a_new_source_model(configs):
    adapt_file, _ = configs
    plain = run_dir(source_config(load_config(adapt_file), []))
    changed = run_dir(source_config(load_config(adapt_file), [], ["optim.lr=0.02"]))
    assert plain.parent.name == "source" and changed.parent.name.startswith("source+") and plain != changed
    # non-identity keys (where outputs go, logging, workers) keep the plain folder
    quiet = run_dir(source_config(load_config(adapt_file, ["log.progress=none", "data.num_workers=0"]), []))
    assert quiet == plain


def test_mismatched_input_size_is_one_line_naming_both_values(configs, tmp_path):
    adapt_file, _ = configs
    cfg = load_config(adapt_file, ["data.transform=imagenet", "data.resize_size=20", "data.crop_size=16"])
    saved = tmp_path / "src_model"
    saved.mkdir()
    source_cfg = cfg.to_dict()
    source_cfg["data"].update({"resize_size": 16})
    (saved / "config.yaml").write_text(yaml.safe_dump(source_cfg))
    with pytest.raises(ConfigError) as e:
        check_source_matches(cfg, saved)
    assert str(e.value) == (
        f"'data.resize_size' is 20 here but the source model in {saved} was trained with 16; "
        "use the same value (or train a source model for this one)"
    )
    source_cfg["data"].update({"resize_size": 20})
    source_cfg["model"]["bottleneck_dim"] = 8
    (saved / "config.yaml").write_text(yaml.safe_dump(source_cfg))
    with pytest.raises(ConfigError, match="'model.bottleneck_dim' is 32 here but .* trained with 8"):
        check_source_matches(cfg, saved)


def test_every_shipped_adaptation_config_agrees_with_its_source_config(tmp_path):
    """Training augmentation may differ (digits_aug vs digits); the evaluation-time input may not."""
    from sfda.commands.listing import shipped_configs
    from sfda.config import dump_config
    from sfda.registry import METHODS

    checked = 0
    for name in shipped_configs():
        cfg = load_config(name)
        if METHODS.get(cfg.method.name).stage == "source" or not cfg.source.config:
            continue
        folder = tmp_path / str(checked)
        folder.mkdir()
        (folder / "config.yaml").write_text(dump_config(source_config(cfg, [])))
        check_source_matches(cfg, folder)
        checked += 1
    assert checked > 100


def test_sfda_run_trains_then_reuses_the_source_and_source_set_makes_another(configs, capsys):
    adapt_file, _ = configs
    first = run_both(adapt_file, [])
    assert first["finished"]
    capsys.readouterr()
    same = run_both(adapt_file, [])
    text = _out(capsys)
    assert "reusing the source model" in text and "already finished" in text
    assert same["accuracy"] == first["accuracy"]
    capsys.readouterr()
    again = run_both(adapt_file, [], ["optim.lr=0.02"])
    text = _out(capsys)
    assert "training the source model first" in text and "source only: optim.lr=0.02" in text
    # the adaptation from the other source model has its own folder, and its own result
    cfg_a, cfg_b = load_config(adapt_file), load_config(adapt_file)
    cfg_b["_source_dir"] = str(run_dir(source_config(cfg_b, [], ["optim.lr=0.02"])))
    assert run_dir(cfg_a) != run_dir(cfg_b) and again["finished"]


def test_a_fresh_sfda_run_prints_the_routing_and_the_source_stage_before_any_run_log(configs):
    """In a new process (no console handler yet) the lines printed before the source run's own log starts
    reach the console too."""
    adapt_file, _ = configs
    conftest = str(Path(__file__).with_name("conftest.py"))  # registers the tiny test transform in that process
    cmd = [
        sys.executable,
        "-m",
        "sfda",
        "--plugin",
        conftest,
        "run",
        "-c",
        str(adapt_file),
        "method.cls_par=0.2",
        "--source-set",
        "optim.lr=0.02",
    ]
    p = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert p.returncode == 0, p.stderr
    lines = p.stdout.splitlines()
    assert lines[0] == "overrides for both stages: -; adaptation only: method.cls_par=0.2; source only: optim.lr=0.02"
    assert lines[1].startswith("training the source model first: ")
    again = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert again.returncode == 0 and "reusing the source model in" in again.stdout
    assert again.stdout.splitlines()[-1].startswith("already finished: ")  # issue 17: said on the console


def _saved_without(folder, *dotted):
    """Rewrite a run folder's config.yaml as an older sfda would have written it: without these keys."""
    saved = yaml.safe_load((folder / "config.yaml").read_text())
    for key in dotted:
        *parents, last = key.split(".")
        node = saved
        for part in parents:
            node = node[part]
        node.pop(last)
    (folder / "config.yaml").write_text(yaml.safe_dump(saved))
    return saved


def test_a_run_made_before_keys_were_added_is_still_the_same_config(configs, capsys):
    """After an upgrade that adds keys (at defaults that keep the old behaviour) a finished run is reported
    finished, not refused; a saved key this sfda does not know, or another value, still makes it another config."""
    _, source_file = configs
    cfg = load_config(source_file, ["name=old"])
    run_stage(cfg)
    folder = run_dir(cfg)
    saved = _saved_without(folder, "distributed.sync_bn", "data.skip_bad_images")
    before = _files(folder)
    capsys.readouterr()
    assert run_stage(load_config(source_file, ["name=old"]))["finished"]
    assert "already finished" in _out(capsys)
    assert _files(folder, lock=False) == {k: v for k, v in before.items() if k != ".lock"}  # nothing rewritten
    other = load_config(source_file, ["name=old", "distributed.sync_bn=false"])
    other["_files"], other.name = None, "old"  # pinned to the folder (a config built in code)
    with pytest.raises(RunFolderError, match=r"\(distributed.sync_bn: true -> false\)"):  # the key's default was true
        run_stage(other)
    saved["optim"]["renamed_key"] = 1  # a key renamed or removed since: the saved config no longer resolves
    (folder / "config.yaml").write_text(yaml.safe_dump(saved))
    with pytest.raises(RunFolderError, match=r"data.skip_bad_images: null -> false.*optim.renamed_key: 1 -> null"):
        run_stage(load_config(source_file, ["name=old"]))


# -- issue 17: a run folder belongs to one resolved config and one process -------------------------------------
def test_another_override_never_reuses_a_finished_run(configs):
    adapt_file, source_file = configs
    cfg = load_config(source_file)
    run_stage(cfg)
    other = load_config(source_file, ["optim.lr=0.005"])
    assert run_dir(other) != run_dir(cfg) and run_dir(other).parent.name.startswith("source+")


def test_a_named_folder_with_another_config_is_refused_and_force_replaces_it(configs, capsys):
    _, source_file = configs
    cfg = load_config(source_file, ["name=mine"])
    run_stage(cfg)
    folder = run_dir(cfg)
    before = _files(folder)
    other = load_config(source_file, ["name=mine", "optim.lr=0.005"])
    assert run_dir(other) != folder  # a changed setting gets its own folder even under a given name ...
    other["_files"] = None  # ... unless the folder is pinned (a config built in code)
    other.name = "mine"
    assert run_dir(other) == folder
    with pytest.raises(RunFolderError) as e:
        run_stage(other)
    msg = str(e.value)
    assert "holds a run of another config (optim.lr: 0.01 -> 0.005)" in msg and "--force" in msg and "\n" not in msg
    assert _files(folder) == before
    replaced = run_stage(other, force=True)
    assert replaced["finished"] and yaml.safe_load((folder / "config.yaml").read_text())["optim"]["lr"] == 0.005


def test_finished_run_says_so_and_restart_reruns_it(configs, capsys):
    _, source_file = configs
    cfg = load_config(source_file)
    first = run_stage(cfg)
    capsys.readouterr()
    again = run_stage(cfg)
    assert again == {**json.loads((run_dir(cfg) / "metrics.json").read_text()), "_dir": str(run_dir(cfg))}
    text = _out(capsys)
    assert "already finished" in text and f"{first['score']:.2f}" in text and "--force" in text
    metrics = run_dir(cfg) / "metrics.json"
    stamp = metrics.stat().st_mtime_ns
    capsys.readouterr()
    rerun = run_stage(cfg, restart=True)  # --restart: from epoch 0, as its help says
    assert rerun["finished"] and "epoch 1/1" in _out(capsys) and metrics.stat().st_mtime_ns != stamp


def test_a_second_process_on_the_same_folder_stops_with_the_holders_pid(configs):
    _, source_file = configs
    cfg = load_config(source_file)
    folder = run_dir(cfg)
    folder.mkdir(parents=True)
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            (
                "import sys, time; from pathlib import Path; from sfda.engine.rundir import RunLock\n"
                f"lock = RunLock(Path({str(folder)!r})); lock.acquire(); print('held', flush=True); time.sleep(60)"
            ),
        ],
        stdout=subprocess.PIPE,
        text=True,
        cwd=os.getcwd(),
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        before = _files(folder)
        t0 = time.time()
        with pytest.raises(RunFolderError) as e:
            run_stage(cfg)
        assert time.time() - t0 < 30
        assert str(e.value) == (
            f"the run folder '{folder}' is in use by process {holder.pid}; wait for it to finish "
            "(or stop it), or give this run another name= or output_root="
        )
        assert _files(folder) == before
    finally:
        holder.kill()
        holder.wait()
    with RunLock(folder):  # the lock went with the process
        pass


def test_stale_temporaries_are_removed_when_a_run_starts(configs):
    _, source_file = configs
    cfg = load_config(source_file)
    folder = run_dir(cfg)
    folder.mkdir(parents=True)
    (folder / ".state.pt.tmp12345").write_bytes(b"half")
    run_stage(cfg)
    assert not list(folder.glob(".*.tmp*"))


def test_output_folder_under_a_regular_file_is_one_line(two_domains, tmp_path, tiny_config):
    (tmp_path / "afile").write_text("x")
    cfg = config_from_dict(tiny_config(two_domains, tmp_path / "afile" / "runs", **{"method.name": "source"}))
    with pytest.raises(RunFolderError) as e:
        run_stage(cfg)
    assert "cannot create the run folder" in str(e.value) and "a file is in the way" in str(e.value)


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_read_only_output_folder_is_one_line(two_domains, tmp_path, tiny_config):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    cfg = config_from_dict(tiny_config(two_domains, ro / "runs", **{"method.name": "source"}))
    with pytest.raises(RunFolderError, match="permission denied"):
        run_stage(cfg)


@pytest.mark.parametrize(
    "override, message",
    [
        ("data.batch_size=1", "'data.batch_size' must be in [2, inf], got 1 (BatchNorm needs at least 2 samples"),
        ("data.batch_size=0", "'data.batch_size' must be in [2, inf], got 0"),
        ("optim.lr=-0.1", "'optim.lr' must be in (0, inf], got -0.1"),
        ("optim.epochs=-1", "'optim.epochs' must be in [0, inf], got -1"),
        ("data.val_fraction=1.0", "'data.val_fraction' must be in [0, 1), got 1.0"),
        ("optim.schedule=cos", "'optim.schedule' must be one of shot, constant, step, cosine, got 'cos'"),
        ("device=gpu", "'device' must be one of auto, cpu, cuda or cuda:N, got 'gpu'"),
    ],
)
def test_values_outside_their_range_stop_at_load(configs, override, message):
    adapt_file, _ = configs
    with pytest.raises(ConfigError) as e:
        load_config(adapt_file, [override])
    assert str(e.value) == f"command line: {message}" or str(e.value).startswith(f"command line: {message}")


def test_identity_ignores_where_outputs_go():
    a = {
        "name": "x",
        "output_root": "a",
        "device": "cpu",
        "log": {"progress": "none"},
        "optim": {"lr": 0.1},
        "data": {"root": "r", "num_workers": 4, "batch_size": 8},
        "_files": ["f"],
    }
    b = {**a, "output_root": "b", "device": "cuda", "log": {"progress": "bar"}, "data": {**a["data"], "root": "s"}}
    assert identity(a) == identity(b) == {"optim": {"lr": 0.1}, "data": {"batch_size": 8}}


def test_read_only_file_system_is_one_line_as_any_user(two_domains, tmp_path, tiny_config, monkeypatch):
    """The folder test above cannot run as root (root writes into read-only folders); here the file system
    answers as a read-only mount does (EROFS), whoever runs the tests."""
    import errno
    from pathlib import Path

    real_mkdir = Path.mkdir

    def read_only(self, *a, **k):
        if tmp_path / "ro" in (self, *self.parents):
            raise OSError(errno.EROFS, "Read-only file system", str(self))
        return real_mkdir(self, *a, **k)

    monkeypatch.setattr(Path, "mkdir", read_only)
    cfg = config_from_dict(tiny_config(two_domains, tmp_path / "ro" / "runs", **{"method.name": "source"}))
    with pytest.raises(RunFolderError) as e:
        run_stage(cfg)
    assert str(e.value) == (
        f"cannot create the run folder '{run_dir(cfg)}': read-only file system (set output_root= to a writable folder)"
    )
    assert not (tmp_path / "ro").exists()


def test_disk_full_while_saving_is_one_line_and_leaves_no_temporary_file(
    two_domains, tmp_path, tiny_config, monkeypatch
):
    """The disk fills up halfway through writing the resume state: one line naming the file and the cause,
    the half-written temporary file is gone, and no result was written."""
    import errno

    import torch

    from sfda.errors import CheckpointError

    real_save = torch.save

    def full(obj, f, *a, **k):
        if ".state.pt.tmp" in str(f):
            open(f, "wb").write(b"half a checkpoint")
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_save(obj, f, *a, **k)

    monkeypatch.setattr(torch, "save", full)
    cfg = config_from_dict(tiny_config(two_domains, tmp_path / "runs", **{"method.name": "source", "optim.epochs": 1}))
    with pytest.raises(CheckpointError) as e:
        run_stage(cfg)
    folder = run_dir(cfg)
    assert str(e.value) == f"cannot write '{folder / 'state.pt'}': no space left on the device"
    assert not list(folder.glob(".*.tmp*")) and not (folder / "metrics.json").exists()
