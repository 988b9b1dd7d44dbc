"""A few recently converted rows of a memory-mapped float16 store, kept as float32.

Neighbouring guide frames read the same stored rows (flows between source nodes, depth maps), so
converting each once and keeping the last few saves most of the conversions without holding the
clip in memory.

A row of a store mapped from its file is read from its file into a buffer rather than through
the mapping: touching a fresh 1.6 MB row of the mapping costs a page fault per 4 KiB page, about
2 ms per 832×480 flow row, ten times the read (``bench/retarget_parts.py``, ``rows``). The bytes,
and so the float32 values, are the same.
"""
from __future__ import annotations

import mmap
import os
from collections import OrderedDict
from typing import Optional

import numpy as np

from ..preprocessors.cache.half_float import load_float32

#: Converted rows kept (a few MB each at 832×480).
KEEP_ROWS = 3


class RecentRows:
    """``rows[j]`` as float32 (optionally reshaped), the last ``keep`` conversions kept (treat as read-only)."""

    def __init__(self, rows: np.ndarray, shape: Optional[tuple[int, ...]] = None, keep: int = KEEP_ROWS) -> None:
        self._rows, self._shape, self._keep = rows, shape, keep
        self._recent: "OrderedDict[int, np.ndarray]" = OrderedDict()

    def __call__(self, j: int) -> np.ndarray:
        value = self._recent.get(j)
        if value is None:
            value = load_float32(self._read(j))  # never a view of the mapped file
            if self._shape is not None:
                value = value.reshape(self._shape)
            value.flags.writeable = False  # shared by the next few readers
            self._recent[j] = value
            while len(self._recent) > self._keep:
                self._recent.popitem(last=False)
        else:
            self._recent.move_to_end(j)
        return value

    def _read(self, j: int) -> np.ndarray:
        """Row ``j``: read from the mapped file when the store is a whole mapping, else as mapped."""
        rows = self._rows
        if not (isinstance(rows, np.memmap) and isinstance(rows.base, mmap.mmap) and rows.flags.c_contiguous
                and isinstance(rows.filename, (str, os.PathLike)) and 0 <= j < len(rows)):
            return rows[j]
        row = np.empty(rows.shape[1:], dtype=rows.dtype)
        try:
            with open(rows.filename, "rb", buffering=0) as file:
                file.seek(rows.offset + j * row.nbytes)
                read = file.readinto(memoryview(row).cast("B"))
        except OSError:
            read = -1
        return row if read == row.nbytes else rows[j]

    def holds(self, value: np.ndarray) -> bool:
        """Whether ``value`` is one of the kept rows itself (not a copy)."""
        return any(value is row for row in self._recent.values())
