"""Per-run logging: a text log (``log.txt``) and the console, plus TensorBoard events. On several processes
only rank 0 logs (the other ranks' logger is disabled and they open no file)."""

from __future__ import annotations

import logging
import sys
import warnings
from pathlib import Path
from typing import Any, Dict, Optional

from .. import parallel

log = logging.getLogger("sfda")


class _Console(logging.StreamHandler):
    """Writes to the ``sys.stdout`` of the moment (not the one at set-up), so that a redirected or captured
    stdout (``contextlib.redirect_stdout``, pytest's ``capsys``) gets the run's lines."""

    @property
    def stream(self) -> Any:
        return sys.stdout

    @stream.setter
    def stream(self, value: Any) -> None:
        pass


def setup_console(level: int = logging.INFO) -> None:
    if not any(getattr(h, "_sfda_console", False) for h in log.handlers):
        h = _Console()
        h.setFormatter(logging.Formatter("%(message)s"))
        h._sfda_console = True  # type: ignore[attr-defined]
        log.addHandler(h)
    log.setLevel(level)
    log.propagate = False


TENSORBOARD_MISSING = (
    "TensorBoard off: the tensorboard package is not installed (pip install tensorboard, or "
    'pip install -e ".[tensorboard]"; log.tensorboard=false hides this notice)'
)


def _summary_writer(folder: Path) -> Optional[Any]:
    """A TensorBoard ``SummaryWriter`` writing into ``folder``, or None (with a one-line notice) when TensorBoard
    is not installed or cannot write: the run goes on with the text log."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        log.info(TENSORBOARD_MISSING)
        return None
    try:
        return SummaryWriter(str(folder))
    except Exception as e:  # an unwritable folder, a broken installation: keep going with the text log
        log.warning("TensorBoard off (%s: %s)", type(e).__name__, " ".join(str(e).split()))
        return None


class RunLog:
    def __init__(self, run_dir: Path, tensorboard: bool = True):
        self.run_dir = run_dir
        self.file_handler: Optional[logging.FileHandler] = None
        self.tb: Optional[Any] = None
        if not parallel.is_main():
            return
        run_dir.mkdir(parents=True, exist_ok=True)
        setup_console()
        self.file_handler = logging.FileHandler(run_dir / "log.txt")
        self.file_handler.setFormatter(logging.Formatter("%(asctime)s %(message)s", "%Y-%m-%d %H:%M:%S"))
        log.addHandler(self.file_handler)
        self.tb = _summary_writer(run_dir / "tb") if tensorboard else None

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
        if self.file_handler is not None:
            log.removeHandler(self.file_handler)
            self.file_handler.close()
