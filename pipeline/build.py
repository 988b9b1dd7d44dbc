"""The one entry point: :func:`build_guide` (a guide video file) and :func:`iter_guide_frames` (frames).

Order of work for a flow guide: probe → plan → pick the backend → extract the distinct pairs into a
memory-mapped flow file (annotator loaded through the pool, under the GPU lock, torn down in
``finally``) → one clip-wide scale from a magnitude histogram → render and encode frame by frame.
"""
from __future__ import annotations

import gc
import logging
import shutil
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, ContextManager, Iterator, Optional

import numpy as np
import torch

from ..errors import InvalidVideoError, OptionError
from ..memory import (AnnotatorPool, BatchSizeHistory, MemoryMonitor, PressurePolicy, Timeline,
                      get_default_pool)
from ..preprocessors.fit import FrameFitter
from ..preprocessors.flow_dis import DisFlowBackend
from ..preprocessors.flow_raft import RaftFlowBackend, estimate_bytes_per_pair
from ..preprocessors.flow_store import FLOW_DTYPE, FlowStoreWriter, open_flow_rows
from ..preprocessors.frame_plan import FramePlan, make_plan
from ..preprocessors.video_io import GuideVideoWriter, VideoInfo, probe_video
from ..progress import Progress, ensure_progress
from .backend_choice import BackendChoice, WeightsLocator, choose_backend, register_raft, resolve_device
from .flow_extraction import FlowLayout, extract_flows, iter_job_frames, plan_flow_layout, stack_and_compute
from .guide_render import flow_histogram, guide_scale, iter_flow_guide, iter_image_guide
from .request import GuideRequest, GuideResult

logger = logging.getLogger(__name__)

#: Serialises annotator work on the GPU when the host provides no lock of its own.
_PROCESS_GPU_LOCK = threading.RLock()
CPU_RAFT_BATCH = 2
DIS_BATCH = 8
MAX_AUTO_BATCH = 16


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

    @property
    def size(self) -> tuple[int, int]:
        return self.result.width, self.result.height


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
    result = GuideResult(output=None, frames=request.frames, width=width, height=height, fps=request.fps,
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

    For a flow guide the flows are extracted (and the annotator torn down) before the first frame
    is yielded; the temporary flow file is removed when the iterator ends or is closed.
    """
    ctx = (context or RunContext()).resolved()
    prepared = prepared or prepare(request)
    req, result = prepared.request, prepared.result
    if req.guide_type != "flow":
        result.backend, result.device = "none", "cpu"
        yield from iter_image_guide(str(req.input), prepared.info, prepared.plan.indices, prepared.fitter,
                                    req.guide_type, req.canny_intensity)
        return
    choice = choose_backend(req, ctx.weights_locator)
    result.backend, result.backend_reason, result.weights = choice.name, choice.reason, choice.weights_label
    layout = plan_flow_layout(prepared.plan)
    width, height = prepared.size
    work_dir = Path(tempfile.mkdtemp(prefix="sv-flows-", dir=ctx.work_dir))
    rows: Optional[np.ndarray] = None
    try:
        rows = _extract(prepared, choice, layout, work_dir, ctx)
        ctx.progress.update("scale", 0, 1, "measuring motion over the whole clip")
        histogram = flow_histogram(rows, layout.frame_rows, height, width)
        scale = guide_scale(histogram, req.scale_percentile, req.max_motion)
        result.flow_scale = scale
        yield from iter_flow_guide(rows, layout.frame_rows, height, width, scale, req.motion_strength)
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
    output.parent.mkdir(parents=True, exist_ok=True)
    req, result = prepared.request, prepared.result
    width, height = prepared.size
    frames = iter_guide_frames(req, ctx, prepared)
    written = 0
    try:
        with GuideVideoWriter(output, width, height, req.fps) as writer:
            encode_started: Optional[float] = None
            for frame in frames:
                if encode_started is None:
                    encode_started = time.perf_counter()
                writer.write(frame)
                written += 1
                ctx.progress.update("encode", written, req.frames, f"writing guide frame {written}/{req.frames}")
    finally:
        frames.close()
    if written != req.frames:
        raise RuntimeError(f"produced {written} guide frames instead of {req.frames}")
    if encode_started is not None:
        result.timings["render_encode"] = time.perf_counter() - encode_started
    result.output = output
    result.timings["total"] = time.perf_counter() - prepared.started
    result.timeline = ctx.timeline
    result.peak_rss_bytes = max([s.rss for s in ctx.timeline.samples] + [result.peak_rss_bytes])
    logger.info(result.summary())
    return result


def _extract(prepared: PreparedGuide, choice: BackendChoice, layout: FlowLayout, work_dir: Path,
             ctx: RunContext) -> np.ndarray:
    """Compute every distinct pair into ``work_dir/flows.npy`` and map it read-only."""
    req, result = prepared.request, prepared.result
    width, height = prepared.size
    started = time.perf_counter()
    if layout.rows == 0:  # every guide frame is zero motion (e.g. a one-frame range)
        result.device = "cpu"
        return np.zeros((0, height, width, 2), dtype=FLOW_DTYPE)
    path = work_dir / "flows.npy"
    writer = FlowStoreWriter(path, layout.rows, height, width)
    try:
        pairs = iter_job_frames(str(req.input), prepared.info, layout.jobs, prepared.fitter)
        if choice.kind == "dis":
            result.device, result.batch_size = "cpu", req.batch_size or DIS_BATCH
            extract_flows(pairs, layout.rows, writer, stack_and_compute(DisFlowBackend().compute),
                          batch_size=result.batch_size, progress=ctx.progress,
                          on_batch=lambda done, size: ctx.timeline.record(f"batch {done}/{layout.rows}"))
        else:
            _extract_with_raft(prepared, choice, pairs, layout.rows, writer, ctx)
    finally:
        writer.close(sync=False)
    result.timings["flow"] = time.perf_counter() - started
    return open_flow_rows(path)


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
