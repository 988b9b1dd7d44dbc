"""Adaptive batch size: remember how each run's batches went, per (backend and model, device, size
bucket, precision), and start the next run from what worked.

One entry per key (JSON in the user data folder, published atomically, at most ``max_entries`` —
the least recently used go first)::

    {"runs": 3, "final": 6, "bytes_per_item": 412000000, "ooms": 1, "troubled": false,
     "headroom": true, "used": 1763900000.0}

``final`` is the batch size the last run ended at (after any OOM back-off or pressure shrink),
``troubled`` whether that run had to back off or shrink, ``headroom`` whether its memory stayed below
the pressure policy's first tier, ``bytes_per_item`` the largest peak memory per frame pair seen.

The recommendation (:meth:`BatchSizeHistory.recommend`), never above ``cap``:

* with a known ``bytes_per_item`` and free memory: ``free × safety / bytes_per_item``;
* after a troubled run, or one without headroom: at most that run's ``final`` size;
* after a clean run with headroom: at most twice its ``final`` size (grow step by step).
"""
from __future__ import annotations

import json
import logging
import math
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Union

from ..atomic_files import write_text_atomic
from ..paths import user_data_dir

logger = logging.getLogger(__name__)

SAFETY = 0.85
BUCKET = 64
FILE_NAME = "batch_history.json"
MAX_ENTRIES = 256


@dataclass(frozen=True)
class BatchOutcome:
    """How one run's batches went."""

    start: int
    final: int
    ooms: int = 0
    shrinks: int = 0
    bytes_per_item: int = 0
    headroom: bool = True

    @property
    def troubled(self) -> bool:
        return self.ooms > 0 or self.shrinks > 0


@dataclass(frozen=True)
class Recommendation:
    """A batch size and the sentence that explains it."""

    size: int
    reason: str


class BatchSizeHistory:
    """The batch-size history file (thread-safe; a file that cannot be read or written only costs a slower start)."""

    def __init__(self, path: Optional[Union[str, Path]] = None, safety: float = SAFETY,
                 max_entries: int = MAX_ENTRIES) -> None:
        self.path = Path(path) if path is not None else user_data_dir() / FILE_NAME
        self.safety = safety
        self.max_entries = max(1, max_entries)
        self._lock = threading.Lock()
        self._data: dict[str, dict] = self._load()

    @staticmethod
    def key(backend: str, device_name: str, height: int, width: int, precision: str) -> str:
        """The history key; the size is bucketed to multiples of 64 (rounded up)."""
        bucket_h = int(math.ceil(height / BUCKET) * BUCKET)
        bucket_w = int(math.ceil(width / BUCKET) * BUCKET)
        return f"{backend}|{device_name}|{bucket_w}x{bucket_h}|{precision}"

    def __len__(self) -> int:
        return len(self._data)

    def _load(self) -> dict[str, dict]:
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as error:
            logger.warning("Ignoring unreadable batch-size history %s (%s)", self.path, error)
            return {}
        if not isinstance(data, dict):
            return {}
        return {str(key): entry for key, value in data.items() if (entry := _clean(value)) is not None}

    def get(self, key: str) -> Optional[dict]:
        with self._lock:
            entry = self._data.get(key)
            return dict(entry) if entry is not None else None

    def recommend(self, key: str, free_bytes: int, cap: int) -> Optional[Recommendation]:
        """The batch size to start from (at most ``cap``), or None when the key has no history."""
        entry = self.get(key)
        if entry is None:
            return None
        cap = max(1, int(cap))
        size, why = cap, f"nothing limits it below the maximum of {cap}"
        if entry["bytes_per_item"] and free_bytes > 0:
            fits = max(1, int(free_bytes * self.safety // entry["bytes_per_item"]))
            if fits < size:
                size, why = fits, f"{free_bytes / 2**30:.1f} GiB free at {entry['bytes_per_item'] / 2**20:.0f} MiB a pair"
        if entry["troubled"] or not entry["headroom"]:
            if entry["final"] < size:
                cause = "backed off" if entry["troubled"] else "ran close to the memory limit"
                size, why = entry["final"], f"the last run {cause} and ended at {entry['final']}"
        elif 2 * entry["final"] < size:
            size, why = 2 * entry["final"], f"growing from the last clean run's {entry['final']}"
        runs = entry["runs"]
        return Recommendation(max(1, size), f"learned from {runs} earlier run{'s' if runs != 1 else ''}: {why}")

    def record_run(self, key: str, outcome: BatchOutcome) -> None:
        """Remember one run's outcome and publish the file."""
        if outcome.final < 1:
            return
        with self._lock:
            entry = self._data.pop(key, None) or {"runs": 0, "bytes_per_item": 0, "ooms": 0}
            self._data[key] = {"runs": entry["runs"] + 1, "final": int(outcome.final),
                               "bytes_per_item": max(entry["bytes_per_item"], int(outcome.bytes_per_item)),
                               "ooms": entry["ooms"] + int(outcome.ooms), "troubled": outcome.troubled,
                               "headroom": bool(outcome.headroom), "used": time.time()}
            while len(self._data) > self.max_entries:  # least recently used first
                oldest = min(self._data, key=lambda k: self._data[k]["used"])
                del self._data[oldest]
            try:  # under the lock, so that the last record is the one published
                write_text_atomic(self.path, json.dumps(self._data, indent=1, sort_keys=True))
            except OSError as error:
                logger.warning("Could not save the batch-size history to %s (%s)", self.path, error)


def _clean(value: object) -> Optional[dict]:
    """A well-formed entry, or None."""
    if not isinstance(value, dict):
        return None
    ints = ("runs", "final", "bytes_per_item", "ooms")
    if not all(isinstance(value.get(name), int) and not isinstance(value.get(name), bool) for name in ints):
        return None
    if value["runs"] < 1 or value["final"] < 1 or value["bytes_per_item"] < 0 or value["ooms"] < 0:
        return None
    used = value.get("used")
    return {"runs": value["runs"], "final": value["final"], "bytes_per_item": value["bytes_per_item"],
            "ooms": value["ooms"], "troubled": bool(value.get("troubled", False)),
            "headroom": bool(value.get("headroom", True)),
            "used": float(used) if isinstance(used, (int, float)) and not isinstance(used, bool) else 0.0}


_DEFAULT: dict[Path, BatchSizeHistory] = {}
_DEFAULT_LOCK = threading.Lock()


def default_history() -> BatchSizeHistory:
    """The process-wide history in the user data folder (one instance per folder), shared by every run
    of the process so that the inputs of a batch learn from each other."""
    path = user_data_dir() / FILE_NAME
    with _DEFAULT_LOCK:
        if path not in _DEFAULT:
            _DEFAULT[path] = BatchSizeHistory(path)
        return _DEFAULT[path]
