"""Where the project's shipped files live (configs/, data_lists/) and how user paths are resolved."""

from __future__ import annotations

import os
from pathlib import Path

PROJECT_ROOT = Path(os.environ.get("SFDA_HOME", Path(__file__).resolve().parent.parent))
CONFIGS_DIR = PROJECT_ROOT / "configs"
LISTS_DIR = PROJECT_ROOT / "data_lists"


def resolve_path(p: str | os.PathLike) -> Path:
    """Absolute paths as given; relative ones against the working directory if they exist there,
    else against the project root (so ``data_lists/office-home`` works from anywhere)."""
    q = Path(os.path.expandvars(os.path.expanduser(str(p))))
    if q.is_absolute() or q.exists():
        return q
    alt = PROJECT_ROOT / q
    return alt if alt.exists() else q
