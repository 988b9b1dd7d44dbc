"""Private temporary folders for one run's intermediate data, and sweeping those of killed runs.

A run without the cache (``--no-cache``, a blocked cache, a per-run segment cache) keeps its flows or
depth maps in a temporary folder: gigabytes for a long clip (2000 frames at 832×480 hold 3.2 GB of
float16 flow). Normal ends, errors and Ctrl-C remove it; a killed process (OOM killer, SIGKILL, a
closed terminal) cannot. So each folder is named ``sv-<kind>-<pid>-<random>`` and every new one
first removes the folders, beside it, of processes that are gone and that nothing changed for
``GRACE_S`` seconds (another container sharing the folder may own a pid that is dead here).
Folders without a process id in their name, links and other owners' folders are never touched.
Stdlib only.
"""
from __future__ import annotations

import contextlib
import os
import re
import shutil
import tempfile
import time
from pathlib import Path
from typing import Optional, Union

from .atomic_files import DEAD_WRITER_GRACE_S, last_change, pid_alive

PathLike = Union[str, "os.PathLike[str]"]

GRACE_S = DEAD_WRITER_GRACE_S  # a dead run's folder unchanged this long is swept
_SCRATCH_RE = re.compile(r"^sv-(?P<kind>[a-z]+(?:-[a-z]+)*)-(?P<pid>\d+)-[a-z0-9_]{8}$")

__all__ = ["GRACE_S", "make_scratch_dir", "scratch_owner_pid", "sweep_dead_scratch"]


def scratch_owner_pid(name: str) -> Optional[int]:
    """The process id in a scratch folder's name, or ``None`` for other names."""
    match = _SCRATCH_RE.match(name)
    return int(match.group("pid")) if match else None


def sweep_dead_scratch(parent: Optional[PathLike] = None, now: Optional[float] = None) -> list[Path]:
    """Remove scratch folders in ``parent`` (default: the system temp folder) left by processes that
    are gone; returns what was removed. Never raises for what it cannot read or remove."""
    folder = Path(parent if parent is not None else tempfile.gettempdir())
    now = time.time() if now is None else now
    removed: list[Path] = []
    uid = os.geteuid() if hasattr(os, "geteuid") else None
    try:
        items = list(os.scandir(folder))
    except OSError:
        return removed
    for item in items:
        pid = scratch_owner_pid(item.name)
        if pid is None or pid_alive(pid):
            continue
        with contextlib.suppress(OSError):
            if not item.is_dir(follow_symlinks=False):
                continue
            if uid is not None and item.stat(follow_symlinks=False).st_uid != uid:
                continue
            if now - last_change(item.path) <= GRACE_S:
                continue
            shutil.rmtree(item.path)
            removed.append(Path(item.path))
    return removed


def make_scratch_dir(kind: str, parent: Optional[PathLike] = None) -> Path:
    """Create a private scratch folder for this process (after sweeping dead runs' folders beside it).

    ``kind`` names what it holds (``flows``, ``depth``, ``run-cache``); the caller removes the folder.
    Raises ``OSError`` when the folder cannot be created.
    """
    if not re.fullmatch(r"[a-z]+(?:-[a-z]+)*", kind):
        raise ValueError(f"scratch kind must be lowercase words joined by '-', not {kind!r}")
    sweep_dead_scratch(parent)
    return Path(tempfile.mkdtemp(prefix=f"sv-{kind}-{os.getpid()}-", dir=parent))
