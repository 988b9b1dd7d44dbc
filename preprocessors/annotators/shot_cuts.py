"""Hard cuts between consecutive frames of a source: cheap evidence, then a decision over the clip.

A hard cut puts two unrelated images next to each other; optical flow between them is noise (tens
of pixels) that must never be drawn as motion nor set the clip's colour scale. The evidence is
taken on the frames the annotator already sees (the fitted source nodes, shrunk to a thumbnail of
:data:`THUMB_WIDTH` pixels), one pair at a time, so it costs about a millisecond per frame:

* ``histogram``: Bhattacharyya distance of 8×8×8 RGB histograms (0 same colours … 1 disjoint).
  A pan keeps most colours; a cut to another shot changes them.
* ``residual``: what a flow cannot explain — the mean absolute difference between the first
  thumbnail and the second warped back by a DIS flow between them, over the inner 80 % (where the
  content is seen in both), relative to the first thumbnail's own contrast. A pan (even a fast
  one) is explained by its flow (residual ~0.05–0.2); a cut is not (~0.6–1.2); one step of a cross
  fade changes the picture only a little (~0.05).

A pair is a cut when both are high and both stand out from the pairs right before and after it
(a pair as bad as its neighbours is a fade, a whip pan or a hard scene, not an edit): see
:func:`detect_cuts`. The
thresholds were set on the synthetic pans, whip pans, cuts and cross fades of
``tests/test_shot_cuts.py`` (precision and recall in docs/real-footage.md, "Hard cuts").

Row ``j`` of a clip's evidence is the pair (node ``j``, node ``j+1``); a cut mark is that ``j``.
"""
from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Optional, Sequence

import cv2
import numpy as np

__all__ = ["PairEvidence", "CutProbe", "pair_evidence", "detect_cuts", "THUMB_WIDTH"]

#: Width of the thumbnails the evidence is measured on (height follows the aspect).
THUMB_WIDTH = 128
#: A cut changes the colours at least this much (Bhattacharyya distance, 0..1).
MIN_HISTOGRAM = 0.3
#: ... and leaves at least this much unexplained by the flow (relative residual).
MIN_RESIDUAL = 0.5
#: ... and both at least this many times those of the pair right before and the pair right after it.
CONTRAST_RATIO = 3.0


@dataclass(frozen=True)
class PairEvidence:
    """What a pair of consecutive frames says about a cut between them."""

    histogram: float
    residual: float


def _thumbnail(frame: np.ndarray) -> np.ndarray:
    height, width = frame.shape[:2]
    if width <= THUMB_WIDTH:
        return np.ascontiguousarray(frame)
    size = (THUMB_WIDTH, max(8, int(round(height * THUMB_WIDTH / width))))
    step = width // (2 * THUMB_WIDTH)
    if step > 1:  # every step-th pixel first: the area average then reads ~step² fewer pixels
        frame = frame[::step, ::step]
    return cv2.resize(frame, size, interpolation=cv2.INTER_AREA)


def _histogram(thumb: np.ndarray) -> np.ndarray:
    hist = cv2.calcHist([thumb], [0, 1, 2], None, [8, 8, 8], [0, 256, 0, 256, 0, 256])
    return cv2.normalize(hist, hist, alpha=1.0, norm_type=cv2.NORM_L1)


#: One DIS object per thread: an OpenCV DIS instance keeps working buffers between calls, and two
#: threads calling one instance at once (concurrent builds in one process) crash the process.
_PER_THREAD = threading.local()


def _thread_dis() -> cv2.DISOpticalFlow:
    dis = getattr(_PER_THREAD, "dis", None)
    if dis is None:
        dis = _PER_THREAD.dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)
    return dis


def _residual(first: np.ndarray, second: np.ndarray) -> float:
    """Mean |first − second warped back by its flow| over the inner 80 %, relative to first's contrast."""
    a = cv2.cvtColor(first, cv2.COLOR_RGB2GRAY)
    b = cv2.cvtColor(second, cv2.COLOR_RGB2GRAY)
    flow = _thread_dis().calc(a, b, None)
    height, width = a.shape
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    warped = cv2.remap(b, xs + flow[..., 0], ys + flow[..., 1], cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    my, mx = height // 10, width // 10
    inner = (slice(my, height - my or None), slice(mx, width - mx or None))
    a32 = a[inner].astype(np.float32)
    difference = float(np.abs(a32 - warped[inner].astype(np.float32)).mean())
    contrast = float(np.abs(a32 - a32.mean()).mean())
    return difference / max(contrast, 4.0)


def pair_evidence(first: np.ndarray, second: np.ndarray) -> PairEvidence:
    """The evidence of one pair of RGB uint8 frames (any size; measured on thumbnails)."""
    return _evidence(_thumbnail(first), _thumbnail(second))


def _evidence(a: np.ndarray, b: np.ndarray) -> PairEvidence:
    distance = float(cv2.compareHist(_histogram(a), _histogram(b), cv2.HISTCMP_BHATTACHARYYA))
    return PairEvidence(distance, _residual(a, b))


class CutProbe:
    """Collects the evidence of consecutive frames, fed one at a time (keeps one thumbnail)."""

    def __init__(self) -> None:
        self._previous: Optional[np.ndarray] = None
        self.evidence: list[PairEvidence] = []

    def add(self, frame: np.ndarray) -> None:
        """The next frame (RGB uint8) in order; from the second on, one pair of evidence each."""
        thumb = _thumbnail(frame)
        if self._previous is not None:
            self.evidence.append(_evidence(self._previous, thumb))
        self._previous = thumb.copy()

    def cuts(self) -> tuple[int, ...]:
        """The cut marks of the pairs seen so far."""
        return detect_cuts(self.evidence)


def detect_cuts(evidence: Sequence[PairEvidence]) -> tuple[int, ...]:
    """Indices ``j`` of the pairs that are hard cuts (see the module docstring for the rule).

    A cut is one pair that is bad while the pairs right before and after it are good (both shots
    go on): a cross fade or a whip pan spreads over several pairs and is never one."""
    cuts = []
    last = len(evidence) - 1
    for j, item in enumerate(evidence):
        if item.histogram < MIN_HISTOGRAM or item.residual < MIN_RESIDUAL:
            continue
        around = [evidence[i] for i in (j - 1, j + 1) if 0 <= i <= last]
        if all(item.residual >= CONTRAST_RATIO * other.residual and item.histogram >= CONTRAST_RATIO * other.histogram
               for other in around):
            cuts.append(j)
    return tuple(cuts)
