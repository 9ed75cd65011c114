"""Run one stage from a resolved config: build data, model, method, weighter and sampler, train with the
shared trainer, write checkpoints and ``metrics.json``.

Run directory: ``<output_root>/<name>/seed<seed>/`` with ``config.yaml``, ``log.txt``, ``tb/``, ``state.pt``
(resume state, removed when the run finishes), the checkpoints (``source_{F,B,C}.pt`` or
``target_{F,B,C}.pt``) and ``metrics.json``. A finished run (metrics.json with ``finished: true``) is not
redone unless forced.
"""

from __future__ import annotations

import contextlib
import time
from pathlib import Path
from typing import Dict, Optional

import torch

from .. import __version__, parallel
from ..config import Cfg, dump_config, load_config
from ..data.dataset import clear_cache
from ..data.formats import build_format
from ..errors import ConfigError
from ..models.checkpoint import has_fbc, load_fbc, save_fbc
from ..models.network import build_model
from ..paths import resolve_path
from ..registry import METHODS, SAMPLERS, WEIGHTERS
from ..samplers import build_sampler
from ..weighting import build_weighter
from . import distributed
from .bad_images import run_dropping_undecodable
from .evaluate import classification_metrics, infer
from .rundir import (
    CONFIG_FILE,
    METRICS_FILE,
    RunLock,
    check_folder_config,
    make_folder,
    read_metrics,
    remove_stale_temporaries,
    run_dir,
    write_json,
    write_text_atomic,
)
from .runlog import RunLog, log
from .seed import seed_everything, set_deterministic
from .stages import check_source_matches, describe_routing, source_config
from .trainer import STATE_FILE, Trainer


def resolve_device(spec: str) -> torch.device:
    if spec == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(spec)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device '{spec}' requested but CUDA is not available; use device=cpu or device=auto")
    return dev


def run_label(cfg) -> str:
    """Row label in tables: the config's label, or method [+ loss] [+ weighter] [+ sampler]."""
    if cfg.label:
        return cfg.label
    label = METHODS.get(cfg.method.name).display(cfg.method)
    for key in ("pl_loss", "loss"):
        spec = cfg.method.get(key)
        if isinstance(spec, dict) and spec.get("name") not in (None, "ce", "label_smoothing"):
            label += f"[{spec['name']}]"
    if cfg.weighting.name != "none":
        label += "+" + WEIGHTERS.get(cfg.weighting.name).display(cfg.weighting)
    if cfg.sampler.name != "none":
        label += "+" + (SAMPLERS.get(cfg.sampler.name).label or cfg.sampler.name)
    return label


def source_checkpoint_dir(cfg) -> Path:
    """The folder of the source model an adaptation config starts from."""
    if cfg.source.checkpoint:
        return resolve_path(cfg.source.checkpoint)
    if cfg.get("_source_dir"):
        return Path(cfg["_source_dir"])
    if not cfg.source.config:
        raise ConfigError("adaptation needs source.checkpoint (a folder with source_F/B/C.pt) or source.config")
    return run_dir(source_config(cfg, cfg.get("_overrides", ())))


def run_stage(
    cfg, *, force: bool = False, restart: bool = False, stop_after_epoch: Optional[int] = None
) -> Optional[dict]:
    """Run one stage in its run folder, or report it finished. The folder belongs to one resolved config and
    one process at a time (see :mod:`sfda.engine.rundir`). Returns the run's metrics with ``_dir``, its folder
    (as :func:`sfda.results.table.collect` does), or None when the run stopped early."""
    method_cls = METHODS.get(cfg.method.name, key="method.name")
    out = run_dir(cfg)
    main = parallel.is_main()  # several processes: rank 0 owns the folder, the others wait for it
    if main:
        make_folder(out)
        check_folder_config(cfg, out, force)  # config.yaml is written atomically: safe to read before the lock
    with RunLock(out) if main else contextlib.nullcontext():
        if main:
            remove_stale_temporaries(out)
        done = read_metrics(out)
        if done and done.get("finished") and not (force or restart):
            score = done.get("score", done.get("accuracy", 0))
            log.info(
                f"already finished: {out} ({done.get('metric', 'accuracy')} {score:.2f}); "
                "add --force to run it again from scratch"
            )
            return {**done, "_dir": str(out)}
        if main:
            if restart or force:
                for name in (STATE_FILE, METRICS_FILE):
                    (out / name).unlink(missing_ok=True)
            plain = Cfg({k: v for k, v in cfg.items() if not str(k).startswith("_")})
            write_text_atomic(dump_config(plain), out / CONFIG_FILE)
        parallel.barrier()
        runlog = RunLog(out, tensorboard=cfg.log.tensorboard)
        t0 = time.time()
        try:
            runlog.info(f"sfda {__version__} | {cfg.name} | seed {cfg.seed} | {out}")
            result = run_dropping_undecodable(
                lambda: _run(cfg, method_cls, out, runlog, stop_after_epoch, t0),
                out,
                runlog,
                cfg.data.skip_bad_images,
                STATE_FILE,
            )
            parallel.barrier()  # rank 0's files are written before any rank goes on (to the adaptation stage)
            return None if result is None else {**result, "_dir": str(out)}
        finally:
            clear_cache()
            runlog.close()


def _run(cfg, method_cls, out: Path, runlog: RunLog, stop_after_epoch, t0) -> Optional[dict]:
    set_deterministic(cfg.deterministic)
    seed_everything(cfg.seed)
    device = distributed.place(resolve_device(cfg.device))
    with parallel.main_first():  # several processes: downloads (data, pretrained weights) on rank 0 first
        dataset_format = build_format(cfg)
        model = build_model(cfg)
    num_classes = dataset_format.num_classes
    result = {
        "task": cfg.task,
        "method": cfg.method.name,
        "label": run_label(cfg),
        "benchmark": cfg.benchmark,
        "seed": cfg.seed,
        "stage": method_cls.stage,
        "metric": cfg.eval.metric,
        "weighting": cfg.weighting.name,
        "sampler": cfg.sampler.name,
        "name": cfg.name,
        "config": cfg.get("_file", ""),
        "world_size": parallel.world_size(),
    }
    if method_cls.stage == "source":
        with parallel.main_first():
            train_set, eval_set = dataset_format.source_split(cfg.data.source)
        runlog.info(
            f"source {cfg.data.source}: {len(train_set)} train / {len(eval_set)} validation images, "
            f"{num_classes} classes"
        )
    else:
        src_dir = source_checkpoint_dir(cfg)
        load_fbc(model, src_dir, "source")  # a checkpoint of another shape stops here, naming the file
        check_source_matches(cfg, src_dir)  # same shapes, other input size / normalisation / settings
        runlog.info(f"loaded source model from {src_dir}")
        with parallel.main_first():
            train_set = dataset_format.domain(cfg.data.target, train=True)
            eval_set = dataset_format.domain(cfg.data.target, train=False)
        runlog.info(f"target {cfg.data.target}: {len(train_set)} images, {num_classes} classes")
    model.to(device)
    method = method_cls(model, num_classes, dict(cfg.method), cfg)
    method.setup(train_set, device)
    trainer = Trainer(
        cfg,
        method,
        train_set,
        eval_set,
        device,
        runlog,
        out,
        build_weighter(cfg, num_classes),
        build_sampler(cfg, num_classes),
    )
    fit = trainer.fit(stop_after_epoch=stop_after_epoch)
    if fit is None:
        runlog.info(f"stopped after epoch {stop_after_epoch}; rerun the same command to resume")
        return None
    final, history = fit.final, fit.history
    result.update(
        {
            "accuracy": final["accuracy"],
            "mean_class_accuracy": final["mean_class_accuracy"],
            "per_class_accuracy": final["per_class_accuracy"],
            "history": history,
        }
    )
    if method_cls.stage == "source":
        save_fbc(model, out, "source")
        result["val_accuracy"] = final["accuracy"]
        result["best_epoch"] = fit.best_epoch
        if cfg.eval.other_domains:
            result["source_only"] = _other_domains(cfg, dataset_format, model, device, trainer, runlog)
    else:
        save_fbc(model, out, "target")
        result["source_only_accuracy"] = history[0].get("accuracy")
        result["source_only_mean_class_accuracy"] = history[0].get("mean_class_accuracy")
    result["score"] = final[cfg.eval.metric]
    result["wall_time_s"] = round(time.time() - t0 + fit.earlier_wall_s, 1)  # every invocation of the run
    result["finished"] = True
    write_json(result, out / METRICS_FILE)
    (out / STATE_FILE).unlink(missing_ok=True)
    msg = f"done: {result['label']} {cfg.task} seed {cfg.seed}: {cfg.eval.metric} {result['score']:.2f}"
    if "source_only_accuracy" in result:
        source_only = history[0].get(cfg.eval.metric, history[0].get("accuracy"))
        msg += f" (source only {source_only:.2f})"
    runlog.info(msg + f" [{result['wall_time_s']:.0f}s]")
    return result


def _other_domains(cfg, dataset_format, model, device, trainer: Trainer, runlog: RunLog) -> Dict[str, float]:
    """The source model's score on every other domain of the benchmark (the source-only baseline)."""
    scores = {}
    for domain in cfg.data.domains:
        if domain == cfg.data.source:
            continue
        dataset = dataset_format.domain(domain, train=False)
        loader = trainer.eval_loader(dataset)
        inference = infer(
            model, loader, device, amp=trainer.use_amp, desc=f"source only on {domain}", show=trainer.show
        )
        metrics = classification_metrics(inference.logits.argmax(1), inference.labels, dataset_format.num_classes)
        scores[domain] = float(metrics[cfg.eval.metric])
        runlog.info(f"source only {cfg.data.source} -> {domain}: {cfg.eval.metric} {scores[domain]:.2f}")
        del dataset, loader
        clear_cache()
    return scores


def run_config(path, overrides=(), *, stage: Optional[str] = None, **kw) -> Optional[dict]:
    cfg = load_config(path, overrides)
    cfg["_overrides"] = list(overrides)
    method_cls = METHODS.get(cfg.method.name, key="method.name")
    if stage is not None and method_cls.stage != stage:
        want = "a source-training config (method.name: source)" if stage == "source" else "an adaptation config"
        raise ConfigError(f"{cfg['_file']}: expected {want}, got method '{cfg.method.name}' ({method_cls.stage} stage)")
    return run_stage(cfg, **kw)


def run_both(path, overrides=(), source_overrides=(), **kw) -> Optional[dict]:
    """`sfda run`: train the source model if it is not there yet, then adapt (see :mod:`sfda.engine.stages`
    for which override goes to which stage)."""
    cfg = load_config(path, overrides)
    cfg["_overrides"] = list(overrides)
    if METHODS.get(cfg.method.name).stage == "source":
        return run_stage(cfg, **kw)
    if not cfg.source.checkpoint:
        src_cfg = source_config(cfg, overrides, source_overrides)
        src_dir = run_dir(src_cfg)
        routing = describe_routing(overrides, source_overrides)
        if routing:
            log.info(routing)
        if not has_fbc(src_dir, "source") or not (read_metrics(src_dir) or {}).get("finished"):
            log.info(f"training the source model first: {src_cfg['_file']}")
            finished = run_stage(src_cfg, restart=kw.get("restart", False), stop_after_epoch=kw.get("stop_after_epoch"))
            if finished is None:
                return None
        else:
            check_folder_config(src_cfg, src_dir, False)
            log.info(f"reusing the source model in {src_dir}")
        cfg["_source_dir"] = str(src_dir)
    return run_stage(cfg, **kw)
