"""sfda train-source | adapt | run -c CONFIG [key=value ...]; under ``torchrun`` on several processes
(docs/distributed.md)."""

from __future__ import annotations

from .. import parallel
from ..engine import distributed
from ..engine.runlog import setup_console
from ..engine.runner import run_both, run_config


def _add(sub, name, help_):
    p = sub.add_parser(name, help=help_, description=help_)
    p.add_argument(
        "-c",
        "--config",
        required=True,
        action="append",
        help="config file (path, or name under configs/); repeat to merge several in order",
    )
    p.add_argument(
        "overrides", nargs="*", metavar="KEY=VALUE", help="dotted config overrides, e.g. optim.lr=0.005 seed=2021"
    )
    p.add_argument(
        "--force",
        action="store_true",
        help="run again from scratch even if the run already finished, "
        "replacing a run folder that holds another config",
    )
    p.add_argument(
        "--restart",
        action="store_true",
        help="ignore a saved resume state (or a finished result) and start from epoch 0",
    )
    return p


def register(sub):
    _add(sub, "train-source", "Stage 1: supervised training on the source domain.").set_defaults(
        func=lambda a: _go(run_config, a, stage="source")
    )
    _add(sub, "adapt", "Stage 2: source-free adaptation of a trained source model to the target.").set_defaults(
        func=lambda a: _go(run_config, a, stage="adapt")
    )
    r = _add(sub, "run", "Both stages: train the source model if needed (reusing an existing one), then adapt.")
    r.description = (
        "Both stages: train the source model if needed (reusing one trained with the same settings), then adapt. "
        "An override applies to every stage whose config has its key, except keys that belong to the adaptation "
        "stage by nature: method.* (the method and its loss), weighting.*, sampler.*, source.*, data.target and "
        "the run's names (name, label, task, benchmark). --source-set overrides the source stage alone. The "
        "source model's architecture, input size, normalisation and class count must match the adaptation "
        "config's (checked). A run folder belongs to one resolved config: a changed setting runs in its own "
        "folder (<name>+<hash>)."
    )
    r.add_argument(
        "--source-set",
        nargs="*",
        default=[],
        metavar="KEY=VALUE",
        help="overrides for the source stage only, applied last",
    )
    r.set_defaults(func=lambda a: _go(run_both, a, source_overrides=a.source_set))


def _go(fn, a, **kw):
    with distributed.session():  # a torchrun launch: one process group for the command (else nothing)
        if parallel.is_main():  # lines said before a run log exists (routing, "already finished") reach the console
            setup_console()
        res = fn(a.config, a.overrides, force=a.force, restart=a.restart, **kw)
    return 0 if res is not None else 1
