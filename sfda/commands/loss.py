"""sfda loss: pretrain the EDL-style learned loss without data, and measure losses on synthetic pairs.

sfda loss pretrain --out losses/edl_style.pt                  # chaotic-mutation ES, seed 0, a minute or two
sfda loss pretrain --out g.pt mutation=gaussian seed=1        # KEY=VALUE settings (`sfda loss pretrain -h`)
sfda loss rank losses/edl_style.pt g.pt                       # ranking consistency of CE, NGL, Brier, the files
sfda loss curves --out fitness.png a.pt b.pt ...              # fitness against generation, by mutation
"""

from __future__ import annotations

import argparse
import shlex
import sys
import time
from pathlib import Path
from typing import Dict, List

import numpy as np
import torch

from ..config.loader import parse_overrides
from ..engine.progress import progress, resolve_mode
from ..errors import ConfigError
from ..models.checkpoint import atomic_save
from ..params import build_params, default_of, fields_of, type_name


def _pretrain(a) -> int:
    from ..losses.learned_pretrain import PretrainParams, pretrain

    hp = build_params(PretrainParams, dict(parse_overrides(a.settings)))
    mode = resolve_mode(a.progress)
    bar = progress(range(hp.generations), desc=f"EDL-style loss ({hp.mutation})", mode=mode)
    every = max(1, hp.generations // 10)
    t0 = time.time()

    def report(generation: int, stats: Dict[str, float]) -> None:
        if hasattr(bar, "set_postfix"):
            bar.set_postfix(fitness=f"{stats['monitor']:.4f}", sigma=f"{stats['sigma']:.3f}")
            bar.update(1)
        elif mode == "lines" and (generation + 1) % every == 0:
            print(
                f"generation {generation + 1}/{hp.generations}: fitness {stats['monitor']:.4f} "
                f"(this generation's pairs {stats['best']:.4f}), sigma {stats['sigma']:.3f}",
                flush=True,
            )

    record = pretrain(hp, report)
    if hasattr(bar, "close"):
        bar.close()
    record["command"] = "sfda loss pretrain " + " ".join(shlex.quote(x) for x in ["--out", a.out, *a.settings])
    record["seconds"] = round(time.time() - t0, 1)
    atomic_save(record, Path(a.out))
    print(
        f"EDL-style loss written to {a.out} (fitness {record['monitor_fitness']:.4f} on its monitor pairs, "
        f"{record['seconds']:.0f} s); use it with pl_loss: {{name: learned, path: {a.out}}}"
    )
    return 0


def rank_table(files: List[str], num_pairs: int, seed: int, k_min: int, k_max: int) -> List[str]:
    """Markdown rows: the ranking consistency of CE, NGL, Brier and each learned-loss file on held-out pairs."""
    from ..losses.expression import ExpressionLoss
    from ..losses.learned import LearnedLoss, read_loss_file
    from ..losses.learned_pairs import KINDS, REGIMES, sample_pairs
    from ..losses.learned_pretrain import consistency
    from ..registry import LOSSES

    blocks = sample_pairs(np.random.default_rng(seed), num_pairs, k_min, k_max)
    makers = {
        "CE": lambda k: LOSSES.get("ce")(k),
        "NGL": lambda k: LOSSES.get("ngl")(k),
        "Brier": lambda k: ExpressionLoss(k, formula="brier"),
    }
    for f in files:
        try:
            settings = read_loss_file(f)["settings"]
        except ValueError as e:
            raise ConfigError(str(e)) from None
        makers[f"EDL-style {settings['mutation']} seed {settings['seed']} ({Path(f).name})"] = lambda k, f=f: (
            LearnedLoss(k, path=f)
        )
    regime = torch.cat([b.regime for b in blocks])
    kind = torch.cat([b.kind for b in blocks])
    head = ["loss", "all (regime mean)", *REGIMES, *KINDS]
    rows = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name, make in makers.items():
        with torch.no_grad():
            better = torch.cat([make(b.num_classes)(b.better, b.targets) for b in blocks])[None]
            worse = torch.cat([make(b.num_classes)(b.worse, b.targets) for b in blocks])[None]
        cells = [consistency(better, worse, regime)]
        cells += [
            consistency(better[:, regime == r], worse[:, regime == r], regime[regime == r]) for r in range(len(REGIMES))
        ]
        cells += [consistency(better[:, kind == j], worse[:, kind == j], regime[kind == j]) for j in range(len(KINDS))]
        rows.append("| " + " | ".join([name] + [f"{float(c[0]):.4f}" for c in cells]) + " |")
    rows.append(f"\n{len(regime)} held-out pairs, seed {seed}, K log-uniform in [{k_min}, {k_max}]")
    return rows


def _rank(a) -> int:
    print("\n".join(rank_table(a.files, a.pairs, a.seed, a.k_min, a.k_max)))
    return 0


def _curves(a) -> int:
    from ..losses.learned import read_loss_file
    from ..results.plots import _plt

    plt = _plt()
    groups: Dict[str, List[List[float]]] = {}
    for f in a.files:
        try:
            record = read_loss_file(f)
        except ValueError as e:
            raise ConfigError(str(e)) from None
        groups.setdefault(record["settings"]["mutation"], []).append(record["history"]["monitor"])
    fig, ax = plt.subplots(figsize=(5.5, 3.4), dpi=100)
    for mutation, runs in sorted(groups.items()):
        length = min(len(r) for r in runs)
        curves = np.array([r[:length] for r in runs])
        gens = np.arange(1, length + 1)
        (line,) = ax.plot(gens, curves.mean(axis=0), label=f"{mutation} (mean of {len(runs)} seeds)")
        ax.fill_between(gens, curves.min(axis=0), curves.max(axis=0), color=line.get_color(), alpha=0.2)
    ax.set_xlabel("generation")
    ax.set_ylabel("ranking consistency (monitor pairs)")
    ax.set_title("EDL-style loss pretraining: chaotic vs Gaussian mutation", fontsize=9)
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(a.out)
    plt.close(fig)
    print(f"wrote {a.out}")
    return 0


def _settings_help() -> str:
    from ..losses.learned_pretrain import PretrainParams

    lines = [
        f"  {f.name} ({type_name(tp)}, default {default_of(f)}): {f.metadata.get('help', '')}"
        for f, tp in fields_of(PretrainParams)
    ]
    return "settings (KEY=VALUE):\n" + "\n".join(lines)


def register(sub):
    p = sub.add_parser("loss", help="Pretrain the EDL-style learned loss; rank losses on synthetic pairs.")
    s = p.add_subparsers(dest="what", metavar="ACTION")
    pre = s.add_parser(
        "pretrain",
        help="Pretrain the EDL-style loss network on synthetic pairs (CPU, no data).",
        epilog=_settings_help() if "pretrain" in sys.argv else None,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    pre.add_argument("--out", required=True, help="the file to write (.pt)")
    pre.add_argument(
        "--progress",
        default="auto",
        choices=["auto", "bar", "lines", "none"],
        help="a bar per generation (auto: on a terminal), lines, or nothing",
    )
    pre.add_argument("settings", nargs="*", metavar="KEY=VALUE", help="seed, generations, mutation=gaussian, ...")
    pre.set_defaults(func=_pretrain)
    rank = s.add_parser("rank", help="Ranking consistency of CE, NGL, Brier and learned-loss files on held-out pairs.")
    rank.add_argument("files", nargs="*", help="files written by `sfda loss pretrain`")
    rank.add_argument("--pairs", type=int, default=20000, help="held-out pairs (default 20000)")
    rank.add_argument("--seed", type=int, default=12345, help="seed of the held-out pairs (default 12345)")
    rank.add_argument("--k-min", type=int, default=2)
    rank.add_argument("--k-max", type=int, default=100)
    rank.set_defaults(func=_rank)
    cur = s.add_parser("curves", help="Plot fitness against generation of learned-loss files, by mutation.")
    cur.add_argument("files", nargs="+", help="files written by `sfda loss pretrain`")
    cur.add_argument("--out", required=True, help="the PNG to write")
    cur.set_defaults(func=_curves)
    p.set_defaults(func=lambda a: p.print_help())
