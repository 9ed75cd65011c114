"""Per-run logging: a text log (``log.txt``) and the console, plus TensorBoard events."""
from __future__ import annotations

import logging
import sys
import warnings
from pathlib import Path
from typing import Dict

log = logging.getLogger("sfda")


def setup_console(level: int = logging.INFO) -> None:
    if not any(getattr(h, "_sfda_console", False) for h in log.handlers):
        h = logging.StreamHandler(sys.stdout)
        h.setFormatter(logging.Formatter("%(message)s"))
        h._sfda_console = True
        log.addHandler(h)
    log.setLevel(level)
    log.propagate = False


class RunLog:
    def __init__(self, run_dir: Path, tensorboard: bool = True):
        self.run_dir = run_dir
        run_dir.mkdir(parents=True, exist_ok=True)
        setup_console()
        self.file_handler = logging.FileHandler(run_dir / "log.txt")
        self.file_handler.setFormatter(logging.Formatter("%(asctime)s %(message)s", "%Y-%m-%d %H:%M:%S"))
        log.addHandler(self.file_handler)
        self.tb = None
        if tensorboard:
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    from torch.utils.tensorboard import SummaryWriter
                self.tb = SummaryWriter(str(run_dir / "tb"))
            except Exception as e:  # tensorboard missing: keep going with the text log
                log.warning("TensorBoard disabled (%s: %s); install tensorboard to get event files", type(e).__name__, e)

    def info(self, msg: str, *args) -> None:
        log.info(msg, *args)

    def scalars(self, values: Dict[str, float], step: int, prefix: str = "") -> None:
        if self.tb is None:
            return
        for k, v in values.items():
            if isinstance(v, (int, float)) and v == v:
                self.tb.add_scalar(f"{prefix}{k}", v, step)

    def histogram(self, tag: str, values, step: int) -> None:
        if self.tb is not None:
            self.tb.add_histogram(tag, values, step)

    def close(self) -> None:
        if self.tb is not None:
            self.tb.flush()
            self.tb.close()
        log.removeHandler(self.file_handler)
        self.file_handler.close()
