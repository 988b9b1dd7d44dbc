"""The depth view of stored rows: any source frame's inverse depth, from the maps of the source nodes
(rows come from ``source_rows``: the cache, or computed now). A frame between two nodes (stride > 1)
blends the two neighbouring maps, never across a hard cut.
"""
from __future__ import annotations

import bisect
from dataclasses import dataclass
from typing import TYPE_CHECKING, Optional

import numpy as np

from .recent_rows import RecentRows

if TYPE_CHECKING:  # pragma: no cover - types only
    from .extraction import ExtractionReport


@dataclass
class SourceDepth:
    """Mapped depth maps of source ``nodes``; :meth:`at` gives any source frame's map."""

    rows: np.ndarray            # (maps, H, W) float16 (or any shape holding H·W values per map)
    nodes: tuple[int, ...]
    shape: tuple[int, int]
    from_cache: bool
    key: Optional[str] = None
    extraction: Optional["ExtractionReport"] = None
    read_seconds: float = 0.0
    #: Node pairs ``j`` (node j → j+1) that are hard cuts; empty with ``cuts="off"``.
    cuts: frozenset[int] = frozenset()
    cuts_recomputed: bool = False

    def __post_init__(self) -> None:
        self._converted = RecentRows(self.rows, self.shape)

    def shot_starts(self) -> list[int]:
        """The source frames that start a new shot (sorted)."""
        return sorted(self.nodes[j + 1] for j in self.cuts if j + 1 < len(self.nodes))

    def node_map(self, j: int) -> np.ndarray:
        """Map of node ``j`` as float32 (H, W); the last few are kept (treat as read-only)."""
        return self._converted(j)

    def at(self, index: int) -> np.ndarray:
        """Inverse depth of source frame ``index``: its node's map, or the two neighbours blended."""
        j = bisect.bisect_right(self.nodes, index) - 1
        j = min(max(j, 0), len(self.nodes) - 1)
        if self.nodes[j] >= index or j == len(self.nodes) - 1:
            return self.node_map(j)
        t = (index - self.nodes[j]) / (self.nodes[j + 1] - self.nodes[j])
        if j in self.cuts:  # never blend two shots: the nearer node's map
            return self.node_map(j if t < 0.5 else j + 1)
        return (1.0 - t) * self.node_map(j) + t * self.node_map(j + 1)
