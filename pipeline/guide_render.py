"""Guide frames from source flows resampled in time (one clip-wide scale) or from fitted source
frames (canny, gray, raw: a repeated planned frame is a repeated image)."""
from __future__ import annotations

from typing import Iterator, Optional, Sequence

import numpy as np

from ..preprocessors.annotators.canny import canny_edges
from ..preprocessors.annotators.gray import gray_levels
from ..preprocessors.video.fit import FrameFitter
from ..preprocessors.render.flow_bursts import ClipMagnitudes
from ..preprocessors.render.flow_viz import DEAD_ZONE, MIN_SCALE, MagnitudeHistogram, clip_scale, planes_to_rgb
from ..preprocessors.video.video_io import VideoInfo, iter_planned_frames
from .source_flows import SourceFlows


def iter_resampled_flows(flows: SourceFlows, lo: int, hi: int) -> Iterator[np.ndarray]:
    """The (H, W, 2) float32 motion of guide frames ``[lo, hi)``, one at a time (new arrays)."""
    for k in range(lo, hi):
        yield flows.guide_flow(k)


def iter_resampled_planes(flows: SourceFlows, lo: int, hi: int) -> Iterator[np.ndarray]:
    """The motion of guide frames ``[lo, hi)`` as read-only ``(2, H, W)`` u and v planes: the layout
    composing and colouring work in (no channel split per frame)."""
    for k in range(lo, hi):
        yield flows.guide_planes(k)


def flow_histogram(flows: SourceFlows, lo: int, hi: int, percentile: float = 99.0,
                   step: float = 1.0) -> tuple[MagnitudeHistogram, int]:
    """Histogram of flow magnitudes over guide frames ``[lo, hi)`` without bursts (``flow_bursts``),
    and how many frames were bursts."""
    floor = (MIN_SCALE * step + dead_zone_for(step)) if step > 0 else MIN_SCALE + DEAD_ZONE
    magnitudes = ClipMagnitudes(percentile, floor)
    for planes in iter_resampled_planes(flows, lo, hi):
        magnitudes.add_planes(scale_sample(planes))
    histogram = magnitudes.histogram()
    return histogram, len(magnitudes.bursts)


#: Frames with at least this many pixels are measured for the scale on every other pixel of every
#: other row (a quarter of them): the scale is a clip-wide percentile over millions of magnitudes of
#: a smooth field, which a regular quarter sample gives within a fraction of a percent (a test
#: bounds it), at a quarter of the cost of the pass.
SAMPLE_FROM_PIXELS = 128 * 128


def scale_sample(planes: np.ndarray) -> np.ndarray:
    """The pixels of the ``(2, H, W)`` flow ``planes`` whose magnitudes the scale pass counts (see
    :data:`SAMPLE_FROM_PIXELS`), as contiguous planes."""
    if planes.shape[1] * planes.shape[2] < SAMPLE_FROM_PIXELS:
        return planes
    return np.ascontiguousarray(planes[:, ::2, ::2])


def dead_zone_for(step: float) -> float:
    """The dead zone (``flow_viz.DEAD_ZONE``, a motion per *source* frame) for guide frames that
    span ``step`` source frames: still-shot noise shrinks or grows with the span like real motion."""
    return DEAD_ZONE * step if step > 0 else DEAD_ZONE


def guide_scale(histogram: MagnitudeHistogram, percentile: float, max_motion: Optional[float],
                step: float = 1.0) -> float:
    """The one magnitude that maps to the rim of the colour wheel for the whole clip.

    The noise floor (``flow_viz.MIN_SCALE``) and the dead zone are motions per *source* frame; a
    guide frame spans ``step`` source frames, so both are scaled by it — a 2-frame source stretched
    over 81 frames moves 1/80 of its motion per guide frame and must still be drawn in full colour.
    """
    floor = MIN_SCALE * step if step > 0 else MIN_SCALE
    return clip_scale(histogram, percentile=percentile, max_motion=max_motion, min_scale=floor,
                      dead_zone=dead_zone_for(step))


def iter_flow_guide(flows: SourceFlows, lo: int, hi: int, scale: float, strength: float,
                    step: float = 1.0) -> Iterator[np.ndarray]:
    """Colour-wheel frames, all with the same scale, so colours do not flicker and strength matters."""
    dead_zone = dead_zone_for(step)
    for planes in iter_resampled_planes(flows, lo, hi):
        yield planes_to_rgb(planes, scale, strength, dead_zone=dead_zone)


def iter_image_guide(path: str, info: VideoInfo, indices: Sequence[int], fitter: FrameFitter,
                     guide_type: str, canny_intensity: float = 1.0) -> Iterator[np.ndarray]:
    """Fitted source frames (``raw``), their edges (``canny``) or gray levels (``gray``), one per planned index."""
    last_index: Optional[int] = None
    last_frame: Optional[np.ndarray] = None
    for index, frame in zip(indices, iter_planned_frames(path, indices, info)):
        if index != last_index or last_frame is None:
            fitted = fitter(frame)
            last_frame = (canny_edges(fitted, canny_intensity) if guide_type == "canny"
                          else gray_levels(fitted) if guide_type == "gray" else fitted)
            last_index = index
        del frame
        yield last_frame
