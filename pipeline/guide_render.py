"""Guide frames from source flows resampled in time (one clip-wide scale) or from fitted source
frames (canny, gray, raw: a repeated planned frame is a repeated image)."""
from __future__ import annotations

from typing import Iterator, Optional, Sequence

import numpy as np

from ..preprocessors.annotators.canny import canny_edges
from ..preprocessors.annotators.gray import gray_levels
from ..preprocessors.video.fit import FrameFitter
from ..preprocessors.render.flow_bursts import ClipMagnitudes
from ..preprocessors.render.flow_viz import DEAD_ZONE, MIN_SCALE, MagnitudeHistogram, clip_scale, flow_to_rgb
from ..preprocessors.video.video_io import VideoInfo, iter_planned_frames
from .source_flows import SourceFlows


def iter_resampled_flows(flows: SourceFlows, lo: int, hi: int, fresh: bool = True) -> Iterator[np.ndarray]:
    """The float32 motion of guide frames ``[lo, hi)``, one at a time (``fresh=False``: read only)."""
    for k in range(lo, hi):
        yield flows.guide_flow(k, fresh=fresh)


def flow_histogram(flows: SourceFlows, lo: int, hi: int, percentile: float = 99.0,
                   step: float = 1.0) -> tuple[MagnitudeHistogram, int]:
    """Histogram of flow magnitudes over guide frames ``[lo, hi)`` without bursts (``flow_bursts``),
    and how many frames were bursts."""
    floor = (MIN_SCALE * step + dead_zone_for(step)) if step > 0 else MIN_SCALE + DEAD_ZONE
    magnitudes = ClipMagnitudes(percentile, floor)
    for flow in iter_resampled_flows(flows, lo, hi, fresh=False):
        magnitudes.add_frame(scale_sample(flow))
    histogram = magnitudes.histogram()
    return histogram, len(magnitudes.bursts)


#: Frames with at least this many pixels are measured for the scale on every other pixel of every
#: other row (a quarter of them): the scale is a clip-wide percentile over millions of magnitudes of
#: a smooth field, which a regular quarter sample gives within a fraction of a percent (a test
#: bounds it), at a quarter of the cost of the pass.
SAMPLE_FROM_PIXELS = 128 * 128


def scale_sample(flow: np.ndarray) -> np.ndarray:
    """The pixels of ``flow`` whose magnitudes the scale pass counts (see :data:`SAMPLE_FROM_PIXELS`),
    as a contiguous array.

    A float32 (u, v) pair is 8 bytes: gathered as one 64-bit word per pixel, the quarter is copied
    about 15× faster than NumPy's element-by-element strided copy, with the same values."""
    if flow.shape[0] * flow.shape[1] < SAMPLE_FROM_PIXELS:
        return flow
    if flow.dtype == np.float32 and flow.ndim == 3 and flow.shape[2] == 2 and flow.flags.c_contiguous:
        pairs = flow.view(np.uint64).reshape(flow.shape[:2])[::2, ::2]
        return np.ascontiguousarray(pairs).view(np.float32).reshape(pairs.shape + (2,))
    return np.ascontiguousarray(flow[::2, ::2])


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
    for flow in iter_resampled_flows(flows, lo, hi, fresh=False):
        yield flow_to_rgb(flow, scale, strength, dead_zone=dead_zone)


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
