#!/usr/bin/env python
"""Device memory that AdaContrast and PLUE keep besides the model, per benchmark: the momentum copy (the model's
state_dict), the key queue, the refinement bank and PLUE's label memory, for the largest target domain.
Arithmetic from the shipped configs (model built on the CPU, no weights downloaded) and the list sizes; prints
a Markdown table (docs/methods.md)."""

from __future__ import annotations

from sfda.config import load_config
from sfda.models.network import build_model

MiB = 2**20
QUEUE = 16384
# benchmark: (an AdaContrast config, its largest target domain, that domain's size)
BENCHMARKS = {
    "office-home": ("office-home/adacontrast/Ar_Pr.yaml", "Product", 4439),
    "office31": ("office31/adacontrast/A_D.yaml", "amazon", 2817),
    "visda-c": ("visda-c/adacontrast/T_V.yaml", "validation", 55388),
    "domainnet-126": ("domainnet-126/adacontrast/R_C.yaml", "real", 69622),
    "digits-offline": ("digits/adacontrast/uci_mnist5k.yaml", "mnist5k", 5000),
}


def main() -> None:
    print(
        "| benchmark | backbone | largest target N | momentum copy | queue min(16384, N) | AdaContrast bank (N rows) "
        "| PLUE bank (min(16384, N) rows) | PLUE label memory (N x 5) | AdaContrast total | PLUE total |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    for bench, (name, domain, n) in BENCHMARKS.items():
        cfg = load_config(name, ["model.pretrained=false"])
        model = build_model(cfg)
        copy = sum(t.numel() * t.element_size() for t in model.state_dict().values())
        d, c = cfg.model.bottleneck_dim, cfg.data.num_classes
        q = min(QUEUE, n)
        queue = q * d * 4 + q * 8 * 2 + 8  # keys, labels, dataset indices, pointer
        ada_bank, plue_bank, memory = n * (d + c) * 4, q * (d + c) * 4, n * 5 * 8
        print(
            f"| {bench} | {cfg.model.backbone} | {n:,} ({domain}) | {copy / MiB:.1f} MiB | {queue / MiB:.1f} MiB | "
            f"{ada_bank / MiB:.1f} MiB | {plue_bank / MiB:.1f} MiB | {memory / MiB:.2f} MiB | "
            f"{(copy + queue + ada_bank) / MiB:.0f} MiB | {(copy + queue + plue_bank + memory) / MiB:.0f} MiB |"
        )


if __name__ == "__main__":
    main()
