"""A few recently converted rows of a memory-mapped float16 store, kept as float32.

Neighbouring guide frames read the same stored rows (flows between source nodes, depth maps), so
converting each once and keeping the last few saves most of the conversions without holding the
clip in memory.
"""
from __future__ import annotations

from collections import OrderedDict
from typing import Callable, Optional

import numpy as np

from ..preprocessors.cache.half_float import load_float32, load_planes

#: Converted rows kept (a few MB each at 832×480).
KEEP_ROWS = 3


class RecentRows:
    """``rows[j]`` as float32 (optionally reshaped, or as planes with ``planar=True``), the last ``keep``
    conversions kept (treat as read-only)."""

    def __init__(self, rows: np.ndarray, shape: Optional[tuple[int, ...]] = None, keep: int = KEEP_ROWS,
                 planar: bool = False) -> None:
        self._rows, self._shape, self._keep = rows, shape, keep
        self._convert: Callable[[np.ndarray], np.ndarray] = load_planes if planar else load_float32
        self._recent: "OrderedDict[int, np.ndarray]" = OrderedDict()

    def __call__(self, j: int) -> np.ndarray:
        value = self._recent.get(j)
        if value is None:
            value = self._convert(self._rows[j])  # never a view of the mapped file
            if self._shape is not None:
                value = value.reshape(self._shape)
            value.flags.writeable = False  # shared by the next few readers
            self._recent[j] = value
            while len(self._recent) > self._keep:
                self._recent.popitem(last=False)
        else:
            self._recent.move_to_end(j)
        return value

    def holds(self, value: np.ndarray) -> bool:
        """Whether ``value`` is one of the kept rows itself (not a copy)."""
        return any(value is row for row in self._recent.values())
