"""The flow view of stored rows: the motion every guide frame of the timeline shows, composed from the
flows between source nodes (rows come from ``source_rows``: the cache, or extracted now)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Optional

import numpy as np

from ..preprocessors.timeline.flow_warp import from_planes
from ..preprocessors.timeline.motion_resample import Interval, interval_flow
from .recent_rows import RecentRows

if TYPE_CHECKING:  # pragma: no cover - types only
    from .extraction import ExtractionReport

#: Bytes of composed guide motions one :class:`SourceFlows` keeps between the scale and the colouring
#: pass (float32 planes, so both passes see the same numbers; 81 frames at 832×480 are about 260 MB).
COMPOSED_KEEP_BYTES = 320 << 20


@dataclass
class SourceFlows:
    """Mapped flows between source ``nodes`` and the interval of every guide frame of the timeline."""

    rows: np.ndarray
    nodes: tuple[int, ...]
    intervals: tuple[Interval, ...]
    shape: tuple[int, int]
    from_cache: bool
    key: Optional[str] = None
    stride: int = 1
    extraction: Optional["ExtractionReport"] = None
    read_seconds: float = 0.0
    #: Rows that are hard cuts between shots (never drawn as motion); empty with ``cuts="off"``.
    cuts: frozenset[int] = frozenset()
    #: Whether the marks were recomputed (an entry written before cuts were marked).
    cuts_recomputed: bool = False

    def __post_init__(self) -> None:
        self._converted = RecentRows(self.rows)
        self._planes = RecentRows(self.rows, planar=True)
        self._composed: dict[int, np.ndarray] = {}
        self._composed_bytes = 0

    def row(self, j: int) -> np.ndarray:
        """Flow from node ``j`` to ``j+1`` as float32 (never a view of the mapped file; treat as read-only).

        Neighbouring guide frames read the same rows, so the last few converted rows are kept."""
        return self._converted(j)

    def planes(self, j: int) -> np.ndarray:
        """The same flow as ``(2, H, W)`` float32 u and v planes (read-only; the layout warps take on
        OpenCV 5, see ``flow_warp``), the last few kept."""
        return self._planes(j)

    def guide_planes(self, k: int) -> np.ndarray:
        """The motion guide frame ``k`` of the timeline shows, as ``(2, H, W)`` float32 u and v planes
        (read-only; may be a stored row's planes): the layout the scale and colouring passes read.

        A motion composed from several rows is kept (up to :data:`COMPOSED_KEEP_BYTES`): the scale
        pass and the colouring pass read every guide frame once each, and composing (warping rows
        onto each other) is most of a re-target's work."""
        planes = self._composed.get(k)
        if planes is None:
            planes = interval_flow(self.row, self.nodes, self.intervals, k, self.shape, fresh=False,
                                   cuts=self.cuts, planes=self.planes, as_planes=True)
            if not self._planes.holds(planes) and self._composed_bytes + planes.nbytes <= COMPOSED_KEEP_BYTES:
                planes.flags.writeable = False  # shared by both passes
                self._composed[k] = planes
                self._composed_bytes += planes.nbytes
        return planes

    def guide_flow(self, k: int) -> np.ndarray:
        """The motion guide frame ``k`` of the timeline shows, (H, W, 2) float32 (a new array)."""
        return from_planes(self.guide_planes(k))
