"""Depth guide frames: grey, near = bright (as Wan2GP's depth annotator), one brightness scale per timeline.

The scale is measured over every frame of the request's guide timeline (not only its window), so
a segment of a timeline is exactly that slice of the whole guide. ``depth_smoothing`` 0 gives one
range for the whole timeline (no flicker); above 0 the range follows the scene, smoothed over that
many guide frames (see ``preprocessors.render.depth_normalise``). Hard cuts split the timeline into shots:
each shot gets its own range and smoothing never crosses a cut.
"""
from __future__ import annotations

import bisect
from typing import Iterator, Sequence

import numpy as np

from ..preprocessors.render.depth_normalise import DepthScale, InverseDepthSketch, depth_to_guide, plan_shot_scales
from .source_depth import SourceDepth


def _planned_maps(depth: SourceDepth, indices: Sequence[int]) -> Iterator[np.ndarray]:
    for index in indices:
        yield depth.at(index)


def depth_scale(depth: SourceDepth, indices: Sequence[int], smoothing: float = 0.0) -> DepthScale:
    """The scale of every guide frame whose source frames are ``indices`` (one pass, streaming): one
    range per shot when the source has hard cuts (``depth.cuts``), smoothing never across one."""
    starts = depth.shot_starts()
    runs: list[tuple[int, InverseDepthSketch]] = []
    for index, depth_map in zip(indices, _planned_maps(depth, indices)):
        shot = bisect.bisect_right(starts, index)
        if not runs or runs[-1][0] != shot:
            runs.append((shot, InverseDepthSketch()))
        runs[-1][1].add(depth_map)
    return plan_shot_scales(runs, smoothing=smoothing)


def iter_depth_guide(depth: SourceDepth, indices: Sequence[int], lo: int, hi: int, scale: DepthScale,
                     contrast: float = 1.0) -> Iterator[np.ndarray]:
    """Grey RGB frames of guide frames ``[lo, hi)`` (``indices`` covers the whole timeline)."""
    for k in range(lo, hi):
        yield depth_to_guide(depth.at(indices[k]), *scale.range_at(k), contrast=contrast)


def depth_brightness_note(contrast: float, smoothing: float, shots: int = 1) -> str:
    """How a depth guide's brightness was mapped, for the summary and the tab's details."""
    whole = "the whole clip" if shots <= 1 else "each shot"
    spread = (f"one brightness range for {whole}" if smoothing <= 0
              else f"brightness range smoothed over {smoothing:g} frames" + (" within each shot" if shots > 1 else ""))
    return f"contrast {contrast:g}, {spread}"
