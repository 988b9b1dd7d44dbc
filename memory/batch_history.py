"""Adaptive batch size: remember, per (backend, device, resolution bucket, dtype), the largest batch that
succeeded and the peak bytes per item, and start the next run from what free memory can hold."""
from __future__ import annotations

import json
import logging
import math
import os
import tempfile
import threading
from pathlib import Path
from typing import Optional, Union

from ..paths import user_data_dir

logger = logging.getLogger(__name__)

SAFETY = 0.85
BUCKET = 64
FILE_NAME = "batch_history.json"


class BatchSizeHistory:
    """A small JSON file of ``{key: {"batch": int, "bytes_per_item": int}}`` written atomically."""

    def __init__(self, path: Optional[Union[str, Path]] = None, safety: float = SAFETY) -> None:
        self.path = Path(path) if path is not None else user_data_dir() / FILE_NAME
        self.safety = safety
        self._lock = threading.Lock()
        self._data: dict[str, dict] = self._load()

    @staticmethod
    def key(backend: str, device_name: str, height: int, width: int, dtype: str) -> str:
        """The history key; the resolution is bucketed to multiples of 64 (rounded up)."""
        bucket_h = int(math.ceil(height / BUCKET) * BUCKET)
        bucket_w = int(math.ceil(width / BUCKET) * BUCKET)
        return f"{backend}|{device_name}|{bucket_w}x{bucket_h}|{dtype}"

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
        clean = {}
        for key, value in data.items():
            if isinstance(value, dict) and isinstance(value.get("batch"), int) \
                    and isinstance(value.get("bytes_per_item"), int) and value["batch"] > 0 \
                    and value["bytes_per_item"] > 0:
                clean[str(key)] = {"batch": value["batch"], "bytes_per_item": value["bytes_per_item"]}
        return clean

    def get(self, key: str) -> Optional[dict]:
        return self._data.get(key)

    def suggest(self, key: str, free_bytes: int, default: int) -> int:
        """``free × safety / bytes per item`` when the key is known, else ``default``; at least 1."""
        entry = self._data.get(key)
        if entry is None:
            return max(1, int(default))
        return max(1, int(free_bytes * self.safety // entry["bytes_per_item"]))

    def record(self, key: str, batch: int, bytes_per_item: int) -> None:
        """Remember a successful run (largest batch; the larger, safer bytes-per-item figure)."""
        if batch < 1 or bytes_per_item < 1:
            return
        with self._lock:
            entry = self._data.get(key, {"batch": 0, "bytes_per_item": 0})
            self._data[key] = {"batch": max(entry["batch"], int(batch)),
                               "bytes_per_item": max(entry["bytes_per_item"], int(bytes_per_item))}
            self._save()

    def _save(self) -> None:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=".batch_history.", suffix=".partial", dir=self.path.parent)
            try:
                with os.fdopen(fd, "w", encoding="utf-8") as handle:
                    json.dump(self._data, handle, indent=1, sort_keys=True)
                os.replace(tmp, self.path)
            except BaseException:
                Path(tmp).unlink(missing_ok=True)
                raise
        except OSError as error:  # a history that cannot be saved only costs a slower start next time
            logger.warning("Could not save the batch-size history to %s (%s)", self.path, error)
