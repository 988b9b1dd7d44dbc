"""The one entry point: :func:`build_guide` (a guide video file) and :func:`iter_guide_frames` (frames).

Order of work for a flow guide: probe → plan → pick the backend → extract the distinct pairs into a
memory-mapped flow file (annotator loaded through the pool, under the GPU lock, torn down in
``finally``) → one clip-wide scale from a magnitude histogram → render and encode frame by frame.
"""
from __future__ import annotations

import gc
import contextlib
import logging
import os
import shutil
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, ContextManager, Iterator, Optional

import numpy as np
import torch

from ..errors import CacheError, InvalidVideoError, OptionError, OutputError
from ..memory import (PROCESS_GPU_LOCK, AnnotatorPool, BatchSizeHistory, MemoryMonitor, PressurePolicy, Timeline,
                      get_default_pool)
from ..preprocessors.fit import FrameFitter
from ..preprocessors.flow_cache import FlowCache, make_key
from ..preprocessors.flow_dis import DisFlowBackend
from ..preprocessors.flow_raft import RaftFlowBackend, estimate_bytes_per_pair
from ..preprocessors.flow_store import FLOW_DTYPE, FlowStoreWriter, open_flow_rows
from ..preprocessors.frame_plan import FramePlan, make_plan
from ..preprocessors.video_io import GuideVideoWriter, VideoInfo, probe_video
from ..progress import Progress, ensure_progress
from .backend_choice import BackendChoice, WeightsLocator, choose_backend, register_raft, resolve_device
from .flow_extraction import (FlowLayout, extract_flows, iter_job_frames, plan_flow_layout,
                              restrict_layout, stack_and_compute)
from .guide_render import flow_histogram, guide_scale, iter_flow_guide, iter_image_guide
from .request import GuideRequest, GuideResult

logger = logging.getLogger(__name__)

#: Serialises annotator work on the GPU when the host provides no lock of its own.
_PROCESS_GPU_LOCK = PROCESS_GPU_LOCK
CPU_RAFT_BATCH = 2
DIS_BATCH = 8
MAX_AUTO_BATCH = 16
#: Bump when the rendering of flows changes, so cached rendered guides are not reused.
RENDER_VERSION = 1


@dataclass
class RunContext:
    """Collaborators of one run; every field has a sensible standalone default."""

    pool: Optional[AnnotatorPool] = None
    progress: Optional[Progress] = None
    weights_locator: Optional[WeightsLocator] = None
    gpu_lock: Optional[Callable[[], ContextManager[object]]] = None
    timeline: Optional[Timeline] = None
    history: Optional[BatchSizeHistory] = None
    pressure: Optional[PressurePolicy] = None
    work_dir: Optional[Path] = None
    cache: Optional[FlowCache] = None
    use_cache: bool = True

    def resolved(self) -> "RunContext":
        """A copy with defaults filled in."""
        return RunContext(
            pool=self.pool or get_default_pool(),
            progress=ensure_progress(self.progress),
            weights_locator=self.weights_locator,
            gpu_lock=self.gpu_lock or (lambda: _PROCESS_GPU_LOCK),
            timeline=self.timeline if self.timeline is not None else Timeline(),
            history=self.history,
            pressure=self.pressure or PressurePolicy(),
            work_dir=self.work_dir,
            cache=(self.cache or FlowCache()) if self.use_cache else None,
            use_cache=self.use_cache,
        )


@dataclass
class PreparedGuide:
    """A validated request with its probed source, plan and fitter."""

    request: GuideRequest
    info: VideoInfo
    plan: FramePlan
    fitter: FrameFitter
    result: GuideResult
    started: float = field(default_factory=time.perf_counter)
    choice: Optional[BackendChoice] = None

    @property
    def size(self) -> tuple[int, int]:
        return self.result.width, self.result.height

    @property
    def window(self) -> tuple[int, int]:
        """Guide frames ``[lo, hi)`` of the timeline that come out."""
        lo = self.request.window_start
        return lo, lo + self.request.output_frames


@dataclass
class FlowSet:
    """Stored flows (mapped read-only) and the row of every guide frame of the timeline."""

    rows: np.ndarray
    frame_rows: tuple[int, ...]
    meta: dict[str, Any] = field(default_factory=dict)


def prepare(request: GuideRequest) -> PreparedGuide:
    """Validate, probe the source and plan the frames; raises typed errors, writes nothing."""
    started = time.perf_counter()
    requested = request.size
    request = request.validated()
    width, height = request.resolution  # type: ignore[misc]
    info = probe_video(request.input)
    if request.guide_type == "flow" and info.frame_count < 2:
        raise InvalidVideoError(
            f"{Path(str(request.input)).name} has only {info.frame_count} frame; optical flow needs at least two: "
            "use --type canny or raw, or a longer video.")
    plan = make_plan(request.treatment, request.frames, info.frame_count, info.fps, request.fps,
                     request.source_range)
    fitter = FrameFitter(info.width, info.height, width, height, request.fit)
    result = GuideResult(output=None, frames=request.output_frames, width=width, height=height, fps=request.fps,
                         guide_type=request.guide_type, requested_size=requested,
                         source={"path": info.path, "width": info.width, "height": info.height, "fps": info.fps,
                                 "frame_count": info.frame_count, "duration": info.duration,
                                 "rotation": info.rotation, "codec": info.codec,
                                 "range": [plan.first, plan.stop]})
    if result.snapped:
        result.warnings.append(f"Resolution snapped from {requested[0]}x{requested[1]} to {width}x{height} "
                               "(multiples of 16, as Wan2GP does).")
    return PreparedGuide(request, info, plan, fitter, result, started)


def iter_guide_frames(request: GuideRequest, context: Optional[RunContext] = None,
                      prepared: Optional[PreparedGuide] = None) -> Iterator[np.ndarray]:
    """Yield the guide's frames as (H, W, 3) uint8 RGB arrays, one at a time.

    For a flow guide the flows are extracted (or read from the cache, and the annotator torn down)
    before the first frame is yielded; temporary files go when the iterator ends or is closed.
    """
    ctx = (context or RunContext()).resolved()
    prepared = prepared or prepare(request)
    req, result = prepared.request, prepared.result
    lo, hi = prepared.window
    if req.guide_type != "flow":
        result.backend, result.device = "none", "cpu"
        yield from iter_image_guide(str(req.input), prepared.info, prepared.plan.indices[lo:hi], prepared.fitter,
                                    req.guide_type, req.canny_intensity)
        return
    width, height = prepared.size
    with open_flows(prepared, ctx) as flows:
        frame_rows = flows.frame_rows[lo:hi]
        ctx.progress.update("scale", 0, 1, "measuring motion over the whole clip")
        scale = guide_scale(flow_histogram(flows.rows, frame_rows, height, width), req.scale_percentile,
                            req.max_motion)
        result.flow_scale = scale
        yield from iter_flow_guide(flows.rows, frame_rows, height, width, scale, req.motion_strength)


def backend_for(prepared: PreparedGuide, ctx: RunContext) -> BackendChoice:
    """The flow backend of a prepared request (chosen once, recorded in its result)."""
    if prepared.choice is None:
        choice = choose_backend(prepared.request, ctx.weights_locator)
        result = prepared.result
        result.backend, result.backend_reason, result.weights = choice.name, choice.reason, choice.weights_label
        prepared.choice = choice
    return prepared.choice


def flow_key_params(prepared: PreparedGuide, choice: BackendChoice, cache: FlowCache) -> dict[str, Any]:
    """Everything that changes the flows of the whole timeline — and nothing that only changes rendering."""
    req, info, plan = prepared.request, prepared.info, prepared.plan
    if choice.kind == "raft":
        device = resolve_device(req.device)
        precision = req.precision if device.type == "cuda" and req.precision != "auto" else \
            ("fp16" if device.type == "cuda" else "fp32")
        compute = {"device": device.type, "precision": precision, "iterations": req.iterations}
    else:
        compute = {"device": "cpu", "precision": "fp32"}
    return {
        "kind": "flow",
        "content": cache.content_hash(info.path),
        "source": {"frame_count": info.frame_count, "fps": round(info.fps, 6), "rotation": info.rotation,
                   "size": [info.width, info.height]},
        "plan": {"treatment": req.treatment, "frames": req.frames, "fps": req.fps, "first": plan.first,
                 "stop": plan.stop},
        "fit": req.fit,
        "size": list(prepared.size),
        "backend": choice.identity(),
        "compute": compute,
    }


@contextlib.contextmanager
def open_flows(prepared: PreparedGuide, ctx: RunContext) -> Iterator[FlowSet]:
    """The flows of the request: from the cache (computing the whole timeline once) or, without a
    cache, computed for the request's window only into a temporary folder."""
    choice = backend_for(prepared, ctx)
    result = prepared.result
    layout = plan_flow_layout(prepared.plan)
    if ctx.cache is not None:
        params = flow_key_params(prepared, choice, ctx.cache)
        key = make_key(params)
        started = time.perf_counter()
        entry, hit = ctx.cache.get_or_create(key, lambda folder: _produce(prepared, choice, layout, folder, ctx),
                                             params)
        result.cache_hit, result.cache_key = hit, key
        if hit:
            result.timings["cache_read"] = time.perf_counter() - started
            result.device = "cache"
        with ctx.cache.use(entry):
            yield FlowSet(entry.rows(), tuple(entry.manifest["frame_rows"]), entry.manifest)
        return
    window_layout = restrict_layout(layout, *prepared.window)
    work_dir = Path(tempfile.mkdtemp(prefix="sv-flows-", dir=ctx.work_dir))
    try:
        try:
            meta = _produce(prepared, choice, window_layout, work_dir, ctx)
        except OSError as exc:
            raise CacheError(f"Cannot write temporary flows in {work_dir.parent}: {exc.strerror or exc}; "
                             "free disk space.") from exc
        rows = open_flow_rows(work_dir / "flows.npy")
        yield FlowSet(rows, window_layout.frame_rows, meta)
    finally:
        rows = None
        shutil.rmtree(work_dir, ignore_errors=True)


def build_guide(request: GuideRequest, context: Optional[RunContext] = None) -> GuideResult:
    """Write the guide video for ``request`` and return what was produced.

    The output is written under a temporary name and renamed when complete: on any error or
    cancellation nothing is left at ``request.output``.
    """
    if request.output is None:
        raise OptionError("No output path given: set output (or use iter_guide_frames for frames in memory).")
    output = Path(request.output).expanduser().resolve()
    if output.suffix.lower() != ".mp4":
        raise OptionError(f"Output {output.name} must end in .mp4 (the guide is an H.264 MP4).")
    ctx = (context or RunContext()).resolved()
    prepared = prepare(request)
    if Path(prepared.info.path).resolve() == output:
        raise OptionError("The output path is the input video: choose another output path.")
    req, result = prepared.request, prepared.result
    render_key = _render_key(prepared, ctx)
    cached = ctx.cache.lookup_render(render_key) if render_key is not None and ctx.cache is not None else None
    try:
        output.parent.mkdir(parents=True, exist_ok=True)
        if cached is not None:
            _copy_atomically(cached, output)
        else:
            _write_guide(prepared, ctx, output)
    except OSError as exc:  # disk full, permissions: the writers removed their partial files
        raise OutputError(f"Cannot write the guide video {output}: {exc.strerror or exc}; free disk space "
                          "or choose another output folder.") from exc
    if cached is not None:
        result.cache_hit, result.render_cached = True, True
    else:
        if render_key is not None and ctx.cache is not None:
            with contextlib.suppress(Exception):  # a render that cannot be cached is still a good result
                ctx.cache.store_render(render_key, output)
    result.output = output
    result.timings["total"] = time.perf_counter() - prepared.started
    result.timeline = ctx.timeline
    result.peak_rss_bytes = max([s.rss for s in ctx.timeline.samples] + [result.peak_rss_bytes])
    logger.info(result.summary())
    return result


def _write_guide(prepared: PreparedGuide, ctx: RunContext, output: Path) -> None:
    req, result = prepared.request, prepared.result
    width, height = prepared.size
    total = req.output_frames
    frames = iter_guide_frames(req, ctx, prepared)
    written = 0
    encode_started: Optional[float] = None
    try:
        with GuideVideoWriter(output, width, height, req.fps) as writer:
            for frame in frames:
                if encode_started is None:
                    encode_started = time.perf_counter()
                writer.write(frame)
                written += 1
                ctx.progress.update("encode", written, total, f"writing guide frame {written}/{total}")
            if written != total:
                raise RuntimeError(f"produced {written} guide frames instead of {total}")
    finally:
        frames.close()
    if encode_started is not None:
        result.timings["render_encode"] = time.perf_counter() - encode_started


def _render_key(prepared: PreparedGuide, ctx: RunContext) -> Optional[str]:
    """Key of the rendered flow guide (flow key + every rendering parameter), or None when not cached."""
    req = prepared.request
    if ctx.cache is None or req.guide_type != "flow":
        return None
    choice = backend_for(prepared, ctx)
    flow_key = make_key(flow_key_params(prepared, choice, ctx.cache))
    return make_key({"kind": "render", "version": RENDER_VERSION, "flow": flow_key, "window": list(prepared.window),
                     "strength": req.motion_strength, "percentile": req.scale_percentile,
                     "max_motion": req.max_motion, "fps": req.fps})


def _copy_atomically(source: Path, output: Path) -> None:
    tmp = output.with_name(f".{output.name}.{os.getpid()}.partial.mp4")
    try:
        shutil.copyfile(source, tmp)
        os.replace(tmp, output)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise


def _produce(prepared: PreparedGuide, choice: BackendChoice, layout: FlowLayout, folder: Path,
             ctx: RunContext) -> dict[str, Any]:
    """Compute every job of ``layout`` into ``folder/flows.npy``; return the manifest fields."""
    req, result = prepared.request, prepared.result
    width, height = prepared.size
    started = time.perf_counter()
    writer = FlowStoreWriter(folder / "flows.npy", layout.rows, height, width)
    try:
        if layout.rows == 0:  # every guide frame is zero motion (e.g. a one-frame range)
            result.device = "cpu"
        elif choice.kind == "dis":
            pairs = iter_job_frames(str(req.input), prepared.info, layout.jobs, prepared.fitter)
            result.device, result.batch_size = "cpu", req.batch_size or DIS_BATCH
            extract_flows(pairs, layout.rows, writer, stack_and_compute(DisFlowBackend().compute),
                          batch_size=result.batch_size, progress=ctx.progress,
                          on_batch=lambda done, size: ctx.timeline.record(f"batch {done}/{layout.rows}"))
        else:
            pairs = iter_job_frames(str(req.input), prepared.info, layout.jobs, prepared.fitter)
            _extract_with_raft(prepared, choice, pairs, layout.rows, writer, ctx)
    finally:
        writer.close()
    result.timings["flow"] = time.perf_counter() - started
    return {"shape": [layout.rows, height, width, 2], "jobs": [list(job) for job in layout.jobs],
            "frame_rows": list(layout.frame_rows), "backend": choice.name, "backend_reason": choice.reason}


def _extract_with_raft(prepared: PreparedGuide, choice: BackendChoice, pairs: Iterator, total: int,
                       writer: FlowStoreWriter, ctx: RunContext) -> None:
    """RAFT through the annotator pool: loaded under the GPU lock, torn down in ``finally``."""
    req, result = prepared.request, prepared.result
    width, height = prepared.size
    device = resolve_device(req.device)
    name = register_raft(ctx.pool, choice)
    monitor = MemoryMonitor(str(device))
    timeline = ctx.timeline
    on_cuda = device.type == "cuda"
    history_key = None
    if on_cuda and ctx.history is not None:
        history_key = ctx.history.key(choice.name, torch.cuda.get_device_name(device), height, width, req.precision)
    batch_size = req.batch_size or _default_batch(device, monitor, height, width, ctx.history, history_key)
    result.device, result.batch_size = str(device), batch_size
    if on_cuda:
        torch.cuda.reset_peak_memory_stats(device)
    timeline.record("start", monitor.snapshot())
    current = {"size": batch_size}

    def between(size: int) -> Optional[int]:
        current["size"] = size
        decision = ctx.pressure.check(monitor, ctx.pool, size) if on_cuda else None
        return None if decision is None else decision.new_batch_size

    def on_batch(done: int, size: int) -> None:
        current["size"] = size
        timeline.record(f"batch {done}/{total}", monitor.snapshot())

    with ctx.gpu_lock(), ctx.pool.use(name, device, teardown=req.teardown) as lease:
        timeline.record(f"{choice.name} loaded", monitor.snapshot())
        backend = RaftFlowBackend(lease.model, lease.device, iterations=req.iterations,
                                  precision=req.precision, name=choice.name)

        def cpu_fallback():
            logger.warning("Out of memory at batch size 1 on %s: continuing %s on the CPU.", device, choice.name)
            result.warnings.append(f"Ran out of GPU memory at batch size 1; finished {choice.name} on the CPU.")
            cpu_backend = RaftFlowBackend(lease.move_to("cpu"), "cpu", iterations=req.iterations,
                                          precision="fp32", name=choice.name)
            return stack_and_compute(cpu_backend.compute)

        extract_flows(pairs, total, writer, stack_and_compute(backend.compute), batch_size=batch_size,
                      progress=ctx.progress, cpu_fallback=cpu_fallback if on_cuda else None,
                      cleanup=lambda: _free_device_cache(device), between_batches=between, on_batch=on_batch)
    timeline.record(f"{choice.name} {req.teardown if req.teardown != 'keep' else 'kept'}", monitor.snapshot())
    if on_cuda:
        result.peak_device_bytes = int(torch.cuda.max_memory_allocated(device))
        if ctx.history is not None and history_key is not None and current["size"] > 0:
            ctx.history.record(history_key, current["size"], result.peak_device_bytes // max(1, current["size"]))


def _default_batch(device: torch.device, monitor: MemoryMonitor, height: int, width: int,
                   history: Optional[BatchSizeHistory], key: Optional[str]) -> int:
    """CPU: a small fixed batch. CUDA: what the free memory holds, per the history or the estimate."""
    if device.type != "cuda":
        return CPU_RAFT_BATCH
    snapshot = monitor.snapshot()
    per_pair = estimate_bytes_per_pair(height, width)
    estimate = max(1, min(MAX_AUTO_BATCH, int(snapshot.free * 0.85 // max(1, per_pair))))
    if history is not None and key is not None:
        return max(1, min(MAX_AUTO_BATCH, history.suggest(key, snapshot.free, default=estimate)))
    return estimate


def _free_device_cache(device: torch.device) -> None:
    """What the OOM back-off does before retrying with a smaller batch."""
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()
