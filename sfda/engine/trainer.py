"""The one training loop shared by every method and both stages.

Per epoch: reseed from (seed, epoch); evaluate as the method's :class:`~sfda.datatypes.EvalPolicy` says:
before each epoch (adaptation: the pass is handed to ``method.on_epoch_start``, which may derive pseudo-labels
or memory banks from it), or after each epoch (supervised training: the best weights are kept with
``select_best``); build the loader (the sampler sees the method's current labels); train, the weighter
weighting the per-sample loss; record the epoch (:class:`~sfda.engine.records.EpochRecord`) and save the run
state atomically. A killed run resumes from its last finished epoch and ends with exactly the numbers an
uninterrupted run gives.
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

import torch
from torch.utils.data import DataLoader

from .. import parallel
from ..datatypes import Batch, EvalPolicy, Inference, StepInfo, StepOutput, TrainableMethod, WeightInput
from ..errors import SfdaError
from ..models.checkpoint import atomic_save
from ..samplers.base import ClassSampler
from ..weighting.base import Weighter
from .ddp import DistributedTraining
from .evaluate import classification_metrics, infer
from .optim import build_optimizer, lr_factor, set_lr
from .progress import progress, resolve_mode
from .records import BestWeights, EpochRecord, FitResult, epoch_line, eval_summary, history
from .seed import derive_seed, seed_everything
from .weighting_output import WeightingOutput

STATE_FILE = "state.pt"
FINITE_CHECK_EVERY = 50  # steps between host synchronisations that check the loss


def _check_finite(loss_sum: float, epoch: int, iteration: int) -> None:
    if not math.isfinite(loss_sum):
        raise SfdaError(
            f"the loss became {loss_sum} during epoch {epoch + 1} (by iteration {iteration}); lower "
            "optim.lr or check the loss settings (the last finished epoch is kept: rerun to resume "
            "from it)"
        )


class Trainer:
    def __init__(
        self,
        cfg: Any,
        method: TrainableMethod,
        train_set: Any,
        eval_set: Any,
        device: Any,
        runlog: Any,
        run_dir: Path,
        weighter: Weighter,
        sampler: ClassSampler,
    ):
        self.cfg = cfg
        self.method = method
        self._started, self._earlier_wall_s = time.time(), 0.0  # the run's wall time survives a resume
        self.model = method.model
        self.train_set, self.eval_set = train_set, eval_set
        self.device = torch.device(device)
        self.log = runlog
        self.run_dir = Path(run_dir)
        self.weighter, self.sampler = weighter, sampler
        self.num_classes = method.num_classes
        self.epochs = int(cfg.optim.epochs)
        self.weighting_output = WeightingOutput(self.run_dir, runlog, self.epochs)
        self.show = resolve_mode(cfg.log.progress)
        self.dist = DistributedTraining(cfg, self.model, self.device)  # inert without torchrun
        if self.dist.describe():
            runlog.info(self.dist.describe())
        size, batch_size = self.dist.samples_per_rank(len(train_set)), self.dist.batch_size
        self.iters_per_epoch = max(1, size // batch_size + (1 if size % batch_size > 1 else 0))
        self.total_iters = self.epochs * self.iters_per_epoch
        self.use_amp = bool(cfg.optim.amp) and self.device.type == "cuda"
        self.amp_dtype = torch.bfloat16 if self.use_amp and torch.cuda.is_bf16_supported() else torch.float16
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.use_amp and self.amp_dtype == torch.float16)

    # -- data --------------------------------------------------------------------------------------------
    def loader_kwargs(self) -> Dict[str, Any]:
        return {
            "num_workers": int(self.cfg.data.num_workers),
            "pin_memory": self.device.type == "cuda",
            "persistent_workers": False,
        }

    def train_loader(self, epoch: int) -> DataLoader:
        generator = torch.Generator().manual_seed(derive_seed(self.cfg.seed, epoch, 1))
        sampler = self.sampler.build(self.method.sampler_labels(), epoch, self.epochs, generator)
        sampler = self.dist.train_sampler(sampler, self.train_set, generator)
        return DataLoader(
            self.train_set,
            batch_size=self.dist.batch_size,
            shuffle=sampler is None,
            sampler=sampler,
            generator=generator,
            drop_last=False,
            worker_init_fn=self.dist.worker_init(),
            **self.loader_kwargs(),
        )

    def eval_loader(self, dataset: Any = None) -> DataLoader:
        """The evaluation loader of ``dataset`` (default: the evaluation set); sharded over the ranks."""
        dataset = self.eval_set if dataset is None else dataset
        return DataLoader(
            dataset,
            batch_size=self.dist.test_batch_size,
            shuffle=False,
            sampler=self.dist.eval_sampler(dataset),
            **self.loader_kwargs(),
        )

    def evaluate(self, desc: str = "eval", backbone: bool = False) -> Tuple[Inference, Dict[str, Any]]:
        """One pass over the evaluation set; ``backbone``: the inference also keeps the netF outputs."""
        inference = infer(
            self.model, self.eval_loader(), self.device, amp=self.use_amp, desc=desc, show=self.show, backbone=backbone
        )
        return inference, classification_metrics(inference.logits.argmax(1), inference.labels, self.num_classes)

    # -- state -------------------------------------------------------------------------------------------
    def _state(self, records: List[EpochRecord], best: BestWeights, iteration: int, optimizer) -> dict:
        return {
            "epoch_done": len(records),
            "wall_s": self._earlier_wall_s + time.time() - self._started,
            "iteration": iteration,
            "records": [r.to_dict() for r in records],
            "best": best.to_dict(),
            "model": self.model.state_dict(),
            "optimizer": optimizer.state_dict(),
            "scaler": self.scaler.state_dict(),
            "method": self.method.state_dict(),
            "weighter": self.weighter.state_dict(),
            "weighting_output": self.weighting_output.state_dict(),
        }

    def _load_state(self, optimizer) -> Optional[Tuple[List[EpochRecord], BestWeights, int]]:
        path = self.run_dir / STATE_FILE
        if not path.is_file():
            return None
        try:
            state = torch.load(path, map_location=self.device, weights_only=False)
            records = [EpochRecord(**record) for record in state["records"]]
            best = BestWeights(**state["best"])
        except Exception as e:
            raise SfdaError(
                f"cannot read the resume state '{path}' ({type(e).__name__}); delete it or rerun with --restart"
            ) from None
        self._earlier_wall_s = float(state.get("wall_s", 0.0))  # absent from state files of older versions
        self.model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        self.scaler.load_state_dict(state["scaler"])
        self.method.load_state_dict(state["method"])
        self.weighter.load_state_dict(state["weighter"])
        self.weighting_output.load_state_dict(state["weighting_output"])
        return records, best, state["iteration"]

    # -- the loop ----------------------------------------------------------------------------------------
    def fit(self, stop_after_epoch: Optional[int] = None) -> Optional[FitResult]:
        """Train; the result, or None if stopped early by ``stop_after_epoch`` (the state is kept to resume)."""
        optimizer = build_optimizer(self.method.param_groups(), self.cfg.optim)
        records: List[EpochRecord] = []
        best, iteration = BestWeights(), 0
        resumed = self._load_state(optimizer)
        if resumed is not None:
            records, best, iteration = resumed
            self.log.info(f"resuming from epoch {len(records)}/{self.epochs} ({self.run_dir / STATE_FILE})")
        with self.dist.wrapped(self.method):  # several processes: the method trains through DDP
            for epoch in range(len(records), self.epochs):
                record, best, iteration = self._run_epoch(epoch, optimizer, best, iteration)
                records.append(record)
                so_far = history(records)
                self._report(so_far[-2], so_far[-1])
                atomic_save(self._state(records, best, iteration, optimizer), self.run_dir / STATE_FILE)
                if stop_after_epoch is not None and epoch + 1 >= stop_after_epoch and epoch + 1 < self.epochs:
                    return None
        if self.method.evaluation is EvalPolicy.BEFORE_EACH_EPOCH:  # the last epoch's weights
            seed_everything(parallel.rank_seed(derive_seed(self.cfg.seed, self.epochs)))
            _, final = self.evaluate(desc="final eval")
            entries = history(records, eval_summary(final))
        else:  # the best weights (select_best) or the last
            if self.method.select_best and best.state is not None:
                self.model.load_state_dict(best.state)
            _, final = self.evaluate(desc="final eval")
            entries = history(records)
        self.log.scalars({k: v for k, v in entries[-1].items() if k != "epoch"}, self.epochs, "epoch/")
        return FitResult(entries, final, best.epoch, self._earlier_wall_s)

    def _run_epoch(
        self, epoch: int, optimizer, best: BestWeights, iteration: int
    ) -> Tuple[EpochRecord, BestWeights, int]:
        seed_everything(parallel.rank_seed(derive_seed(self.cfg.seed, epoch)))
        started = time.time()
        record = EpochRecord(epoch)
        if self.method.evaluation is EvalPolicy.BEFORE_EACH_EPOCH:
            backbone = bool(getattr(self.method, "inference_backbone", False))
            inference, metrics = self.evaluate(desc=f"eval {epoch}", backbone=backbone)
            record.start_eval = eval_summary(metrics)
            record.method_stats = dict(self.method.on_epoch_start(epoch, inference))
            self.dist.sync_method(self.method)
            del inference
        record.train_logs, iteration = self._train_epoch(epoch, optimizer, iteration)
        self.dist.sync_buffers()
        self.dist.gather_weighter(self.weighter)
        report = self.weighter.epoch_end(epoch, keep_samples=self.weighting_output.keeps_samples(epoch))
        record.weighting = self.weighting_output.record(epoch, report)
        if self.method.evaluation is EvalPolicy.AFTER_EACH_EPOCH:
            _, metrics = self.evaluate(desc=f"val {epoch + 1}")
            record.end_eval = eval_summary(metrics)
            score = metrics[self.cfg.eval.metric]
            if self.method.select_best and score >= best.score:
                weights = {k: v.detach().clone() for k, v in self.model.state_dict().items()}
                best = BestWeights(score, epoch + 1, weights)
        record.time_s = round(time.time() - started, 2)
        return record, best, iteration

    def _train_epoch(self, epoch: int, optimizer, iteration: int) -> Tuple[Dict[str, float], int]:
        self.method.train_mode()
        sums: Dict[str, Any] = {}
        steps = 0
        for images, labels, indices in progress(
            self.train_loader(epoch), desc=f"epoch {epoch + 1}/{self.epochs}", mode=self.show
        ):
            if images.shape[0] < 2:  # BatchNorm cannot train on one sample (skipped, as the reference code does)
                continue
            images = images.to(self.device, non_blocking=True)
            labels = labels.to(self.device, non_blocking=True)
            indices = indices.to(self.device, non_blocking=True)
            step_logs = self.train_step(
                images, labels, indices, optimizer, StepInfo(epoch, self.epochs, iteration, self.total_iters)
            )
            iteration += 1
            if step_logs is None:
                continue
            steps += 1
            for k, v in step_logs.items():  # tensors stay on the device: no synchronisation per step
                sums[k] = sums.get(k, 0.0) + (v.detach().float() if torch.is_tensor(v) else float(v))
            if steps % FINITE_CHECK_EVERY == 0:  # one host sync per FINITE_CHECK_EVERY steps
                _check_finite(float(sums["loss"]), epoch, iteration)
        logs = {k: float(v) / max(steps, 1) for k, v in self.dist.average_logs(sums).items()}
        if "loss" in logs:
            _check_finite(logs["loss"], epoch, iteration)
        optim_cfg = self.cfg.optim
        logs["lr"] = optim_cfg.lr * lr_factor(optim_cfg, max(iteration - 1, 0), self.total_iters, self.iters_per_epoch)
        return logs, iteration

    def train_step(
        self, images: torch.Tensor, labels: torch.Tensor, indices: torch.Tensor, optimizer, info: StepInfo
    ) -> Optional[Dict[str, Any]]:
        """One optimisation step on a batch already on the device; returns the step's logs (floats or
        detached tensors; None if the method produced no trainable loss)."""
        optim_cfg = self.cfg.optim
        set_lr(optimizer, optim_cfg.lr, lr_factor(optim_cfg, info.iteration, self.total_iters, self.iters_per_epoch))
        with torch.autocast(device_type=self.device.type, dtype=self.amp_dtype, enabled=self.use_amp):
            step = self.method.training_step(Batch(images, labels, indices), info)
            loss = step.reduced_loss
            if step.per_sample is not None:
                loss = loss + self.weighter.weighted_loss(
                    step.per_sample.float(), self._weight_input(step, images, indices, info)
                )
        if not torch.is_tensor(loss) or not loss.requires_grad:
            return None
        optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        if optim_cfg.grad_clip > 0:
            self.scaler.unscale_(optimizer)
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), optim_cfg.grad_clip)
        self.scaler.step(optimizer)
        self.scaler.update()
        self.dist.after_step(indices)
        return {"loss": loss.detach(), **step.logs}

    def _weight_input(
        self, step: StepOutput, images: torch.Tensor, indices: torch.Tensor, info: StepInfo
    ) -> WeightInput:
        assert step.targets is not None, "a StepOutput with per_sample needs its targets"
        return WeightInput(
            self.model,
            step.weight_images if step.weight_images is not None else images,
            step.targets,
            step.logits.detach() if step.logits is not None else None,
            indices,
            info.epoch,
            info.progress,
        )

    def _report(self, boundary: Dict[str, Any], after: Dict[str, Any]) -> None:
        """Log an epoch: ``boundary`` is the history entry of its starting weights, ``after`` its training."""
        evaluated_before = self.method.evaluation is EvalPolicy.BEFORE_EACH_EPOCH
        self.log.info(epoch_line(boundary, after, self.epochs, evaluated_before))
        self.log.scalars({k: v for k, v in boundary.items() if k != "epoch"}, boundary["epoch"], "epoch/")
        self.log.scalars({k: v for k, v in after.items() if k != "epoch"}, after["epoch"], "train/")
