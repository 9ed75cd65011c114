"""Run folders: which resolved config a folder belongs to, one process at a time, no stale temporary files.

- **Identity.** A run folder belongs to one resolved config. Its identity is the resolved config without the
  keys that do not change what is computed (where outputs go, the device, logging, data loading workers,
  display names). A folder whose saved ``config.yaml`` has another identity is never reused silently: the
  run stops with one line listing the differing keys.
- **Folder names.** ``<output_root>/<name>/seed<seed>`` for a config as its files give it; a command line
  that changes the identity (``optim.lr=0.005``) runs in ``<name>+<hash>/seed<seed>``, where ``<hash>`` is
  a short hash of the identity, so that two settings never share a folder and a changed setting never
  reuses a run (or a source model) made with another.
- **Lock.** A run holds an exclusive OS lock (``flock``) on ``<run folder>/.lock`` while it writes; a second
  process on the same folder stops at once with one line naming the PID that holds it. The lock goes with
  the process, so a killed run never leaves a stale lock behind.
- **Temporary files.** Files are written to ``.<name>.tmp<pid>`` and renamed; the temporary files a killed
  run left are removed when the next run takes the lock (nobody else can be writing then).
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

from .. import parallel
from ..config import config_from_dict, load_config
from ..errors import SfdaError, os_cause
from ..paths import resolve_path

try:  # POSIX; elsewhere runs are not locked
    import fcntl
except ImportError:  # pragma: no cover
    fcntl = None  # type: ignore[assignment]

LOCK_FILE = ".lock"
METRICS_FILE = "metrics.json"
CONFIG_FILE = "config.yaml"

# Keys that do not change what a run computes: excluded from its identity.
NOT_IDENTITY: Tuple[Tuple[str, ...], ...] = (
    ("name",),
    ("label",),
    ("task",),
    ("benchmark",),
    ("output_root",),
    ("device",),
    ("log",),
    ("data", "root"),
    ("data", "num_workers"),
    ("data", "cache_images"),
    ("source", "config"),
)


class RunFolderError(SfdaError):
    """A run folder cannot be used (another config's results, another process, not writable)."""


def identity(cfg: Dict[str, Any]) -> Dict[str, Any]:
    """The resolved config without the keys that do not change the computation (and without private keys)."""
    out = {k: copy.deepcopy(v) for k, v in dict(cfg).items() if not str(k).startswith("_")}
    for path in NOT_IDENTITY:
        node: Any = out
        for part in path[:-1]:
            node = node.get(part) if isinstance(node, dict) else None
        if isinstance(node, dict):
            node.pop(path[-1], None)
    return plain(out)


def plain(value: Any) -> Any:
    """``value`` with every mapping a plain dict with string keys and every tuple a list (JSON's shapes)."""
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    return value


def short_hash(ident: Dict[str, Any]) -> str:
    text = json.dumps(ident, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:8]


def flatten(tree: Dict[str, Any], prefix: str = "") -> Dict[str, Any]:
    out: Dict[str, Any] = {}
    for k, v in tree.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict) and v:
            out.update(flatten(v, key + "."))
        else:
            out[key] = v
    return out


def differences(old: Dict[str, Any], new: Dict[str, Any]) -> List[Tuple[str, Any, Any]]:
    """(dotted key, old value, new value) for every key whose value differs (missing = None)."""
    a, b = flatten(old), flatten(new)
    return [(k, a.get(k), b.get(k)) for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)]


def describe_differences(diffs: List[Tuple[str, Any, Any]], limit: int = 4) -> str:
    shown = ", ".join(f"{k}: {json.dumps(o, default=str)} -> {json.dumps(n, default=str)}" for k, o, n in diffs[:limit])
    more = f" and {len(diffs) - limit} more" if len(diffs) > limit else ""
    return shown + more


def make_folder(folder: Path) -> None:
    """Create a run folder (and its parents), or one line naming the path and the cause."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise RunFolderError(
            f"cannot create the run folder '{folder}': a file is in the way (set output_root= to another folder)"
        ) from None
    except OSError as e:
        raise RunFolderError(
            f"cannot create the run folder '{folder}': {os_cause(e)} (set output_root= to a writable folder)"
        ) from None


def write_text_atomic(text: str, path: Path) -> None:
    """Write a text file through a temporary file and a rename; on an OS error (disk full, read-only file
    system) the temporary file is removed and the error is one line naming the path and the cause."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        tmp.write_text(text)
        os.replace(tmp, path)
    except OSError as e:
        tmp.unlink(missing_ok=True)
        raise RunFolderError(f"cannot write '{path}': {os_cause(e)}") from None


def read_saved_config(folder: Path) -> Optional[Dict[str, Any]]:
    """The resolved config a run folder was made with (its ``config.yaml``), or None."""
    import yaml

    f = Path(folder) / "config.yaml"
    if not f.is_file():
        return None
    try:
        data = yaml.safe_load(f.read_text())
    except (OSError, yaml.YAMLError):
        raise RunFolderError(f"cannot read '{f}': the run folder is damaged; delete it or add --force") from None
    return data if isinstance(data, dict) else None


def remove_stale_temporaries(folder: Path) -> List[str]:
    """Remove the ``.<name>.tmp<pid>`` files an interrupted run left (call while holding the lock; on several
    processes rank 0 does it, the lock's holder)."""
    removed: List[str] = []
    if not parallel.is_main():
        return removed
    for f in folder.glob(".*.tmp*"):
        if f.is_file():
            try:
                f.unlink()
                removed.append(f.name)
            except OSError:
                pass
    return removed


class RunLock:
    """Exclusive lock on a run folder for the lifetime of one process's run (``with RunLock(folder):``)."""

    def __init__(self, folder: Path):
        self.folder = Path(folder)
        self.path = self.folder / LOCK_FILE
        self._fd: Optional[int] = None

    def __enter__(self) -> RunLock:
        self.acquire()
        return self

    def __exit__(self, *exc) -> None:
        self.release()

    def acquire(self) -> None:
        if fcntl is None or not parallel.is_main():  # several processes (torchrun): rank 0 holds the lock
            return
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as e:
            raise RunFolderError(f"cannot write in the run folder '{self.folder}': {os_cause(e)}") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            holder = os.read(fd, 32).decode(errors="replace").strip() or "?"
            os.close(fd)
            raise RunFolderError(
                f"the run folder '{self.folder}' is in use by process {holder}; wait for it to "
                "finish (or stop it), or give this run another name= or output_root="
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode())
        self._fd = fd

    def release(self) -> None:
        if self._fd is None:
            return
        try:
            os.ftruncate(self._fd, 0)
            fcntl.flock(self._fd, fcntl.LOCK_UN)
        finally:
            os.close(self._fd)
            self._fd = None


# -- the run folder of a config, and what a finished run leaves in it ------------------------------------
def run_name(cfg) -> str:
    """The run's folder name under ``output_root``: the config's ``name``, plus ``+<hash>`` when the command
    line (or a non-default source model) changed what the config's files alone would compute."""
    files = cfg.get("_files")
    if not files:
        return cfg.name
    ident = identity(cfg)
    base = identity(load_config(files))
    for tree in (ident, base):
        tree.pop("seed", None)  # the seed has its own folder level
    source_dir = cfg.get("_source_dir")
    if source_dir and "+" in Path(source_dir).parent.name:
        ident["source_run"] = Path(source_dir).parent.name
    return cfg.name if ident == base else f"{cfg.name}+{short_hash(ident)}"


def run_dir(cfg) -> Path:
    return resolve_path(cfg.output_root) / run_name(cfg) / f"seed{cfg.seed}"


def read_metrics(folder: Path) -> Optional[dict]:
    f = Path(folder) / METRICS_FILE
    if not f.is_file():
        return None
    try:
        return json.loads(f.read_text())
    except json.JSONDecodeError:
        return None


def write_json(obj: dict, path: Path) -> None:
    if not parallel.is_main():  # several processes: rank 0 writes
        return
    write_text_atomic(json.dumps(obj, indent=1), path)


def upgrade(saved: Dict[str, Any]) -> Optional[Dict[str, Any]]:
    """The identity of a saved config as this sfda resolves it: keys added since the run was made take their
    defaults (a new key's default keeps the old behaviour), so an upgrade alone does not make a finished run
    "another config". None when the saved config no longer resolves (a key renamed or removed): the strict
    comparison then stands."""
    try:
        return identity(config_from_dict({k: v for k, v in saved.items() if not str(k).startswith("_")}))
    except SfdaError:
        return None


def check_folder_config(cfg, out: Path, force: bool) -> None:
    """Refuse a folder that holds a run of another config (unless ``force``: it is then replaced)."""
    saved = read_saved_config(out)
    if saved is None or force:
        return
    diffs = differences(identity(saved), identity(cfg))
    if any(old is None for _, old, _ in diffs):  # keys the run's sfda did not have yet (or set to null)
        upgraded = upgrade(saved)
        if upgraded is not None:
            diffs = differences(upgraded, identity(cfg))
    if diffs:
        raise RunFolderError(
            f"the run folder {out} holds a run of another config ({describe_differences(diffs)}); "
            "add --force to replace it, or set name= to keep both"
        )
