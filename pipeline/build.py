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
from .annotators import Annotator, annotator_for
from .annotators.base import ModelChoice
from .annotators.flow import FLOW, flows_of
from .context import RunContext
from .guide_render import iter_image_guide, iter_resampled_flows
from .output import output_error, publish_cached_guide, write_guide_video
from .prepare import PreparedGuide, prepare
from .request import GuideRequest, GuideResult
from .shot_marks import record_cuts
from .source_flows import SourceFlows
from .source_rows import StoredRows, cached_cut_marks, open_source_rows

logger = logging.getLogger(__name__)

__all__ = ["RunContext", "PreparedGuide", "prepare", "build_guide", "iter_guide_frames", "iter_guide_flows",
           "open_rows", "open_flows", "model_for", "GuideRun"]


def model_for(annotator: Annotator, prepared: PreparedGuide, ctx: RunContext) -> ModelChoice:
    """The model a prepared request's annotator uses (chosen once and recorded; nothing is loaded here)."""
    if prepared.choice is None:
        prepared.choice = annotator.choose(prepared.request, ctx.weights_locator)
        prepared.record_model(prepared.choice)
    return prepared.choice


def _record_rows(annotator: Annotator, result: GuideResult, stored: StoredRows) -> None:
    """Write what opening the rows did into the request's result (the one place that does)."""
    result.cache_hit = stored.from_cache if stored.key is not None else None
    result.cache_key = stored.key
    if annotator.per_pair:
        result.flows_from_cache = stored.from_cache
        result.flow_stride = stored.stride
    report = stored.extraction
    if stored.from_cache:
        result.device = "cache"
        result.timings["cache_read"] = stored.read_seconds
        result.memory_notes.append(annotator.cache_note())
    elif report is not None:
        result.device, result.batch_size = report.device, report.batch_size
        result.timings[annotator.phase] = report.seconds
        result.peak_device_bytes = max(result.peak_device_bytes, report.peak_device_bytes)
        result.warnings.extend(report.warnings)
        result.batch_note = report.batch_note
        result.memory_notes.extend(report.memory_notes)
        result.memory_reports.extend(report.memory_reports)


@contextlib.contextmanager
def open_rows(annotator: Annotator, prepared: PreparedGuide, ctx: RunContext) -> Iterator[StoredRows]:
    """The stored rows of a prepared request (recorded in its result), valid inside the block."""
    with open_source_rows(annotator, prepared, model_for(annotator, prepared, ctx), ctx) as stored:
        _record_rows(annotator, prepared.result, stored)
        record_cuts(prepared, stored.nodes, stored.cuts, stored.cuts_recomputed)
        problem = ctx.cache.problem(stored.key) if ctx.cache is not None and stored.key is not None else None
        if problem and not stored.from_cache:
            prepared.result.warnings.append(f"cached {annotator.guide_type} rows were invalid ({problem}); "
                                            "computed again.")
        if stored.from_cache:
            ctx.timeline.note(prepared.result.memory_notes[-1])
        yield stored


@contextlib.contextmanager
def open_flows(prepared: PreparedGuide, ctx: RunContext) -> Iterator[SourceFlows]:
    """The source flows of a prepared flow request (recorded in its result), valid inside the block."""
    with open_rows(FLOW, prepared, ctx) as stored:
        yield flows_of(stored, prepared)


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
    annotator = annotator_for(req.guide_type)
    if annotator is not None:
        with open_rows(annotator, prepared, ctx) as stored:
            yield from annotator.frames(stored, prepared, ctx)
        return
    lo, hi = prepared.window
    result.backend, result.device = "none", "cpu"
    yield from iter_image_guide(str(req.input), prepared.info, prepared.plan.indices[lo:hi], prepared.fitter,
                                req.guide_type, req.canny_intensity)


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
    annotator = annotator_for(req.guide_type)
    key = None
    if annotator is not None:
        choice = model_for(annotator, prepared, ctx)  # missing weights fail here, before anything is written
        key = annotator.render_key(prepared, choice, ctx.cache) if ctx.cache is not None else None
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
    if cached is not None and annotator is not None:  # only an annotator's guides are cached
        marks = cached_cut_marks(annotator, prepared, model_for(annotator, prepared, ctx), ctx)
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
