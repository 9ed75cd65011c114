"""The full config schema with its defaults. Every key a config may set is here or in a registered
component's ``Params`` (method, weighting, sampler, losses; backbone: ``model.params``; dataset format:
``data.params``)."""

from ..registry import METHODS, SAMPLERS, WEIGHTERS
from .node import Component

DEFAULTS = {
    "name": "",  # experiment name; run dir = output_root/name/seed<seed> (default: config path under configs/)
    "label": "",  # row label in `sfda table` (default: derived from method, loss and weighting)
    "task": "",  # column in `sfda table`, e.g. Ar_Cl (default: derived from the domains)
    "benchmark": "",  # office-home, digits-offline, ...: selects the paper numbers shown by `sfda table`
    "seed": 2020,
    "deterministic": False,  # bit-reproducible kernels (slower); runs are seeded either way
    "output_root": "runs",
    "device": "auto",  # auto | cpu | cuda | cuda:N
    "data": {
        "format": "list",  # registered dataset format; "list" reads SHOT-format lists
        "root": None,  # image root; default $SFDA_DATA/<data.dataset_dir>
        "dataset_dir": "",  # folder of this benchmark under $SFDA_DATA
        "lists_dir": "",  # folder with <domain>.txt lists (absolute, or relative to cwd or the project)
        "source": "",  # source domain (list stem)
        "target": "",  # target domain (list stem)
        "domains": [],  # all domains of the benchmark; source-only accuracy is reported on the others
        "num_classes": 0,
        "transform": "imagenet",  # registered transform: imagenet | digits | digits_rgb32 | ...
        "resize_size": 256,
        "crop_size": 224,
        "batch_size": 64,
        "test_batch_size": 192,
        "num_workers": 4,
        "val_fraction": 0.1,  # source train/validation split (SHOT: 90/10, seeded)
        "skip_bad_images": False,  # drop missing/unreadable images (counted and logged) instead of stopping
        "cache_images": False,  # decode each image once (after the deterministic resize) and keep it in memory
        "params": {},  # the dataset format's parameters (e.g. imbalance for cifar_lt; `sfda list -v`)
    },
    "model": {
        "backbone": "resnet50",
        "pretrained": True,  # ImageNet weights through torchvision (downloaded once to $TORCH_HOME)
        "weights_path": None,  # local backbone weights file, used instead of the download
        "bottleneck_dim": 256,  # 0: no bottleneck
        "bottleneck": "bn",  # bn | plain
        "bottleneck_dropout": 0.0,
        "classifier": "wn",  # wn (weight-normalised, SHOT) | linear
        "params": {},  # the backbone's parameters (e.g. hidden for lenet; `sfda list -v`)
    },
    "optim": {
        "optimizer": "sgd",  # sgd | adamw
        "epochs": 15,
        "lr": 0.01,
        "backbone_lr_mult": 0.1,
        "bottleneck_lr_mult": 1.0,
        "classifier_lr_mult": 1.0,
        "momentum": 0.9,
        "weight_decay": 1e-3,
        "nesterov": True,
        "schedule": "shot",  # shot: lr0*(1+gamma*p)^-power | constant | step | cosine
        "gamma": 10.0,
        "power": 0.75,
        "milestones": [],  # step schedule: epochs at which lr is multiplied by step_factor
        "step_factors": [],  # one factor per milestone (default 0.1 each)
        "warmup_epochs": 0,
        "grad_clip": 0.0,  # clip the gradient norm (0: off)
        "amp": False,  # mixed precision for the training forward pass (CUDA only)
    },
    "source": {
        "config": "",  # source-stage config (relative to the config that sets it), used by `sfda run`
        "checkpoint": None,  # folder with source_F/B/C.pt; default: the run dir of source.config
    },
    "method": Component(METHODS, "shot"),
    "weighting": Component(WEIGHTERS, "none"),
    "sampler": Component(SAMPLERS, "none"),
    "eval": {
        "metric": "accuracy",  # accuracy | mean_class_accuracy: the number reported as the run's score
        "other_domains": True,  # after source training, report source-only accuracy on the other domains
    },
    "distributed": {  # torchrun runs on several processes (docs/distributed.md); no effect on one process
        "sync_bn": True,  # BatchNorm statistics of the global batch: N ranks x B/N train like 1 x B
        "global_batch_terms": True,  # batch-level loss terms (SHOT's and NRC's diversity, AaD's dispersion) over
        #                              the global batch, with autograd across the ranks
        "find_unused_parameters": False,  # DDP's option, for models whose steps leave some parameters unused
    },
    "log": {
        "tensorboard": True,
        "progress": "auto",  # auto (bars on a terminal, lines otherwise) | bar | lines | none
    },
}

# keys whose relative paths are resolved against the directory of the config file that sets them
RELATIVE_TO_FILE = {("source", "config")}


# Constraints on the keys above, checked when a config loads (the same checker as component parameters:
# ``sfda.params.check_value``). A key without an entry only has its type checked.
CONSTRAINTS = {
    ("device",): {"pattern": r"^(auto|cpu|mps|cuda(:[0-9]+)?)$", "example": "auto, cpu, cuda or cuda:N"},
    ("data", "batch_size"): {"low": 2, "why": "BatchNorm needs at least 2 samples per training batch"},
    ("data", "test_batch_size"): {"low": 1},
    ("data", "num_workers"): {"low": 0},
    ("data", "num_classes"): {"low": 0},
    ("data", "resize_size"): {"low": 1},
    ("data", "crop_size"): {"low": 1},
    ("data", "val_fraction"): {
        "low": 0.0,
        "high": 1.0,
        "high_open": True,
        "why": "the rest of the source images train the model",
    },
    ("model", "bottleneck_dim"): {"low": 0},
    ("model", "bottleneck"): {"choices": ("bn", "plain")},
    ("model", "bottleneck_dropout"): {"low": 0.0, "high": 1.0, "high_open": True},
    ("model", "classifier"): {"choices": ("wn", "linear")},
    ("optim", "optimizer"): {"choices": ("sgd", "adamw")},
    ("optim", "epochs"): {"low": 0},
    ("optim", "lr"): {"low": 0.0, "low_open": True},
    ("optim", "backbone_lr_mult"): {"low": 0.0},
    ("optim", "bottleneck_lr_mult"): {"low": 0.0},
    ("optim", "classifier_lr_mult"): {"low": 0.0},
    ("optim", "momentum"): {"low": 0.0, "high": 1.0, "high_open": True},
    ("optim", "weight_decay"): {"low": 0.0},
    ("optim", "schedule"): {"choices": ("shot", "constant", "step", "cosine")},
    ("optim", "gamma"): {"low": 0.0},
    ("optim", "power"): {"low": 0.0},
    ("optim", "warmup_epochs"): {"low": 0},
    ("optim", "grad_clip"): {"low": 0.0},
    ("eval", "metric"): {"choices": ("accuracy", "mean_class_accuracy")},
    ("log", "progress"): {"choices": ("auto", "bar", "lines", "none")},
}
