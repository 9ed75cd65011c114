"""``data.skip_bad_images`` for images that pass the quick check when a list is read but fail to decode
during the run (a truncated JPEG, for instance).

Such an image cannot be dropped in the middle of a stage: per-sample state (feature banks, pseudo-labels,
NS scores) is indexed by the dataset's rows. So the stage decodes every image of its lists once, drops each
file that fails, records it in the run folder's ``skipped_images.txt`` and starts again from epoch 0: the
result equals a run in which those files were missing (dropped when the lists are read). A resumed run
reads the file first, so its rows match the saved state. With several processes the error stops the run
instead (one line: replace or remove the file), since the ranks cannot agree on a restart.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable, TypeVar

from .. import parallel
from ..data import dataset
from .rundir import write_text_atomic
from .runlog import RunLog

SKIPPED_FILE = "skipped_images.txt"
T = TypeVar("T")


def _recorded(out: Path) -> list:
    path = out / SKIPPED_FILE
    return [line for line in path.read_text().splitlines() if line.strip()] if path.is_file() else []


def run_dropping_undecodable(run: Callable[[], T], out: Path, runlog: RunLog, skip_bad: bool, state_file: str) -> T:
    """Call ``run``; with ``skip_bad``, an :class:`~sfda.data.dataset.UndecodableImage` drops every file
    that cannot be decoded and calls ``run`` again from scratch."""
    if skip_bad:
        dataset.exclude(_recorded(out))
    while True:
        try:
            return run()
        except dataset.UndecodableImage:
            if not skip_bad or parallel.world_size() > 1:
                raise
            found = dataset.scan_undecodable()
            if not found:
                raise
            dataset.clear_cache()
            write_text_atomic("\n".join(_recorded(out) + [p for _, _, p in found]) + "\n", out / SKIPPED_FILE)
            (out / state_file).unlink(missing_ok=True)
            first_list, first_line, first_path = found[0]
            runlog.info(
                f"skipping {len(found)} image(s) that cannot be decoded (first: {first_list}:{first_line}, "
                f"{first_path}); starting this stage again from epoch 0 without them (listed in {out / SKIPPED_FILE})"
            )
