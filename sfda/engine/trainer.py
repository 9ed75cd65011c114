"""The one training loop shared by every method and both stages.

Per epoch: reseed from (seed, epoch); if the method evaluates at the start (adaptation), run one eval-mode
pass over the evaluation set, record its accuracy and hand it to ``method.on_epoch_start`` (SHOT clusters its
pseudo-labels from it); build the loader (a class-aware sampler sees the method's current labels); train;
if the method evaluates at the end (source training), evaluate the validation split and keep a copy of the
best weights; save the run state atomically. A killed run resumes from its last finished epoch and ends
with exactly the numbers an uninterrupted run gives.
"""
from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Dict, List, Optional

import torch
from torch.utils.data import DataLoader

from ..errors import SfdaError
from ..datatypes import Batch, EvalPolicy, Inference, StepInfo, WeightInput
from ..methods.base import Method
from ..models.checkpoint import atomic_save
from .evaluate import classification_metrics, infer
from .optim import build_optimizer, lr_factor, set_lr
from .progress import progress, resolve_mode
from .seed import derive_seed, seed_everything

STATE_FILE = "state.pt"


FINITE_CHECK_EVERY = 50


def _check_finite(loss_sum: float, epoch: int, iteration: int) -> None:
    if not math.isfinite(loss_sum):
        raise SfdaError(f"the loss became {loss_sum} during epoch {epoch + 1} (by iteration {iteration}); lower optim.lr "
                        "or check the loss settings (the last finished epoch is kept: rerun to resume from it)")


class Trainer:
    def __init__(self, cfg, method: Method, train_set, eval_set, device, runlog, run_dir: Path,
                 weighter=None, sampler=None):
        self.cfg = cfg
        self.method = method
        self.model = method.model
        self.train_set, self.eval_set = train_set, eval_set
        self.device = torch.device(device)
        self.log = runlog
        self.run_dir = Path(run_dir)
        self.weighter, self.sampler = weighter, sampler
        self.num_classes = method.num_classes
        self.epochs = int(cfg.optim.epochs)
        self.show = resolve_mode(cfg.log.progress)
        bs = int(cfg.data.batch_size)
        self.iters_per_epoch = max(1, len(train_set) // bs + (1 if len(train_set) % bs > 1 else 0))
        self.total_iters = self.epochs * self.iters_per_epoch
        self.use_amp = bool(cfg.optim.amp) and self.device.type == "cuda"
        self.amp_dtype = torch.bfloat16 if self.use_amp and torch.cuda.is_bf16_supported() else torch.float16
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.use_amp and self.amp_dtype == torch.float16)

    # -- data --------------------------------------------------------------------------------------------
    def _loader_kwargs(self):
        nw = int(self.cfg.data.num_workers)
        return {"num_workers": nw, "pin_memory": self.device.type == "cuda", "persistent_workers": False}

    def train_loader(self, epoch: int) -> DataLoader:
        g = torch.Generator().manual_seed(derive_seed(self.cfg.seed, epoch, 1))
        smp = None
        if self.sampler is not None:
            labels = self.method.sampler_labels()
            if labels is not None:
                smp = self.sampler.build(labels.cpu(), epoch, self.epochs, g)
        return DataLoader(self.train_set, batch_size=int(self.cfg.data.batch_size), shuffle=smp is None,
                          sampler=smp, generator=g, drop_last=False, **self._loader_kwargs())

    def eval_loader(self) -> DataLoader:
        return DataLoader(self.eval_set, batch_size=int(self.cfg.data.test_batch_size), shuffle=False,
                          **self._loader_kwargs())

    def evaluate(self, desc: str = "eval") -> tuple[Inference, Dict]:
        inf = infer(self.model, self.eval_loader(), self.device, amp=self.use_amp, desc=desc, show=self.show)
        return inf, classification_metrics(inf.logits.argmax(1), inf.labels, self.num_classes)

    # -- state -------------------------------------------------------------------------------------------
    def _state(self, epoch_done, history, best, iteration, optimizer) -> dict:
        return {
            "epoch_done": epoch_done, "iteration": iteration, "history": history, "best": best,
            "model": self.model.state_dict(), "optimizer": optimizer.state_dict(),
            "scaler": self.scaler.state_dict(), "method": self.method.state_dict(),
            "weighter": self.weighter.state_dict() if self.weighter is not None else {},
        }

    def _load_state(self, optimizer) -> Optional[dict]:
        f = self.run_dir / STATE_FILE
        if not f.is_file():
            return None
        try:
            st = torch.load(f, map_location=self.device, weights_only=False)
        except Exception as e:
            raise SfdaError(f"cannot read the resume state '{f}' ({type(e).__name__}); delete it or rerun with --restart") from None
        self.model.load_state_dict(st["model"])
        optimizer.load_state_dict(st["optimizer"])
        self.scaler.load_state_dict(st["scaler"])
        self.method.load_state_dict(st["method"])
        if self.weighter is not None:
            self.weighter.load_state_dict(st["weighter"])
        return st

    # -- the loop ----------------------------------------------------------------------------------------
    def fit(self, stop_after_epoch: Optional[int] = None) -> Optional[dict]:
        """Train; return {"history", "final", "best_epoch"} or None if stopped early by ``stop_after_epoch``."""
        o = self.cfg.optim
        optimizer = build_optimizer(self.method.param_groups(), o)
        history: List[dict] = []
        best = {"score": -math.inf, "epoch": 0, "state": None}
        start, iteration = 0, 0
        st = self._load_state(optimizer)
        if st is not None:
            start, iteration, history, best = st["epoch_done"], st["iteration"], st["history"], st["best"]
            self.log.info(f"resuming from epoch {start}/{self.epochs} ({self.run_dir / STATE_FILE})")
        metric = self.cfg.eval.metric
        for epoch in range(start, self.epochs):
            seed_everything(derive_seed(self.cfg.seed, epoch))
            t0 = time.time()
            rec = history[epoch] if len(history) > epoch else {"epoch": epoch}
            if len(history) <= epoch:
                history.append(rec)
            if self.method.evaluation is EvalPolicy.BEFORE_EACH_EPOCH:
                inf, m = self.evaluate(desc=f"eval {epoch}")
                rec.update({"accuracy": m["accuracy"], "mean_class_accuracy": m["mean_class_accuracy"]})
                rec.update(self.method.on_epoch_start(epoch, inf))
                del inf
            logs, iteration = self._train_epoch(epoch, optimizer, iteration)
            nxt = {"epoch": epoch + 1, **logs}
            if self.weighter is not None:
                stats = self.weighter.epoch_end(epoch, self.epochs, self.run_dir, self.log)
                nxt.update({f"w_{k}": v for k, v in stats.items()})
            if self.method.evaluation is EvalPolicy.AFTER_EACH_EPOCH:
                _, m = self.evaluate(desc=f"val {epoch + 1}")
                nxt.update({"accuracy": m["accuracy"], "mean_class_accuracy": m["mean_class_accuracy"]})
                if self.method.select_best and m[metric] >= best["score"]:
                    best = {"score": m[metric], "epoch": epoch + 1,
                            "state": {k: v.detach().clone() for k, v in self.model.state_dict().items()}}
            history.append(nxt)
            nxt["time_s"] = round(time.time() - t0, 2)
            self._report(rec, nxt)
            atomic_save(self._state(epoch + 1, history, best, iteration, optimizer), self.run_dir / STATE_FILE)
            if stop_after_epoch is not None and epoch + 1 >= stop_after_epoch and epoch + 1 < self.epochs:
                return None
        if self.method.evaluation is EvalPolicy.BEFORE_EACH_EPOCH:
            seed_everything(derive_seed(self.cfg.seed, self.epochs))
            _, final = self.evaluate(desc="final eval")
            last = history[self.epochs] if len(history) > self.epochs else {"epoch": self.epochs}
            if len(history) <= self.epochs:
                history.append(last)
            last.update({"accuracy": final["accuracy"], "mean_class_accuracy": final["mean_class_accuracy"]})
        else:
            if self.method.select_best and best["state"] is not None:
                self.model.load_state_dict(best["state"])
            _, final = self.evaluate(desc="final eval")
        self.log.scalars({k: v for k, v in history[-1].items() if k != "epoch"}, self.epochs, "epoch/")
        return {"history": history, "final": final, "best_epoch": best["epoch"]}

    def _train_epoch(self, epoch: int, optimizer, iteration: int):
        o = self.cfg.optim
        self.method.train_mode()
        sums: Dict[str, float] = {}
        n = 0
        loader = self.train_loader(epoch)
        for x, y, idx in progress(loader, desc=f"epoch {epoch + 1}/{self.epochs}", mode=self.show):
            if x.shape[0] < 2:  # BatchNorm cannot train on one sample (SHOT skips such batches too)
                continue
            x = x.to(self.device, non_blocking=True)
            y = y.to(self.device, non_blocking=True)
            idx = idx.to(self.device, non_blocking=True)
            out = self.train_step(x, y, idx, optimizer, StepInfo(epoch, self.epochs, iteration, self.total_iters))
            iteration += 1
            if out is None:
                continue
            n += 1
            for k, v in out.items():  # tensors stay on the device: no synchronisation per step
                sums[k] = sums.get(k, 0.0) + (v.detach().float() if torch.is_tensor(v) else float(v))
            if n % FINITE_CHECK_EVERY == 0:  # one host sync per FINITE_CHECK_EVERY steps
                _check_finite(float(sums["loss"]), epoch, iteration)
        logs = {k: float(v) / max(n, 1) for k, v in sums.items()}
        if "loss" in logs:
            _check_finite(logs["loss"], epoch, iteration)
        logs["lr"] = o.lr * lr_factor(o, max(iteration - 1, 0), self.total_iters, self.iters_per_epoch)
        return logs, iteration

    def train_step(self, x, y, idx, optimizer, info: StepInfo) -> Optional[Dict[str, object]]:
        """One optimisation step on a batch already on the device; returns the step's logs (floats or
        detached tensors; None if the method produced no trainable loss)."""
        o = self.cfg.optim
        set_lr(optimizer, o.lr, lr_factor(o, info.iteration, self.total_iters, self.iters_per_epoch))
        with torch.autocast(device_type=self.device.type, dtype=self.amp_dtype, enabled=self.use_amp):
            out = self.method.training_step(Batch(x, y, idx), info)
            loss = out.reduced_loss
            if out.per_sample is not None:
                if self.weighter is not None:
                    w = self.weighter(WeightInput(
                        self.model, out.weight_images if out.weight_images is not None else x, out.targets,
                        out.logits.detach() if out.logits is not None else None, idx, info.epoch, info.progress))
                    loss = loss + self.weighter.reduce(w, out.per_sample.float())
                else:
                    loss = loss + out.per_sample.float().mean()
        if not torch.is_tensor(loss) or not loss.requires_grad:
            return None
        optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        if o.grad_clip > 0:
            self.scaler.unscale_(optimizer)
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), o.grad_clip)
        self.scaler.step(optimizer)
        self.scaler.update()
        return {"loss": loss.detach(), **out.logs}

    def _report(self, boundary: dict, after: dict) -> None:
        e = after["epoch"]
        parts = [f"epoch {e}/{self.epochs}"]
        if "pl_accuracy" in boundary:
            parts.append(f"pl_acc {boundary['pl_accuracy']:.2f}")
        for k, v in after.items():
            if k in ("epoch",) or not isinstance(v, (int, float)):
                continue
            parts.append(f"{k} {v:.4g}" if k != "accuracy" else f"acc {v:.2f}")
        if self.method.evaluation is EvalPolicy.BEFORE_EACH_EPOCH and "accuracy" in boundary:
            parts.insert(1, f"acc@{boundary['epoch']} {boundary['accuracy']:.2f}")
        self.log.info("  ".join(parts))
        self.log.scalars({k: v for k, v in boundary.items() if k != "epoch"}, boundary["epoch"], "epoch/")
        self.log.scalars({k: v for k, v in after.items() if k != "epoch"}, e, "train/")
