"""Several guides from one extraction: segments of one timeline, and composites of several sources.

* :func:`build_segment_guides` — one structure video, a list of segment windows of one guide
  timeline (Wan2GP's sliding windows, travel segments): the flows of the whole timeline are
  extracted once (through the flow cache; a per-run cache when none is configured) and every
  segment is rendered from its slice, with one scale for the whole timeline so colours match
  across segment boundaries.
* :func:`build_composite_guide` — several structure videos mapped onto ranges of one timeline,
  each with its own treatment and strength; frames no source covers are neutral (white, the
  zero-motion colour, for flow; black for canny, raw, depth and gray).

Depth segments: the depth maps of the whole timeline are computed once (cached) and every segment's
brightness scale is measured over the whole timeline, so segments join without a brightness step.
"""
from __future__ import annotations

import contextlib
import shutil
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Iterator, Optional, Sequence

import numpy as np

from ..atomic_files import publishing
from ..errors import OptionError, TargetError
from ..preprocessors.cache.flow_cache import FlowCache
from ..preprocessors.timeline.segments import SegmentWindow, check_windows
from ..preprocessors.video.guide_writer import GuideVideoWriter
from .annotators import annotator_for
from .annotators.flow import FLOW, flows_of, timeline_scale
from .build import GuideRun, build_guide, open_rows
from .context import RunContext
from .guide_render import dead_zone_for
from .prepare import prepare
from .request import GuideRequest, GuideResult

#: What a guide shows where no source covers it: no motion (white), no edges (white lines on black for canny,
#: white paper for contour), no depth, no pose, no shapes (black).
NEUTRAL_VALUE = {"flow": 255, "canny": 0, "raw": 0, "depth": 0, "gray": 0, "contour": 255, "scribble": 0, "pose": 0}


@dataclass
class SegmentRun:
    """What :func:`build_segment_guides` produced."""

    segments: list[GuideResult]
    timeline_scale: Optional[float]
    extraction_seconds: float
    extraction_cached: bool
    timings: dict[str, float] = field(default_factory=dict)


@contextlib.contextmanager
def _with_cache(context: Optional[RunContext]) -> Iterator[RunContext]:
    """The context, resolved, with a per-run cache when caching is switched off."""
    ctx = (context or RunContext()).resolved()
    if ctx.cache is not None:
        yield ctx
        return
    folder = ctx.scratch_dir("run-cache")
    try:
        yield replace(ctx, cache=FlowCache(folder), use_cache=True)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def build_segment_guides(request: GuideRequest, windows: Sequence[SegmentWindow], out_dir: str | Path,
                         context: Optional[RunContext] = None, consistent_scale: bool = True) -> SegmentRun:
    """Extract once for the whole timeline (``request.frames``), then write one guide per window.

    Each segment equals a direct extraction of that window (``window_start``/``window_frames``)
    given the same ``max_motion``; with ``consistent_scale`` that is the timeline's scale.
    """
    if not windows:
        raise OptionError("No segment windows given: pass at least one (start, length).")
    request = replace(request, window_start=0, window_frames=None)
    windows = check_windows(windows, request.frames)
    out_dir = Path(out_dir)
    stem = Path(str(request.input)).stem
    started = time.perf_counter()
    with _with_cache(context) as ctx:
        max_motion = request.max_motion
        extraction_cached = True
        extraction_started = time.perf_counter()
        annotator = annotator_for(request.guide_type)
        if annotator is not None:  # the rows once, before the segments read them
            prepared = prepare(request)
            with open_rows(annotator, prepared, ctx) as stored:
                extraction_cached = bool(prepared.result.cache_hit)
                if annotator is FLOW and consistent_scale and max_motion is None:
                    # A clip scale is measured after the dead zone; as max_motion it is a magnitude
                    # before it, so each segment's clip_scale gives back exactly this scale.
                    max_motion = timeline_scale(flows_of(stored, prepared), prepared, 0, request.frames) \
                        + dead_zone_for(prepared.motion.step)
        extraction = time.perf_counter() - extraction_started
        results = []
        for number, window in enumerate(windows, 1):
            segment = replace(request, output=out_dir / f"{stem}_segment{number:02d}.mp4",
                              window_start=window.start, window_frames=window.length, max_motion=max_motion)
            results.append(build_guide(segment, ctx))
    return SegmentRun(results, max_motion if request.guide_type == "flow" else None, extraction, extraction_cached,
                      {"total": time.perf_counter() - started})


@dataclass(frozen=True)
class Placement:
    """One structure video placed on guide frames ``[start, start + length)`` of a composite timeline."""

    input: str | Path
    start: int
    length: int
    treatment: str = "adjust"
    motion_strength: float = 1.0
    source_start: Optional[float] = None
    source_end: Optional[float] = None
    range_unit: str = "frames"

    @property
    def stop(self) -> int:
        return self.start + self.length


def _check_placements(placements: Sequence[Placement], frames: int) -> list[Placement]:
    ordered = sorted(placements, key=lambda p: p.start)
    for placement in ordered:
        if placement.start < 0 or placement.length <= 0 or placement.stop > frames:
            raise TargetError(f"Placement of {Path(str(placement.input)).name} at {placement.start}..{placement.stop} "
                              f"lies outside the {frames}-frame timeline.")
    for before, after in zip(ordered, ordered[1:]):
        if after.start < before.stop:
            raise TargetError(f"Placements of {Path(str(before.input)).name} and {Path(str(after.input)).name} "
                              f"overlap at frame {after.start}: give each frame to one structure video.")
    return ordered


def build_composite_guide(output: str | Path, frames: int, placements: Sequence[Placement], *,
                          resolution: Any = (832, 480), fps: float = 16.0, guide_type: str = "flow",
                          context: Optional[RunContext] = None, **options: Any) -> GuideResult:
    """One guide of ``frames`` frames from several structure videos; ``options`` are further
    :class:`GuideRequest` fields shared by every source (backend, fit, iterations, ...)."""
    if not placements:
        raise OptionError("No placements given: place at least one structure video on the timeline.")
    started = time.perf_counter()
    base = GuideRequest(input=placements[0].input, output=output, resolution=resolution, frames=frames, fps=fps,
                        guide_type=guide_type, **options).validated()
    ordered = _check_placements(placements, frames)
    width, height = base.resolution  # type: ignore[misc]
    neutral = np.full((height, width, 3), NEUTRAL_VALUE[guide_type], dtype=np.uint8)
    output = Path(output).expanduser().resolve()
    parts: list[GuideResult] = []
    with _with_cache(context) as ctx:
        with publishing(output) as partial, GuideVideoWriter(partial, width, height, fps) as writer:
            cursor = 0
            for placement in ordered:
                for _ in range(cursor, placement.start):
                    writer.write(neutral)
                request = replace(base, input=placement.input, output=None, frames=placement.length,
                                  treatment=placement.treatment, motion_strength=placement.motion_strength,
                                  start=placement.source_start, end=placement.source_end,
                                  range_unit=placement.range_unit)
                run = GuideRun(request, ctx)
                frames_iter = run.frames()
                try:
                    for frame in frames_iter:
                        writer.write(frame)
                finally:
                    frames_iter.close()
                parts.append(run.result())
                cursor = placement.stop
            for _ in range(cursor, frames):
                writer.write(neutral)
    first = parts[0]
    result = GuideResult(output=output, frames=frames, width=width, height=height, fps=fps, guide_type=guide_type,
                         requested_size=base.size, backend=first.backend, backend_reason=first.backend_reason,
                         weights=first.weights, device=first.device,
                         cache_hit=all(bool(p.cache_hit) for p in parts) if guide_type == "flow" else None,
                         flows_from_cache=guide_type == "flow" and all(p.flows_from_cache for p in parts),
                         source={"placements": [{"input": str(p.input), "start": p.start, "length": p.length}
                                                for p in ordered]},
                         timeline=ctx.timeline)
    result.timings["total"] = time.perf_counter() - started
    return result
