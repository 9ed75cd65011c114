"""DIFO (Tang, Su, Ye, Zhu, CVPR 2024): source-free adaptation assisted by a frozen CLIP, alternating
(i) prompt tuning of CLIP that maximises mutual information with the target model and (ii) distillation of the
customised CLIP into the target model.

At the start of every epoch (from the eval pass, test transform, dataset order):

- PV_i = softmax(exp(logit_scale) cos(CLIP_image(x_i), t_k)) with the text features t of the current prompts
  ("a photo of a <class>." before the first tuning, then the prompts tuned at the previous epoch start);
- step (i): a new prompt learner (4 context vectors from "a photo of a") takes one shuffled pass over the
  target, one SGD step per batch on IIC(CLIP softmax with the learnable prompts, D), D = (PT + PV) / 2 with PT
  the target model's softmax; its text features give the PV of the next epoch (``prompt_lag``);
- the score memory S (the target model's last softmax of every sample) is filled from the first eval pass.

Per batch (step ii), p = softmax(z) of the target model on the training view:

    t_i = gamma_i e(argmax S_i) + (1 - gamma_i) e(argmax PV_i),   gamma_i ~ Exponential(mean 0.1)
    l_i = -t_i . z_i                                      (MCE on the raw logits; per sample, weighted)
    L   = cls_par mean_i w_i l_i + iic_par IIC(p, PV) - gent_par H(mean_i p_i)
    S_i <- p_i

NS and other weighters multiply cls_par l_i (the most-likely-category encouragement); their target is argmax t_i.
The classifier is frozen (as the reference). CLIP is loaded and driven by :mod:`sfda.methods._clip`.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import Any, Dict, Literal, Optional

import torch
import torch.nn.functional as F

from ..data.formats import build_format
from ..datatypes import Inference
from ..losses.information import entropy
from ..parallel import batch_mean
from ..params import ParamError, param
from ..registry import METHODS
from ._clip import ClipTeacher, load_clip, read_class_names
from .base import Batch, Method, MethodParams, StepInfo, StepOutput


def iic_loss(p: torch.Tensor, q: torch.Tensor, eps: float = sys.float_info.epsilon) -> torch.Tensor:
    """Minus the mutual information of the joint J = sym(sum_b p_b q_b^T) / total (IIC, as DIFO and TPDS use it):
    marginals from J, then J and the marginals raised to ``eps`` (no gradient below it)."""
    joint = p.float().t() @ q.float()
    joint = (joint + joint.t()) / 2
    joint = joint / joint.sum()
    rows, cols = joint.sum(dim=1, keepdim=True), joint.sum(dim=0, keepdim=True)
    joint, rows, cols = joint.clamp_min(eps), rows.clamp_min(eps), cols.clamp_min(eps)
    return -(joint * (joint.log() - rows.log() - cols.log())).sum()


def mixed_targets(memory_label: torch.Tensor, clip_label: torch.Tensor, gamma: torch.Tensor, k: int) -> torch.Tensor:
    """t_i = gamma_i e(memory_i) + (1 - gamma_i) e(clip_i), [B, k]."""
    g = gamma.view(-1, 1)
    return g * F.one_hot(memory_label, k).float() + (1 - g) * F.one_hot(clip_label, k).float()


@METHODS.register("difo")
class DIFO(Method):
    """DIFO: CLIP prompt tuning by mutual information with the target model, distilled back (MCE + IIC + diversity)."""

    label = "DIFO"
    NOT_STATE = Method.NOT_STATE + ("teacher", "clip_set", "image_features", "clip_probs")

    @dataclass
    class Params(MethodParams):
        cls_par: float = param(0.4, low=0.0, help="weight of the MCE term -t.z (Office-31: 0.2)")
        iic_par: float = param(1.0, low=0.0, help="weight of the IIC distillation from CLIP's prediction")
        gent_par: float = param(1.0, low=0.0, help="weight of the diversity term -H(mean p)")
        epsilon: float = param(1e-5, low=0.0, help="in the diversity entropy's log")
        gamma_mean: float = param(0.1, low=0.0, high=1.0, help="mean of gamma ~ Exponential: the memory label's share")
        mce_on: Literal["logits", "log_probs"] = param("logits", help="MCE on raw logits (reference) or -t.log p")
        clip_arch: Literal["ViT-B-32", "ViT-B-16", "RN50", "RN101", "tiny"] = param(
            "ViT-B-32", help="CLIP model (open_clip name; tiny: a random toy model for tests)"
        )
        clip_weights: str = param("", help="OpenAI weight file (e.g. ViT-B-32.pt); empty: ~/.cache/clip or download")
        clip_pretrained: bool = param(True, help="false: randomly initialised CLIP (benchmarks, tests)")
        clip_normalize: Literal["data", "clip"] = param(
            "data", help="CLIP's inputs: the target model's tensors (reference) or re-normalised to CLIP's stats"
        )
        class_names: str = param("", help="class-name file in label order (empty: data_lists/classnames/<benchmark>)")
        prompt_init: str = param("a photo of a", help="context words; their tokens are the learned vectors")
        prompt_lr: float = param(0.01, low=0.0, low_open=True, help="prompt SGD lr (reference: optim.lr)")
        prompt_weight_decay: float = param(5e-4, low=0.0, help="prompt SGD weight decay")
        prompt_batch_size: int = param(64, low=1, help="prompt tuning batch size")
        prompt_steps: int = param(1, low=0, help="prompt SGD steps per batch (0: hand-written prompts throughout)")
        prompt_lag: bool = param(True, help="PV of epoch e from the prompts tuned at epoch e-1 (reference)")
        freeze_classifier: bool = param(True, help="keep the source classifier fixed (reference)")

        def check(self) -> None:
            if self.clip_arch == "tiny" and self.clip_pretrained:
                raise ParamError("clip_arch", "'tiny' is a random toy model: set method.clip_pretrained=false")

    hparams: DIFO.Params

    def setup(self, train_set, device) -> None:
        super().setup(train_set, device)
        hp = self.hparams
        cfg = self.cfg
        benchmark = str(cfg.benchmark) if cfg is not None else ""
        names = read_class_names(hp.class_names, benchmark, self.num_classes)
        clip = load_clip(hp.clip_arch, hp.clip_weights, hp.clip_pretrained)
        transform = str(cfg.data.transform) if cfg is not None else "imagenet"
        self.teacher = ClipTeacher(clip, names, hp.prompt_init, device, transform, hp.clip_normalize)
        # CLIP sees the target through the test transform, in dataset order: the evaluation view of the target
        self.clip_set = build_format(cfg).domain(cfg.data.target, train=False) if cfg is not None else train_set
        self.memory: Optional[torch.Tensor] = None  # S: the target model's last softmax per sample
        self.text_features: Optional[torch.Tensor] = None  # prompts for the next epoch's PV
        self.image_features: Optional[torch.Tensor] = None  # cached once: CLIP and the test transform are fixed
        self.clip_probs: Optional[torch.Tensor] = None  # PV of the current epoch

    def _image_features(self) -> torch.Tensor:
        if self.image_features is None:
            data = self.cfg.data if self.cfg is not None else None
            batch = int(data.test_batch_size) if data is not None else 64
            workers = int(data.num_workers) if data is not None else 0
            self.image_features = self.teacher.image_features(self.clip_set, batch, workers)
        return self.image_features

    def on_epoch_start(self, epoch: int, inference: Inference) -> Dict[str, Any]:
        hp = self.hparams
        images = self._image_features()
        if images.shape[0] != inference.probs.shape[0]:
            raise RuntimeError("DIFO: CLIP's view of the target and the evaluation set differ in size")
        if self.text_features is None:
            self.text_features = self.teacher.text_features(self.teacher.new_prompts())  # "a photo of a <name>."
        self.clip_probs = self.teacher.probs(images, self.text_features)
        probs = inference.probs.to(images.device)
        if self.memory is None:
            self.memory = probs.clone()
        stats: Dict[str, Any] = {
            "clip_accuracy": 100.0
            * (self.clip_probs.argmax(1) == inference.labels.to(images.device)).float().mean().item()
        }
        last = self.cfg is not None and epoch + 1 >= int(self.cfg.optim.epochs)
        if hp.prompt_steps > 0 and not (last and hp.prompt_lag):  # the last epoch's tuning would never be used
            mixed = (probs + self.clip_probs) / 2
            text, loss = self.teacher.tune(
                images, mixed, iic_loss, hp.prompt_lr, hp.prompt_weight_decay, hp.prompt_batch_size, hp.prompt_steps
            )
            self.text_features = text
            stats["prompt_loss"] = loss
            if not hp.prompt_lag:
                self.clip_probs = self.teacher.probs(images, text)
                stats["clip_accuracy_tuned"] = (
                    100.0 * (self.clip_probs.argmax(1) == inference.labels.to(images.device)).float().mean().item()
                )
        return stats

    def training_step(self, batch: Batch, info: StepInfo) -> StepOutput:
        hp = self.hparams
        assert self.memory is not None and self.clip_probs is not None, "on_epoch_start runs before training"
        logits = self.model(batch.images)
        probs = torch.softmax(logits.float(), dim=1)
        clip_probs = self.clip_probs[batch.indices]
        memory_label = self.memory[batch.indices].argmax(dim=1)
        gamma = torch.empty(len(batch.indices), device=logits.device).exponential_(1.0 / hp.gamma_mean)
        targets = mixed_targets(memory_label, clip_probs.argmax(dim=1), gamma, self.num_classes)
        scores = logits.float() if hp.mce_on == "logits" else torch.log_softmax(logits.float(), dim=1)
        mce = -(targets * scores).sum(dim=1)
        iic = iic_loss(probs, clip_probs)
        div = entropy(batch_mean(probs), hp.epsilon)
        self.memory[batch.indices] = probs.detach()
        return StepOutput(
            reduced_loss=hp.iic_par * iic - hp.gent_par * div,
            per_sample=hp.cls_par * mce,
            targets=targets.argmax(dim=1),
            logits=logits,
            logs={
                "loss_mce": mce.detach().mean(),
                "loss_iic": iic.detach(),
                "loss_div": div.detach(),
                "clip_agrees": (memory_label == clip_probs.argmax(dim=1)).float().mean(),
            },
        )
