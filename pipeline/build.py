"""The entry points: :func:`build_guide` (a guide video file), :func:`iter_guide_frames` (frames) and
:func:`iter_guide_flows` (the resampled float flows of a flow guide).

Order of work for a flow guide: prepare (probe, plan, motion timeline) → pick the backend → open
the source flows (from any cache entry that covers the request, else extracted once on the source
timeline) → resample motion to every guide frame → one clip-wide scale → render and encode.
Each step returns its facts; only the functions here record them into the request's result.
"""
from __future__ import annotations

import contextlib
import logging
import time
from pathlib import Path
from typing import Iterator, Optional

import numpy as np

from ..errors import OptionError
from ..preprocessors.render.flow_bursts import burst_note
from .backend_choice import BackendChoice, choose_backend
from .context import RunContext
from .depth_render import depth_brightness_note, depth_scale, iter_depth_guide
from .source_depth import SourceDepth, depth_choice_for, open_source_depth
from .flow_keys import render_key
from .guide_render import flow_histogram, guide_scale, iter_flow_guide, iter_resampled_flows
from .guide_render import iter_image_guide
from .output import output_error, publish_cached_guide, write_guide_video
from .prepare import PreparedGuide, prepare
from .request import GuideRequest, GuideResult
from .shot_marks import record_cuts
from .source_flows import SourceFlows, cached_cut_marks, open_source_flows

logger = logging.getLogger(__name__)

__all__ = ["RunContext", "PreparedGuide", "prepare", "build_guide", "iter_guide_frames", "iter_guide_flows",
           "open_flows", "open_depth", "backend_for", "GuideRun"]


def backend_for(prepared: PreparedGuide, ctx: RunContext) -> BackendChoice:
    """The flow backend of a prepared request (chosen once; nothing is loaded here)."""
    if prepared.choice is None:
        prepared.choice = choose_backend(prepared.request, ctx.weights_locator)
        prepared.record_model(prepared.choice)
    return prepared.choice


def _record_flows(result: GuideResult, flows: SourceFlows) -> None:
    """Write what opening the flows did into the request's result (the one place that does)."""
    result.cache_hit = flows.from_cache if flows.key is not None else None
    result.cache_key = flows.key
    result.flows_from_cache = flows.from_cache
    result.flow_stride = flows.stride
    report = flows.extraction
    if flows.from_cache:
        result.device = "cache"
        result.timings["cache_read"] = flows.read_seconds
        result.memory_notes.append("Flows read from the cache: nothing was extracted, no flow model loaded.")
    elif report is not None:
        result.device, result.batch_size = report.device, report.batch_size
        result.timings["flow"] = report.seconds
        result.peak_device_bytes = max(result.peak_device_bytes, report.peak_device_bytes)
        result.warnings.extend(report.warnings)
        result.batch_note = report.batch_note
        result.memory_notes.extend(report.memory_notes)
        result.memory_reports.extend(report.memory_reports)


@contextlib.contextmanager
def open_flows(prepared: PreparedGuide, ctx: RunContext) -> Iterator[SourceFlows]:
    """The source flows of a prepared flow request (recorded in its result), valid inside the block."""
    with open_source_flows(prepared, backend_for(prepared, ctx), ctx) as flows:
        _record_flows(prepared.result, flows)
        record_cuts(prepared, flows.nodes, flows.cuts, flows.cuts_recomputed)
        problem = ctx.cache.problem(flows.key) if ctx.cache is not None and flows.key is not None else None
        if problem and not flows.from_cache:
            prepared.result.warnings.append(f"cached flows were invalid ({problem}); extracted again.")
        if flows.from_cache:
            ctx.timeline.note(prepared.result.memory_notes[-1])
        yield flows


@contextlib.contextmanager
def open_depth(prepared: PreparedGuide, ctx: RunContext) -> Iterator[SourceDepth]:
    """The source depth maps of a prepared depth request (recorded in its result), valid inside the block."""
    with open_source_depth(prepared, depth_choice_for(prepared, ctx), ctx) as depth:
        record_cuts(prepared, depth.nodes, depth.cuts, depth.cuts_recomputed)
        result = prepared.result
        result.cache_hit, result.cache_key = (depth.from_cache, depth.key) if depth.key is not None else (None, None)
        report = depth.extraction
        if depth.from_cache:
            result.device = "cache"
            result.timings["cache_read"] = depth.read_seconds
        elif report is not None:
            result.device, result.batch_size = report.device, report.batch_size
            result.timings["depth"] = report.seconds
            result.peak_device_bytes = max(result.peak_device_bytes, report.peak_device_bytes)
            result.warnings.extend(report.warnings)
        yield depth


def iter_guide_flows(request: GuideRequest, context: Optional[RunContext] = None,
                     prepared: Optional[PreparedGuide] = None) -> Iterator[np.ndarray]:
    """Yield the motion (H, W, 2) float32, in pixels, that each frame of a flow guide shows."""
    ctx = (context or RunContext()).resolved()
    prepared = prepared or prepare(request)
    with open_flows(prepared, ctx) as flows:
        yield from iter_resampled_flows(flows, *prepared.window)


class GuideRun:
    """One guide's frames, then its result: :meth:`frames` yields the frames; :meth:`result` returns
    the :class:`GuideResult` once the last one has been drawn.

    What the drawing learns (the clip's scale, the depth brightness, the model used) is part of the
    result; a caller that read it while frames were still coming would see half of it, so
    :meth:`result` refuses until :meth:`frames` has run to its end.
    """

    def __init__(self, request: GuideRequest, context: Optional[RunContext] = None,
                 prepared: Optional[PreparedGuide] = None) -> None:
        self.ctx = (context or RunContext()).resolved()
        self.prepared = prepared or prepare(request)
        self._drawn = False

    def frames(self) -> Iterator[np.ndarray]:
        """The guide's frames as (H, W, 3) uint8 RGB arrays, one at a time (see :func:`iter_guide_frames`)."""
        yield from _draw_frames(self.prepared, self.ctx)
        self._drawn = True

    def result(self) -> GuideResult:
        """What the run produced; only once every frame has been drawn."""
        if not self._drawn:
            raise RuntimeError("The guide's frames have not all been drawn yet: iterate frames() to its end first.")
        return self.prepared.result


def iter_guide_frames(request: GuideRequest, context: Optional[RunContext] = None,
                      prepared: Optional[PreparedGuide] = None) -> Iterator[np.ndarray]:
    """Yield the guide's frames as (H, W, 3) uint8 RGB arrays, one at a time.

    For a flow guide the flows are extracted (or read from the cache, and the annotator torn down)
    before the first frame is yielded; temporary files go when the iterator ends or is closed. The
    result that goes with the frames comes from :class:`GuideRun` (``prepared.result`` once this
    iterator has ended, for a caller that passed ``prepared``).
    """
    yield from GuideRun(request, context, prepared).frames()


def _draw_frames(prepared: PreparedGuide, ctx: RunContext) -> Iterator[np.ndarray]:
    """The frames of a prepared guide; what drawing them learns goes into the run's result."""
    req, result = prepared.request, prepared.result
    lo, hi = prepared.window
    if req.guide_type == "depth":
        with open_depth(prepared, ctx) as depth:
            ctx.progress.update("scale", 0, 1, "measuring depth over the whole timeline")
            scale = depth_scale(depth, prepared.plan.indices, req.depth_smoothing)
            result.depth_brightness = depth_brightness_note(req.depth_contrast, req.depth_smoothing,
                                                            len(result.cuts) + 1)
            yield from iter_depth_guide(depth, prepared.plan.indices, lo, hi, scale, req.depth_contrast)
        return
    if req.guide_type != "flow":
        result.backend, result.device = "none", "cpu"
        yield from iter_image_guide(str(req.input), prepared.info, prepared.plan.indices[lo:hi], prepared.fitter,
                                    req.guide_type, req.canny_intensity)
        return
    with open_flows(prepared, ctx) as flows:
        ctx.progress.update("scale", 0, 1, "measuring motion over the whole clip")
        scale = timeline_scale(flows, prepared, lo, hi)
        result.flow_scale = scale
        yield from iter_flow_guide(flows, lo, hi, scale, req.motion_strength, prepared.motion.step)


def timeline_scale(flows: SourceFlows, prepared: PreparedGuide, lo: int, hi: int) -> float:
    """The colour scale of guide frames ``[lo, hi)`` (bursts left out; noted in the result)."""
    req = prepared.request
    histogram, bursts = flow_histogram(flows, lo, hi, req.scale_percentile, prepared.motion.step)
    note = burst_note(bursts, hi - lo) if req.max_motion is None else None
    if note and note not in prepared.result.warnings:
        prepared.result.warnings.append(note)
    return guide_scale(histogram, req.scale_percentile, req.max_motion, prepared.motion.step)


def build_guide(request: GuideRequest, context: Optional[RunContext] = None) -> GuideResult:
    """Write the guide video for ``request`` and return what was produced.

    The output is written under a partial name and renamed when complete: on any error or
    cancellation nothing is left at ``request.output``.
    """
    if request.output is None:
        raise OptionError("No output path given: set output (or use iter_guide_frames for frames in memory).")
    output = Path(request.output).expanduser().resolve()
    if output.suffix.lower() != ".mp4":
        raise OptionError(f"Output {output.name} must end in .mp4 (the guide is an H.264 MP4).")
    run = GuideRun(request, context)
    ctx, prepared = run.ctx, run.prepared
    if Path(prepared.info.path).resolve() == output:
        raise OptionError("The output path is the input video: choose another output path.")
    req, result = prepared.request, prepared.result
    if req.guide_type == "depth":
        depth_choice_for(prepared, ctx)  # missing weights fail here, before anything is written
    key = None
    if ctx.cache is not None and req.guide_type == "flow":
        key = render_key(prepared, backend_for(prepared, ctx), ctx.cache)
    cached = ctx.cache.lookup_render(key) if key is not None else None
    if key is not None and cached is None and ctx.cache.problem(key):
        result.warnings.append(f"the cached guide was damaged ({ctx.cache.problem(key)}); it was removed and "
                               "the guide rendered again.")
    width, height = prepared.size
    try:
        if cached is not None:
            publish_cached_guide(cached, output)
        else:
            seconds = write_guide_video(run.frames(), output, width, height, req.fps,
                                        req.output_frames, ctx.progress, ctx.timeline)
            result = run.result()
            result.timings["render_encode"] = seconds
    except OSError as exc:  # disk full, permissions: the partial file is gone
        raise output_error(output, exc) from exc
    if cached is not None:
        marks = cached_cut_marks(prepared, backend_for(prepared, ctx), ctx)
        if marks is not None:
            record_cuts(prepared, *marks)
        result.cache_hit, result.render_cached, result.flows_from_cache = True, True, True
        result.device = "cache"
        note = "Guide copied from the cache: nothing was extracted or rendered, no flow model loaded."
        result.memory_notes.append(note)
        ctx.timeline.note(note)
    elif key is not None:
        with contextlib.suppress(Exception):  # a render that cannot be cached is still a good result
            ctx.cache.store_render(key, output)
    result.output = output
    result.timings["total"] = time.perf_counter() - prepared.started
    result.timeline = ctx.timeline
    result.peak_rss_bytes = max([s.rss for s in ctx.timeline.samples] + [result.peak_rss_bytes])
    result.peak_anon_bytes = max([s.anon for s in ctx.timeline.samples] + [result.peak_anon_bytes])
    logger.info(result.summary())
    return result
