"""A clip-wide motion scale that a short burst cannot wash out.

The colour scale of a flow guide is a high percentile (``--percentile``, 99 by default) of every
flow magnitude of the clip (``flow_viz.clip_scale``). A whip pan over a few frames moves 20–50×
faster than the rest; with 1 % of the pixels it already owns the 99th percentile, and every other
frame is drawn nearly white.

So each frame's own percentile (the same ``--percentile``) is measured too, and frames whose own
value is more than :data:`BURST_FACTOR` times that of the *reference frame* — the frame at the
:data:`BURST_REFERENCE` percentile of those per-frame values — are *bursts*: their magnitudes are
left out of the clip's histogram. Bursts are drawn with the others' scale, i.e. at the rim of the
wheel (full colour, right direction). At most 100 − :data:`BURST_REFERENCE` = 10 % of the frames
can be bursts; a clip whose reference frame barely moves (below ``floor``: a still shot with one
short move) has none, since there is no motion for a burst to wash out. A clip without bursts gets
exactly the plain clip-wide percentile, so ``--percentile``, ``--max-motion`` and ``--motion-strength``
keep their meaning.
"""
from __future__ import annotations

from typing import Optional

import numpy as np

from .flow_viz import MagnitudeHistogram

__all__ = ["ClipMagnitudes", "BURST_FACTOR", "BURST_REFERENCE"]

#: A frame moving more than this many times the reference frame is a burst.
BURST_FACTOR = 3.0
#: The reference frame: this percentile of the frames' own percentiles.
BURST_REFERENCE = 90.0


class ClipMagnitudes:
    """Flow magnitudes of a clip, frame by frame: the clip histogram with bursts left out."""

    def __init__(self, percentile: float, floor: float = 0.0) -> None:
        self.percentile, self.floor = float(percentile), float(floor)
        self._total = MagnitudeHistogram()
        self._values: list[float] = []
        self._frames: list[tuple[np.ndarray, np.ndarray, int, float]] = []  # nonzero slots, counts, count, max
        self.bursts: list[int] = []

    def add_planes(self, planes: np.ndarray) -> None:
        """One guide frame's flow as ``(2, H, W)`` u and v planes, in order (an all-zero flow, a frame
        on a cut alone, is not counted)."""
        if not np.any(planes):
            return
        histogram = MagnitudeHistogram(self._total.lo, self._total.hi, self._total.bins)
        histogram.add_components(planes[0], planes[1])
        self._values.append(histogram.percentile(self.percentile))
        slots = np.flatnonzero(histogram.counts)
        self._frames.append((slots, histogram.counts[slots], histogram.count, histogram.max))
        self._total.merge(histogram)

    def histogram(self) -> MagnitudeHistogram:
        """The clip's histogram without its bursts (:attr:`bursts`: their positions among the frames added)."""
        self.bursts = []
        if len(self._values) < 2:
            return self._total
        values = np.asarray(self._values)
        reference = float(np.percentile(values, BURST_REFERENCE))
        if reference <= self.floor:
            return self._total
        self.bursts = [int(i) for i in np.flatnonzero(values > BURST_FACTOR * reference)]
        if not self.bursts:
            return self._total
        kept = MagnitudeHistogram(self._total.lo, self._total.hi, self._total.bins)
        kept.merge(self._total)
        burst_set = set(self.bursts)
        for i in self.bursts:
            slots, counts, count, _ = self._frames[i]
            kept.counts[slots] -= counts
            kept.count -= count
        kept.max = max(frame_max for i, (_, _, _, frame_max) in enumerate(self._frames) if i not in burst_set)
        return kept


def burst_note(count: int, frames: int) -> Optional[str]:
    """A line for the result when bursts were left out of the scale."""
    if not count:
        return None
    return (f"{count} of {frames} guide frames move over {BURST_FACTOR:g}x faster than the rest (a whip pan or "
            "flash): left out of the colour scale, drawn at full colour.")
