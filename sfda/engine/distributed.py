"""The process group of a ``torchrun`` launch: set-up from torchrun's environment, teardown, the device of each
rank, silencing every rank but rank 0, and reporting a user error once (see docs/distributed.md).

``torchrun --nproc_per_node N -m sfda run -c CONFIG`` starts N processes with ``WORLD_SIZE``, ``RANK``,
``LOCAL_RANK``, ``MASTER_ADDR``/``MASTER_PORT`` in their environment; :func:`session` joins them into one
process group (gloo for CPU tensors, NCCL for CUDA tensors when CUDA is there: each rank uses the GPU of its
local rank). Without ``WORLD_SIZE`` (a plain ``sfda`` command) it does nothing and nothing changes.

Collectives time out after ``SFDA_DIST_TIMEOUT`` seconds (default 600): a rank stuck in a collective fails
instead of hanging; a rank that stops with an error ends the others through torchrun (it stops every worker
when one fails).
"""

from __future__ import annotations

import contextlib
import datetime
import logging
import os
import time
import warnings
from typing import Iterator, Optional

import torch
import torch.distributed as dist

from .. import parallel
from ..errors import ConfigError

DEFAULT_TIMEOUT_S = 600
ERROR_KEY = "sfda/error/"
ERROR_WAIT_S = 5.0  # how long a rank other than 0 waits to see whether rank 0 reports the same error
PEER_GONE = (
    "Connection closed by peer",
    "Connection reset by peer",
    "Broken pipe",
    "remote worker crashing",
    "Socket closed",
    "Connection refused",
)
TIMED_OUT = ("Timed out", "timed out", "Timeout", "timeout")


def launched() -> bool:
    """Whether this process was started by torchrun (or another launcher that sets WORLD_SIZE)."""
    return "WORLD_SIZE" in os.environ


def env_rank() -> int:
    """This process's rank from the launcher's environment (0 without one), before the group exists."""
    return int(os.environ.get("RANK", "0") or 0)


def timeout_s() -> float:
    value = os.environ.get("SFDA_DIST_TIMEOUT", "")
    try:
        seconds = float(value) if value else DEFAULT_TIMEOUT_S
    except ValueError:
        raise ConfigError(f"SFDA_DIST_TIMEOUT must be a number of seconds, got '{value}'") from None
    if seconds <= 0:
        raise ConfigError(f"SFDA_DIST_TIMEOUT must be positive, got '{value}'")
    return seconds


def backend() -> str:
    """gloo for CPU tensors, plus NCCL for CUDA tensors where CUDA and NCCL are available."""
    if torch.cuda.is_available() and dist.is_nccl_available():
        return "cpu:gloo,cuda:nccl"
    return "gloo"


def init_from_env() -> bool:
    """Join torchrun's process group (once); False without a launcher. Ranks other than 0 go quiet."""
    if not launched() or parallel.active():
        return parallel.active()
    if not dist.is_available():
        raise ConfigError("this PyTorch build has no torch.distributed: run sfda without torchrun")
    dist.init_process_group(backend=backend(), timeout=datetime.timedelta(seconds=timeout_s()))
    if not parallel.is_main():
        quiet()
    return True


def quiet() -> None:
    """Silence this process: no log lines, no warnings (rank 0 speaks for the run)."""
    logging.getLogger("sfda").disabled = True
    warnings.filterwarnings("ignore")


def shutdown() -> None:
    """Leave the process group after a run that ended normally (every rank gets here)."""
    if parallel.active():
        parallel.barrier()
        dist.destroy_process_group()


@contextlib.contextmanager
def session() -> Iterator[None]:
    """A command's distributed lifetime: join at the start, leave at a normal end. On an error the group is
    left as is: the process exits and torchrun stops the other ranks."""
    init_from_env()
    yield
    shutdown()


def place(device: torch.device) -> torch.device:
    """The device of this rank: CUDA device ``LOCAL_RANK`` when the run is on CUDA, else ``device``."""
    if not parallel.active() or device.type != "cuda":
        return device
    local = int(os.environ.get("LOCAL_RANK", "0") or 0)
    count = torch.cuda.device_count()
    if local >= count:
        raise ConfigError(
            f"local rank {local} has no GPU: this node has {count}; start at most {count} "
            "processes per node (torchrun --nproc_per_node)"
        )
    torch.cuda.set_device(local)
    return torch.device("cuda", local)


def should_report(message: str) -> bool:
    """Whether this rank prints the one-line error ``message``: rank 0 always; another rank only when rank 0
    has not reported the same message within a few seconds (an error of this rank alone). The ranks compare
    notes through the process group's store; without a group every process reports."""
    if not parallel.active() or parallel.world_size() <= 1:
        return True
    try:
        store = dist.distributed_c10d._get_default_store()
        store.set(f"{ERROR_KEY}{parallel.rank()}", message)
        if parallel.is_main():
            return True
        deadline = time.monotonic() + ERROR_WAIT_S
        while time.monotonic() < deadline:
            if store.check([f"{ERROR_KEY}0"]):
                return store.get(f"{ERROR_KEY}0").decode(errors="replace") != message
            time.sleep(0.05)
    except Exception:  # the store is gone (rank 0 has exited): rank 0 has spoken
        return False
    return True


def collective_failure(error: BaseException) -> Optional[str]:
    """For an error raised by a collective of a multi-process run: '' when another rank has gone (it reported
    its own error; this rank leaves quietly), a one-line message when the collective timed out; None for any
    other error (not a collective's)."""
    if not parallel.active() or parallel.world_size() <= 1 or not isinstance(error, RuntimeError):
        return None
    text = str(error)
    if any(s in text for s in PEER_GONE):
        return ""
    if any(s in text for s in TIMED_OUT) and ("gloo" in text or "NCCL" in text or isinstance(error, dist.DistError)):
        return (
            f"a collective timed out after {timeout_s():.0f} s: another process is stuck or much slower "
            "(raise SFDA_DIST_TIMEOUT if some step legitimately takes longer)"
        )
    return "" if isinstance(error, dist.DistError) else None


def error_prefix() -> str:
    """'' on rank 0 and without torchrun; '(rank R) ' on the others."""
    r = parallel.rank() if parallel.active() else env_rank()
    return f"(rank {r}) " if r else ""
