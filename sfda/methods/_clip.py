"""CLIP for DIFO: loading through ``open_clip`` (the optional ``clip`` extra), class names, the CoOp-style
prompt learner and the frozen CLIP teacher (cached image features, text features of prompts, prompt tuning).

open_clip is imported only when a DIFO run is set up (:func:`import_open_clip`); nothing else in sfda imports it.
CLIP's weights never train: the model is in eval mode with ``requires_grad`` off, every image pass runs under
``no_grad``, and prompt tuning differentiates the text encoder only with respect to the context vectors. On CUDA
every CLIP pass runs under bf16 autocast (fp16 where bf16 is not supported).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Callable, List, Optional

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader

from ..errors import CheckpointError, ConfigError, DataError
from ..paths import LISTS_DIR, resolve_path

INSTALL_HINT = 'pip install open_clip_torch, or pip install -e ".[clip]"'
CLIP_CACHE = "~/.cache/clip"  # where open_clip (and OpenAI's clip package) keep the OpenAI weight files
OPENAI_URLS = {  # OpenAI's published weight files (open_clip's `openai` tags); the SHA-256 is in the path
    "ViT-B-32": "https://openaipublic.azureedge.net/clip/models/"
    "40d365715913c9da98579312b702a82c18be219cc2a73407c4526f58eba950af/ViT-B-32.pt",
    "ViT-B-16": "https://openaipublic.azureedge.net/clip/models/"
    "5806e77cd80f8b59890b7e101eabd078d9fb84e6937f9e85e4ecb61988df416f/ViT-B-16.pt",
    "RN50": "https://openaipublic.azureedge.net/clip/models/"
    "afeb0e10f9e5a86da6080e35cf09123aca3b358a0c3e3b6c78a7b63bc04b6762/RN50.pt",
    "RN101": "https://openaipublic.azureedge.net/clip/models/"
    "8fa8567bab74a42d41c5915025a8e4538c3bdbe8804a470a72f30b0d94fab599/RN101.pt",
}
# a randomly initialised toy CLIP for the tests and the CPU benchmark (no download; open_clip's own tokenizer)
TINY = {
    "embed_dim": 32,
    "vision_cfg": {"image_size": 32, "layers": 1, "width": 64, "head_width": 32, "patch_size": 8},
    "text_cfg": {"context_length": 16, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 1},
}
CLASS_NAME_FILES = {"digits-offline": "digits", "digits-lt": "digits"}  # benchmarks sharing a names file
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
DATA_STATS = {  # (mean, std) of the tensors each data.transform produces
    "imagenet": ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),
    "imagenet_rrc": ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),
    "digits": ((0.5,) * 3, (0.5,) * 3),
    "digits_rgb32": ((0.5,) * 3, (0.5,) * 3),
    "cifar": ((0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)),
}


def import_open_clip() -> Any:
    try:
        import open_clip
    except ImportError:
        raise ConfigError(f"method 'difo' needs CLIP through the open_clip package: {INSTALL_HINT}") from None
    return open_clip


def weights_file(arch: str) -> str:
    return Path(OPENAI_URLS[arch]).name if arch in OPENAI_URLS else f"{arch}.pt"


def missing_weights_message(arch: str, reason: str) -> str:
    """The one line a user without the CLIP weights gets: which file, from where, where to put it."""
    name = weights_file(arch)
    return (
        f"{reason}; on a machine with internet download {OPENAI_URLS.get(arch, name)} (OpenAI's CLIP {arch} "
        f"weights), put it at {CLIP_CACHE}/{name} or set method.clip_weights=/path/to/{name}"
    )


def load_clip(arch: str, weights: str = "", pretrained: bool = True) -> Any:
    """The frozen, fp32, eval-mode open_clip CLIP model ``arch`` on the CPU.

    Weights: ``weights`` (a file: OpenAI's TorchScript ``<arch>.pt`` or a state dict), else ``~/.cache/clip/<arch>.pt``
    when it exists, else open_clip's download of the ``openai`` tag. ``pretrained=False``: random initialisation
    (``arch`` ``tiny``: the toy model of :data:`TINY`)."""
    open_clip = import_open_clip()
    if arch == "tiny":
        model = open_clip.CLIP(**TINY, quick_gelu=True)
    elif not pretrained:
        model = open_clip.create_model(arch, pretrained=None, force_quick_gelu=True)
    else:
        path = Path(os.path.expanduser(os.path.expandvars(weights or f"{CLIP_CACHE}/{weights_file(arch)}")))
        if weights and not path.is_file():
            raise CheckpointError(missing_weights_message(arch, f"method.clip_weights '{path}' not found"))
        if path.is_file():
            try:
                model = open_clip.load_openai_model(str(path), precision="fp32", device="cpu")
            except Exception as e:
                raise CheckpointError(
                    f"'{path}' is not a CLIP {arch} checkpoint ({type(e).__name__}); "
                    + missing_weights_message(arch, "replace it").split("; ", 1)[1]
                ) from None
        else:
            try:  # open_clip fetches the tag (Hugging Face hub, or OpenAI's URL into ~/.cache/clip)
                model = open_clip.create_model(arch, pretrained="openai", force_quick_gelu=True)
            except Exception as e:
                first = (str(e).splitlines() or [""])[0][:200]
                raise CheckpointError(
                    missing_weights_message(
                        arch, f"could not get the CLIP {arch} weights ({type(e).__name__}: {first})"
                    )
                ) from None
    model = model.float().eval()
    for p in model.parameters():
        p.requires_grad_(False)
    return model


def read_class_names(path: str, benchmark: str, num_classes: int) -> List[str]:
    """Class names in label order (one per line; ``_`` is a space in the prompt): ``path``, or the file
    shipped for ``benchmark`` (``data_lists/classnames/<benchmark>.txt``)."""
    if path:
        f = resolve_path(path)
    else:
        f = LISTS_DIR / "classnames" / f"{CLASS_NAME_FILES.get(benchmark, benchmark)}.txt"
    if not f.is_file():
        raise DataError(
            f"class names '{f}' not found: DIFO's prompts need one class name per line in label order "
            "(set method.class_names=FILE)"
        )
    names = [line.strip() for line in f.read_text(encoding="utf-8").splitlines() if line.strip()]
    if len(names) != num_classes:
        raise DataError(f"class names '{f}': {len(names)} names for {num_classes} classes (data.num_classes)")
    return [n.replace("_", " ") for n in names]


class PromptLearner(nn.Module):
    """CoOp/TPT prompts ``[SOS] ctx_1 .. ctx_n <class name> . [EOS]`` with ``n`` context vectors shared by the
    classes, initialised from the word embeddings of ``init`` ("a photo of a": n = 4)."""

    prefix: torch.Tensor
    suffix: torch.Tensor

    def __init__(self, clip: Any, tokens: torch.Tensor, n_ctx: int):
        super().__init__()
        with torch.no_grad():
            embedding = clip.token_embedding(tokens).float()  # [C, L, W]
        self.register_buffer("prefix", embedding[:, :1].clone())
        self.register_buffer("suffix", embedding[:, 1 + n_ctx :].clone())
        self.ctx = nn.Parameter(embedding[0, 1 : 1 + n_ctx].clone())

    def forward(self) -> torch.Tensor:
        ctx = self.ctx.unsqueeze(0).expand(self.prefix.shape[0], -1, -1)
        return torch.cat([self.prefix, ctx, self.suffix], dim=1)


def encode_prompts(clip: Any, embeds: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
    """CLIP's text encoder on prompt embeddings (open_clip's ``encode_text`` after the token lookup);
    L2-normalised float32 features [C, D]."""
    cast = clip.transformer.get_cast_dtype()
    x = embeds.to(cast) + clip.positional_embedding.to(cast)
    x = clip.ln_final(clip.transformer(x, attn_mask=clip.attn_mask))
    x = x[torch.arange(x.shape[0], device=x.device), tokens.argmax(dim=-1)]  # the EOT token
    proj = clip.text_projection
    x = proj(x) if isinstance(proj, nn.Linear) else x @ proj
    return F.normalize(x.float(), dim=-1)


class ClipTeacher:
    """The frozen CLIP of a DIFO run (not part of the trained model, not in its resume state: rebuilt by setup)."""

    def __init__(
        self,
        clip: Any,
        class_names: List[str],
        prompt_init: str,
        device: Any,
        transform: str = "imagenet",
        normalize: str = "data",
    ):
        open_clip = import_open_clip()
        self.device = torch.device(device)
        self.clip = clip.to(self.device)
        length = int(clip.context_length)
        self.tokens = open_clip.tokenize([f"{prompt_init} {n}." for n in class_names], length).to(self.device)
        self.n_ctx = int((open_clip.tokenize([prompt_init], length) != 0).sum()) - 2
        size = getattr(clip.visual, "image_size", 224)
        self.image_size = tuple(size) if isinstance(size, (tuple, list)) else (int(size), int(size))
        self.affine: Optional[tuple] = None
        if normalize == "clip":  # data-normalised tensors -> CLIP's statistics
            if transform not in DATA_STATS:
                raise ConfigError(
                    f"method.clip_normalize 'clip' does not know the statistics of data.transform "
                    f"'{transform}'; use method.clip_normalize=data"
                )
            mean, std = (torch.tensor(v, device=self.device).view(1, 3, 1, 1) for v in DATA_STATS[transform])
            cmean, cstd = (torch.tensor(v, device=self.device).view(1, 3, 1, 1) for v in (CLIP_MEAN, CLIP_STD))
            self.affine = (std / cstd, (mean - cmean) / cstd)

    @property
    def logit_scale(self) -> torch.Tensor:
        return self.clip.logit_scale.detach().float().exp()

    def autocast(self) -> Any:
        cuda = self.device.type == "cuda"
        dtype = torch.bfloat16 if cuda and torch.cuda.is_bf16_supported() else torch.float16
        return torch.autocast(device_type=self.device.type, dtype=dtype, enabled=cuda)

    def inputs(self, images: torch.Tensor) -> torch.Tensor:
        """The target model's input tensors as CLIP's: grey -> RGB, optional re-normalisation, resize."""
        images = images.to(self.device, non_blocking=True).float()
        if images.shape[1] == 1:
            images = images.expand(-1, 3, -1, -1)
        if self.affine is not None:
            images = images * self.affine[0] + self.affine[1]
        if tuple(images.shape[-2:]) != self.image_size:
            images = F.interpolate(images, size=self.image_size, mode="bilinear", align_corners=False)
        return images

    @torch.no_grad()
    def image_features(self, dataset: Any, batch_size: int, num_workers: int = 0) -> torch.Tensor:
        """L2-normalised CLIP image features [N, D] in dataset order (its own generator: the global RNG is untouched)."""
        loader = DataLoader(
            dataset, batch_size=batch_size, shuffle=False, num_workers=num_workers, generator=torch.Generator()
        )
        out = []
        for images, _, _ in loader:
            with self.autocast():
                out.append(F.normalize(self.clip.encode_image(self.inputs(images)).float(), dim=-1))
        return torch.cat(out)

    def new_prompts(self) -> PromptLearner:
        return PromptLearner(self.clip, self.tokens, self.n_ctx).to(self.device)

    def text_features(self, prompts: PromptLearner) -> torch.Tensor:
        with torch.no_grad(), self.autocast():
            return encode_prompts(self.clip, prompts(), self.tokens)

    def probs(self, image_features: torch.Tensor, text_features: torch.Tensor) -> torch.Tensor:
        return torch.softmax(self.logit_scale * image_features @ text_features.t(), dim=1)

    def tune(
        self,
        image_features: torch.Tensor,
        targets: torch.Tensor,
        loss: Callable,
        lr: float,
        weight_decay: float,
        batch_size: int,
        steps: int,
    ) -> tuple:
        """Step (i): a new prompt learner, one shuffled pass over the target set, ``steps`` SGD steps per batch on
        ``loss(CLIP softmax, targets)``; returns the final prompts' text features and the mean loss.

        The reference's SGD (momentum 0.9, weight decay) has its state reset before every batch, so each step
        is ctx <- ctx - lr (grad + wd ctx); that is what runs here."""
        prompts = self.new_prompts()
        order = torch.randperm(image_features.shape[0]).to(image_features.device)
        total, count = 0.0, 0
        for start in range(0, len(order), batch_size):
            rows = order[start : start + batch_size]
            for _ in range(steps):
                with self.autocast():
                    text = encode_prompts(self.clip, prompts(), self.tokens)
                value = loss(self.probs(image_features[rows], text), targets[rows])
                (grad,) = torch.autograd.grad(value, prompts.ctx)
                with torch.no_grad():
                    prompts.ctx.sub_(lr * (grad + weight_decay * prompts.ctx))
                total, count = total + value.detach(), count + 1
        return self.text_features(prompts), float(total) / max(count, 1)
