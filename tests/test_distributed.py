"""Runs on several processes (torchrun / DDP) on the CPU with gloo: two processes started by the tests, seconds
each. One spawned two-rank job checks the collectives (the gathered pass, SHOT's pseudo-labels, the exactness of
sync BN + global IM, NRC's banks, rank-0-only files); torchrun launches check the command line (resume after a
kill, a bad config)."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import torch.multiprocessing as mp
import yaml
from torch.utils.data import DataLoader, Dataset

from sfda.config import config_from_dict
from sfda.datatypes import StepInfo
from sfda.engine import distributed
from sfda.engine.evaluate import infer
from sfda.engine.optim import build_optimizer
from sfda.engine.trainer import Trainer
from sfda.errors import ConfigError
from sfda.models.checkpoint import save_fbc
from sfda.models.network import build_model
from sfda.paths import PROJECT_ROOT
from sfda.registry import METHODS
from sfda.samplers import build_sampler
from sfda.samplers.sharded import ShardedSampler, per_rank_batch
from sfda.weighting import build_weighter

pytestmark = pytest.mark.usefixtures("one_thread")
WORLD = 2
JOB_TIMEOUT_S = 240


# -- pieces the spawned ranks use (module level: picklable) --------------------------------------------------
class Tensors(Dataset):
    """(image, label, index) from fixed tensors: no augmentation, so every process sees the same images."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor):
        self.images, self.labels = images, labels

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int):
        return self.images[i], self.labels[i], i


class Twice(torch.nn.Module):
    def forward(self, x, return_features=False):
        f = x.flatten(1)
        return (f, 2 * f[:, :3]) if return_features else 2 * f[:, :3]


class Quiet:
    def info(self, *a, **k):
        pass

    def scalars(self, *a, **k):
        pass

    def histogram(self, *a, **k):
        pass


def images(n: int, seed: int) -> Tensors:
    g = torch.Generator().manual_seed(seed)
    return Tensors(torch.randn(n, 3, 16, 16, generator=g), torch.randint(0, 4, (n,), generator=g))


def make_trainer(cfg_dict: dict, data: Tensors, out: Path):
    """A trainer of the tiny config's method on fixed tensors (weights seeded: the same in every process)."""
    cfg = config_from_dict(cfg_dict)
    torch.manual_seed(0)
    model = build_model(cfg)
    method = METHODS.get(cfg.method.name)(model, 4, dict(cfg.method), cfg)
    method.setup(data, torch.device("cpu"))
    trainer = Trainer(cfg, method, data, data, "cpu", Quiet(), out, build_weighter(cfg, 4), build_sampler(cfg, 4))
    return trainer, method


def steps(cfg_dict: dict, out: Path, rank: int, world: int, count: int = 3) -> dict:
    """on_epoch_start from the (gathered) pass, then ``count`` steps on fixed global batches of 64: this rank
    takes the rows rank, rank + world, ... (as the sharded sampler deals them)."""
    data = images(64 * count, seed=1)
    trainer, method = make_trainer(cfg_dict, data, out)
    optimizer = build_optimizer(method.param_groups(), trainer.cfg.optim)
    inference, _ = trainer.evaluate(backbone=getattr(method, "inference_backbone", False))
    method.on_epoch_start(0, inference)
    trainer.dist.sync_method(method)
    with trainer.dist.wrapped(method):
        method.train_mode()
        for t in range(count):
            rows = torch.arange(64 * t, 64 * (t + 1))[rank::world]
            trainer.train_step(data.images[rows], data.labels[rows], rows, optimizer, StepInfo(0, 1, t, count))
    result = {"weights": {k: v.clone() for k, v in method.model.state_dict().items()}}
    if hasattr(method, "bank"):
        bank = method.bank
        result["bank"] = (bank.features.clone(), bank.scores.clone()) if hasattr(bank, "features") else bank.clone()
    if hasattr(method, "criterion"):
        result["loss_state"] = {k: v.clone() for k, v in method.criterion.state_dict().items()}
    trainer.dist.gather_weighter(trainer.weighter)
    report = trainer.weighter.epoch_end(0, keep_samples=True)
    result["weighting"] = (report.stats, report.samples)
    return result


def pseudo_labels(cfg_dict: dict, out: Path) -> torch.Tensor:
    trainer, method = make_trainer(cfg_dict, images(41, seed=2), out)
    inference, _ = trainer.evaluate()
    method.on_epoch_start(0, inference)
    return method.pseudo.clone()


def job(rank: int, tmp: Path, cfgs: dict) -> dict:
    """Everything the two ranks check together (see the tests below)."""
    results = {}
    for n in (7, 10, 1001):  # the gathered pass: sizes not divisible by the world size, and one that is
        data = images(n, seed=n)
        loader = DataLoader(data, batch_size=3, sampler=ShardedSampler(range(n), n, rank, WORLD, pad=False))
        results[f"infer{n}"] = infer(Twice(), loader, "cpu").features
    results["pseudo"] = pseudo_labels(cfgs["shot"], tmp)
    results["shot_steps"] = steps(cfgs["shot"], tmp, rank, WORLD)
    results["nrc_steps"] = steps(cfgs["nrc"], tmp, rank, WORLD, count=4)
    results["nlnl_ns_steps"] = steps(cfgs["nlnl_ns"], tmp, rank, WORLD)
    results["tpds_steps"] = steps(cfgs["tpds"], tmp, rank, WORLD)
    # only rank 0 writes: every writer of a run, on both ranks, into a folder of this rank
    from sfda.engine.runlog import RunLog
    from sfda.engine.runner import write_json
    from sfda.models.checkpoint import atomic_save

    folder = tmp / f"files{rank}"
    log = RunLog(folder, tensorboard=False)
    log.info("hello")
    log.close()
    atomic_save({"a": 1}, folder / "state.pt")
    write_json({"a": 1}, folder / "metrics.json")
    save_fbc(build_model(config_from_dict(cfgs["shot"])), folder)
    results["files"] = sorted(p.name for p in folder.rglob("*")) if folder.exists() else None
    return results


def _rank_main(rank: int, port: int, tmp: str, cfgs: dict) -> None:
    os.environ.update(
        {
            "RANK": str(rank),
            "LOCAL_RANK": str(rank),
            "WORLD_SIZE": str(WORLD),
            "MASTER_ADDR": "127.0.0.1",
            "MASTER_PORT": str(port),
            "SFDA_DIST_TIMEOUT": "120",
        }
    )
    torch.set_num_threads(1)
    with distributed.session():
        result = job(rank, Path(tmp), cfgs)
    torch.save(result, Path(tmp) / f"rank{rank}.pt")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def spawn(fn, tmp: Path, *args) -> None:
    """Start WORLD processes of ``fn(rank, port, tmp, *args)`` and wait (at most JOB_TIMEOUT_S)."""
    ctx = mp.start_processes(fn, args=(free_port(), str(tmp), *args), nprocs=WORLD, join=False, start_method="spawn")
    deadline = time.monotonic() + JOB_TIMEOUT_S
    try:
        while not ctx.join(timeout=1):
            if time.monotonic() > deadline:
                pytest.fail(f"the {WORLD}-process job did not finish within {JOB_TIMEOUT_S} s")
    finally:
        for p in ctx.processes:
            if p.is_alive():
                p.kill()


# -- the spawned job and its checks --------------------------------------------------------------------------
def _cfg(tiny_config, root, out, **kw) -> dict:
    base = {"data.batch_size": 64, "optim.lr": 0.05, "model.bottleneck_dim": 16}
    return tiny_config(root, out, **{**base, **kw})


@pytest.fixture(scope="module")
def ranks(tmp_path_factory, tiny_config):
    tmp = tmp_path_factory.mktemp("ddp")
    cfgs = {
        "shot": _cfg(tiny_config, tmp, tmp, **{"method.name": "shot", "method.cls_par": 0.3}),
        "nrc": _cfg(tiny_config, tmp, tmp, **{"method.name": "nrc"}),
        "tpds": _cfg(tiny_config, tmp, tmp, **{"method.name": "tpds", "method.div_par": 1.0}),
        "nlnl_ns": _cfg(
            tiny_config,
            tmp,
            tmp,
            **{
                "method.name": "shot",
                "method.cls_par": 0.3,
                "method.pl_loss": {"name": "nlnl", "selnl_after": 1},
                "weighting.name": "ns",
            },
        ),
    }
    spawn(_rank_main, tmp, cfgs)
    return [torch.load(tmp / f"rank{r}.pt", weights_only=False) for r in range(WORLD)], cfgs, tmp


def test_the_gathered_pass_holds_every_index_exactly_once(ranks):
    results, _, _ = ranks
    for n in (7, 10, 1001):
        full = infer(Twice(), DataLoader(images(n, seed=n), batch_size=3), "cpu").features
        for r in range(WORLD):
            assert torch.equal(results[r][f"infer{n}"], full), n


def test_shot_pseudo_labels_of_the_gathered_pass_equal_one_process(ranks, tmp_path):
    results, cfgs, _ = ranks
    one = pseudo_labels(cfgs["shot"], tmp_path)
    assert torch.equal(results[0]["pseudo"], one) and torch.equal(results[1]["pseudo"], one)


def test_sync_bn_and_global_im_make_two_by_32_train_like_one_by_64(ranks, tmp_path):
    results, cfgs, _ = ranks
    one = steps(cfgs["shot"], tmp_path, 0, 1)["weights"]
    for r in range(WORLD):
        two = results[r]["shot_steps"]["weights"]
        assert set(two) == set(one)
        for k in one:
            assert torch.allclose(two[k].float(), one[k].float(), atol=1e-5, rtol=0), k
    start = make_trainer(cfgs["shot"], images(8, 0), tmp_path)[1].model.state_dict()
    assert any(not torch.allclose(start[k].float(), one[k].float()) for k in one)  # it did train


def test_nrc_banks_are_identical_on_every_rank(ranks):
    results, _, _ = ranks
    (f0, s0), (f1, s1) = results[0]["nrc_steps"]["bank"], results[1]["nrc_steps"]["bank"]
    assert torch.equal(f0, f1) and torch.equal(s0, s1) and f0.shape[0] == 256
    weights = [results[r]["nrc_steps"]["weights"] for r in range(WORLD)]
    assert all(torch.equal(weights[0][k], weights[1][k]) for k in weights[0])


def test_tpds_two_by_32_trains_like_one_by_64(ranks, tmp_path):
    """The gathered pass gives every rank the whole netF bank; the joint of the MI term, the diversity term and
    the traced batch's BatchNorm are global, so two ranks of 32 train exactly like one process of 64."""
    results, cfgs, _ = ranks
    ref = steps(cfgs["tpds"], tmp_path, 0, 1)
    assert ref["bank"].shape == (192, 128) and torch.equal(results[0]["tpds_steps"]["bank"], ref["bank"])
    assert torch.equal(results[1]["tpds_steps"]["bank"], ref["bank"])
    for r in range(WORLD):
        two = results[r]["tpds_steps"]["weights"]
        for k in ref["weights"]:
            assert torch.allclose(two[k].float(), ref["weights"][k].float(), atol=1e-5, rtol=0), k
    start = make_trainer(cfgs["tpds"], images(8, 0), tmp_path)[1].model.state_dict()
    assert any(not torch.allclose(start[k].float(), ref["weights"][k].float()) for k in start)  # it did train


def test_per_sample_loss_state_is_identical_and_ns_reports_every_sample(ranks):
    results, _, _ = ranks
    one, two = (results[r]["nlnl_ns_steps"] for r in range(WORLD))
    history = one["loss_state"]["samples.history"]
    assert history.shape[0] == 192 and int((one["loss_state"]["samples.visits"] > 0).sum()) == 192
    assert all(torch.equal(one["loss_state"][k], two["loss_state"][k]) for k in one["loss_state"])
    (stats0, kept0), (stats1, kept1) = one["weighting"], two["weighting"]
    assert stats0 == stats1 and sorted(kept0["indices"].tolist()) == list(range(192))
    assert torch.equal(kept0["scores"], kept1["scores"]) and kept0["weights"].shape == (192,)


def test_only_rank_0_writes_files(ranks):
    results, _, _ = ranks
    assert results[0]["files"] == ["log.txt", "metrics.json", "source_B.pt", "source_C.pt", "source_F.pt", "state.pt"]
    assert results[1]["files"] is None


# -- without processes ----------------------------------------------------------------------------------------
def test_sharded_training_order_is_the_one_process_order_dealt_out():
    data = images(11, seed=0)
    g = torch.Generator().manual_seed(5)
    one = [int(i) for _, _, idx in DataLoader(data, batch_size=4, shuffle=True, generator=g) for i in idx]
    shards = []
    for rank in range(3):
        g = torch.Generator().manual_seed(5)
        sampler = ShardedSampler(torch.utils.data.RandomSampler(data, generator=g), 11, rank, 3, pad=True)
        loader = DataLoader(data, batch_size=2, sampler=sampler, generator=g)
        shards.append([int(i) for _, _, idx in loader for i in idx])
    assert [len(s) for s in shards] == [4, 4, 4]
    dealt = [shards[r][j] for j in range(4) for r in range(3)]
    assert dealt == one + one[:1]  # padded with the first position
    g = torch.Generator().manual_seed(5)
    solo = DataLoader(
        data,
        batch_size=4,
        generator=g,
        sampler=ShardedSampler(torch.utils.data.RandomSampler(data, generator=g), 11, 0, 1, pad=True),
    )
    assert [int(i) for _, _, idx in solo for i in idx] == one


def test_the_global_batch_must_split_evenly():
    assert per_rank_batch(64, 2, key="data.batch_size") == 32 and per_rank_batch(192, 5) == 39
    with pytest.raises(
        ConfigError,
        match=r"data.batch_size=65 is the global batch, split evenly over the 2 "
        r"processes; set data.batch_size to a multiple of 2",
    ):
        per_rank_batch(65, 2, key="data.batch_size")


# -- torchrun -------------------------------------------------------------------------------------------------
def torchrun(*args: str, nproc: int = WORLD, cwd: Path, timeout: float = JOB_TIMEOUT_S, **popen):
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        f"--nproc_per_node={nproc}",
        "-m",
        "sfda",
        *args,
    ]
    env = {**os.environ, "PYTHONPATH": str(PROJECT_ROOT), "OMP_NUM_THREADS": "1", "SFDA_DIST_TIMEOUT": "120"}
    if popen.pop("background", False):
        return subprocess.Popen(cmd, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    return subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def adapt_config(two_domains, tiny_config, tmp_path_factory):
    """An adaptation config (SHOT, 6 epochs) on the generated set, with a source model of seeded weights."""
    tmp = tmp_path_factory.mktemp("cli")
    cfg = tiny_config(
        two_domains,
        tmp / "runs",
        **{
            "name": "shot",
            "method.name": "shot",
            "optim.epochs": 6,
            "data.transform": "digits_rgb32",
            "source.checkpoint": str(tmp / "src"),
        },
    )
    torch.manual_seed(0)
    save_fbc(build_model(config_from_dict(cfg)), tmp / "src")
    (tmp / "shot.yaml").write_text(yaml.safe_dump(cfg))
    return tmp


def kill_tree(pid: int) -> None:
    """SIGKILL a process and every descendant at once, as a scheduler kills a job (torchrun starts its workers
    in sessions of their own, so killing its process group would leave them running)."""
    children: dict = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            ppid = int(stat.read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        children.setdefault(ppid, []).append(int(stat.parent.name))
    tree, todo = [], [pid]
    while todo:
        p = todo.pop()
        tree.append(p)
        todo += children.get(p, [])
    for p in tree:
        try:
            os.kill(p, signal.SIGKILL)
        except ProcessLookupError:
            pass


def _history(folder: Path):
    m = json.loads((folder / "metrics.json").read_text())
    return m, [{k: v for k, v in h.items() if k != "time_s"} for h in m["history"]]


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="finds the processes to kill in /proc")
def test_a_killed_two_process_run_resumes_and_finishes(adapt_config):
    tmp = adapt_config
    ref = torchrun("adapt", "-c", "shot.yaml", "output_root=ref", cwd=tmp)
    assert ref.returncode == 0, ref.stdout + ref.stderr
    lines = [ln for ln in ref.stdout.splitlines() if ln.startswith("epoch ")]
    assert len(lines) == 6  # rank 0 alone logs
    ref_m, ref_h = _history(tmp / "ref" / "shot" / "seed0")
    assert ref_m["world_size"] == WORLD and ref_m["finished"]
    assert sorted(p.name for p in (tmp / "ref" / "shot" / "seed0").iterdir()) == [
        ".lock",  # rank 0's run-folder lock (docs/run-folders.md)
        "config.yaml",
        "log.txt",
        "metrics.json",
        "target_B.pt",
        "target_C.pt",
        "target_F.pt",
    ]
    # kill the whole launch once the first epoch is saved, then run the same command again
    run = tmp / "runs" / "shot" / "seed0"
    proc = torchrun("adapt", "-c", "shot.yaml", cwd=tmp, background=True)
    deadline = time.monotonic() + JOB_TIMEOUT_S
    while not (run / "state.pt").exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    kill_tree(proc.pid)
    proc.wait(timeout=30)
    assert (run / "state.pt").exists() and not (run / "metrics.json").exists()
    killed_state = (run / "state.pt").read_bytes()
    again = torchrun("adapt", "-c", "shot.yaml", cwd=tmp)
    assert again.returncode == 0, again.stdout + again.stderr
    assert "resuming from epoch" in again.stdout
    m, h = _history(run)
    assert m["world_size"] == WORLD and h == ref_h and m["accuracy"] == ref_m["accuracy"]
    # a different world size resumes too (here one process, without torchrun)
    (run / "metrics.json").unlink()
    (run / "state.pt").write_bytes(killed_state)
    env = {**os.environ, "PYTHONPATH": str(PROJECT_ROOT), "OMP_NUM_THREADS": "1"}
    solo = subprocess.run(
        [sys.executable, "-m", "sfda", "adapt", "-c", "shot.yaml"],
        cwd=tmp,
        env=env,
        capture_output=True,
        text=True,
        timeout=JOB_TIMEOUT_S,
    )
    assert solo.returncode == 0 and "resuming from epoch" in solo.stdout, solo.stdout + solo.stderr
    m1, h1 = _history(run)
    assert m1["world_size"] == 1 and m1["finished"] and len(h1) == 7


def test_a_bad_config_under_torchrun_is_one_line_once(adapt_config):
    res = torchrun("adapt", "-c", "shot.yaml", "optim.lrr=0.1", cwd=adapt_config)
    assert res.returncode != 0
    errors = [ln for ln in (res.stdout + res.stderr).splitlines() if "optim.lrr" in ln]
    assert errors == ["error: command line: unknown key 'optim.lrr' (did you mean 'optim.lr'?)"], errors
    assert not [ln for ln in (res.stdout + res.stderr).splitlines() if ln.startswith("[rank")]  # no tracebacks
