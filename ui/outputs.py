"""The tab's own output folder (guides, memory charts, the sample video), bounded.

Hosted it lies inside Wan2GP's output folder (which the host's web server may serve, so a guide path
put into the generator's settings is playable there); standalone it is ``outputs/`` in the user data
folder (:func:`paths.user_data_dir`). It never grows without bound: at start and after every run the
oldest files beyond ``keep`` and files older than ``max_age_s`` go, and so do partial files whose
writer died. Only files directly in the folder are touched, and never through a link.
"""
from __future__ import annotations

import logging
import os
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

from ..atomic_files import is_partial_name, sweep_stale_partials
from ..paths import user_data_dir
from . import host_bridge

logger = logging.getLogger(__name__)

KEEP_FILES = 60
MAX_AGE_S = 7 * 24 * 3600.0
SAMPLE_NAME = "sample_structure_v2.mp4"  # v2: 130 frames, camera pan + zoom, moving objects


@dataclass(frozen=True)
class OutputFolder:
    """One output folder and its bounds."""

    root: Path
    keep: int = KEEP_FILES
    max_age_s: float = MAX_AGE_S

    def ensure(self) -> Path:
        self.root.mkdir(parents=True, exist_ok=True)
        return self.root

    def new_path(self, stem: str, suffix: str) -> Path:
        """A fresh file name in the folder (the folder is created)."""
        stem = "".join(ch if ch.isalnum() or ch in "-_" else "_" for ch in stem)[:40] or "guide"
        return self.ensure() / f"{stem}_{time.strftime('%Y%m%d_%H%M%S')}_{uuid.uuid4().hex[:6]}{suffix}"

    def prune(self, now: Optional[float] = None) -> list[Path]:
        """Remove stale partial files, files older than ``max_age_s`` and the oldest beyond ``keep``."""
        if not self.root.is_dir():
            return []
        removed = list(sweep_stale_partials(self.root))
        now = time.time() if now is None else now
        files = []
        with os.scandir(self.root) as entries:
            for entry in entries:
                if entry.name == SAMPLE_NAME or is_partial_name(entry.name) or not entry.is_file(follow_symlinks=False):
                    continue
                files.append((entry.stat(follow_symlinks=False).st_mtime, Path(entry.path)))
        files.sort(reverse=True)  # newest first
        for index, (mtime, path) in enumerate(files):
            if index >= self.keep or now - mtime > self.max_age_s:
                try:
                    path.unlink()
                    removed.append(path)
                except OSError as error:  # another process removed it, or a read-only folder
                    logger.debug("Could not remove %s: %s", path, error)
        return removed


def output_folder(plugin: Any = None) -> OutputFolder:
    """The tab's output folder: inside the host's output folder when hosted, else the user data folder."""
    hosted = host_bridge.host_output_dir(plugin) if plugin is not None else None
    return OutputFolder(hosted or user_data_dir() / "outputs")
