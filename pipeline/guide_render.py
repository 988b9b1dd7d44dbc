"""Guide frames from stored flows (one clip-wide scale) or from fitted source frames (canny, raw)."""
from __future__ import annotations

from typing import Iterator, Optional, Sequence

import numpy as np

from ..preprocessors.canny import canny_edges
from ..preprocessors.fit import FrameFitter
from ..preprocessors.flow_viz import MagnitudeHistogram, clip_scale, flow_to_rgb
from ..preprocessors.video_io import VideoInfo, iter_planned_frames
from .flow_extraction import ZERO_ROW


def _frame_flow(rows: np.ndarray, row: int, height: int, width: int) -> np.ndarray:
    """The float32 flow of one guide frame (a fresh array, never a view of the mapped file)."""
    if row == ZERO_ROW:
        return np.zeros((height, width, 2), dtype=np.float32)
    return np.asarray(rows[row], dtype=np.float32)


def flow_histogram(rows: np.ndarray, frame_rows: Sequence[int], height: int, width: int) -> MagnitudeHistogram:
    """Histogram of flow magnitudes over every guide frame (a repeated row counts each time)."""
    histogram = MagnitudeHistogram()
    for row in frame_rows:
        histogram.add(_frame_flow(rows, row, height, width))
    return histogram


def guide_scale(histogram: MagnitudeHistogram, percentile: float, max_motion: Optional[float]) -> float:
    """The one magnitude that maps to the rim of the colour wheel for the whole clip."""
    return clip_scale(histogram, percentile=percentile, max_motion=max_motion)


def iter_flow_guide(rows: np.ndarray, frame_rows: Sequence[int], height: int, width: int,
                    scale: float, strength: float) -> Iterator[np.ndarray]:
    """Colour-wheel frames, all with the same scale, so colours do not flicker and strength matters."""
    for row in frame_rows:
        yield flow_to_rgb(_frame_flow(rows, row, height, width), scale, strength)


def iter_image_guide(path: str, info: VideoInfo, indices: Sequence[int], fitter: FrameFitter,
                     guide_type: str, canny_intensity: float = 1.0) -> Iterator[np.ndarray]:
    """Fitted source frames (``raw``) or their edges (``canny``), one per planned index."""
    last_index: Optional[int] = None
    last_frame: Optional[np.ndarray] = None
    for index, frame in zip(indices, iter_planned_frames(path, indices, info)):
        if index != last_index or last_frame is None:
            fitted = fitter(frame)
            last_frame = canny_edges(fitted, canny_intensity) if guide_type == "canny" else fitted
            last_index = index
        del frame
        yield last_frame
