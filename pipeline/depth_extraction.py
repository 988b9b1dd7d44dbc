"""Depth maps on the source timeline: stream fitted source frames through Depth Anything V2 in batches.

Map ``j`` is the inverse depth of source node ``j`` at the fitted guide size. Only one batch of
frames exists at a time (decoded, fitted, on the device), plus a few decoded ahead on a thread;
maps go to ``put(j, depth)`` one by one, so memory stays flat in the video's length. The model is held in the annotator pool under the GPU
lock and torn down as the request says; an out-of-memory error shrinks the batch and
retries the same frames (identical output), and at batch size 1 on CUDA the model finishes on the CPU.
"""
from __future__ import annotations

import contextlib
import logging
import time
from typing import Any, Callable, Iterator, Optional, Sequence

import numpy as np

from ..memory import MemoryMonitor, empty_device_cache, run_with_backoff
from ..options import DEPTH_VARIANTS
from ..preprocessors.video.fit import FrameFitter
from ..preprocessors.annotators.shot_cuts import CutProbe
from ..preprocessors.video.video_io import VideoInfo, iter_planned_frames
from .backend_choice import resolve_device
from .context import RunContext
from .depth_choice import DepthChoice, register_depth
from .flow_extraction import ExtractionReport, MAX_AUTO_BATCH
from .prefetch import prefetched
from .request import GuideRequest

logger = logging.getLogger(__name__)

CPU_DEPTH_BATCH = 2
#: Frames decoded ahead of the model.
PREFETCH_FRAMES = 4
#: Variant whose memory estimate stands in for a non-standard (custom) model: the largest.
ESTIMATE_FALLBACK_VARIANT = DEPTH_VARIANTS[-1]

BatchFn = Callable[[list[np.ndarray]], list[np.ndarray]]


def iter_node_frames(path: str, info: VideoInfo, nodes: Sequence[int], fitter: FrameFitter,
                     probe: Optional[CutProbe] = None) -> Iterator[np.ndarray]:
    """Fitted frames of ``nodes`` (increasing), decoding the source once, front to back (each also shown
    to ``probe``, for hard cuts)."""
    for frame in iter_planned_frames(path, nodes, info):
        fitted = fitter(frame)
        if probe is not None:
            probe.add(fitted)
        yield fitted


def choose_depth_batch_size(request: GuideRequest, variant: str, device: Any, height: int, width: int,
                            monitor: Optional[MemoryMonitor] = None) -> int:
    """The request's batch size, else 2 on the CPU, else what 85 % of the free GPU memory holds
    by :func:`~..preprocessors.annotators.depth_model.estimate_bytes_per_frame`."""
    if request.batch_size:
        return request.batch_size
    if device.type != "cuda" or monitor is None:
        return CPU_DEPTH_BATCH
    from ..preprocessors.annotators.depth_model import estimate_bytes_per_frame
    from ..preprocessors.weights.depth_weights import VARIANTS

    per_frame = estimate_bytes_per_frame(height, width, variant=variant if variant in VARIANTS
                                         else ESTIMATE_FALLBACK_VARIANT, input_size=request.depth_input_size)
    return max(1, min(MAX_AUTO_BATCH, int(monitor.snapshot().free * 0.85 // max(1, per_frame))))


def _batch_fn(backend) -> BatchFn:
    def run(frames: list[np.ndarray]) -> list[np.ndarray]:
        depth = backend.compute(np.stack(frames))
        return [np.array(d, dtype=np.float32, copy=True) for d in depth]  # no row keeps the batch alive
    return run


def extract_depth_maps(request: GuideRequest, info: VideoInfo, fitter: FrameFitter, choice: DepthChoice,
                       nodes: Sequence[int], put: Callable[[int, np.ndarray], None], ctx: RunContext,
                       size: tuple[int, int], probe: Optional[CutProbe] = None) -> ExtractionReport:
    """The inverse depth (H, W) float32 of every node, in order, into ``put``."""
    import torch

    from ..preprocessors.annotators.depth_model import DepthAnythingBackend

    started = time.perf_counter()
    width, height = size
    total = len(nodes)
    device = resolve_device(request.device)
    name = register_depth(ctx.pool, choice)
    monitor = MemoryMonitor(str(device))
    on_cuda = device.type == "cuda"
    batch_size = choose_depth_batch_size(request, choice.source.variant, device, height, width, monitor)
    report = ExtractionReport(str(device), batch_size)
    if on_cuda:
        torch.cuda.reset_peak_memory_stats(device)
    ctx.timeline.record("start", monitor.snapshot())

    def between(size_now: int) -> Optional[int]:
        decision = ctx.pressure.check(monitor, ctx.pool, size_now) if on_cuda else None
        return None if decision is None else decision.new_batch_size

    def on_batch(done: int, size_now: int) -> None:
        ctx.timeline.record(f"depth batch {done}/{total}", monitor.snapshot())
        ctx.progress.update("depth", done, total, f"depth {done}/{total} (batch {size_now})")

    # Decoding runs ahead on its own thread, beside the model (closed when the block ends).
    frames = prefetched(iter_node_frames(str(request.input), info, nodes, fitter, probe), PREFETCH_FRAMES, "decode")
    ctx.progress.update("depth", 0, total, f"depth 0/{total}")
    with contextlib.closing(frames), ctx.gpu_lock(), ctx.pool.use(name, device, teardown=request.teardown) as lease:
        ctx.timeline.record(f"{choice.name} loaded", monitor.snapshot())
        backend = DepthAnythingBackend(lease.model, lease.device, precision=request.precision,
                                       input_size=request.depth_input_size, name=choice.name)

        def cpu_fallback() -> BatchFn:
            logger.warning("Out of memory at batch size 1 on %s: continuing %s on the CPU.", device, choice.name)
            report.warnings.append(f"Ran out of GPU memory at batch size 1; finished {choice.name} on the CPU.")
            return _batch_fn(DepthAnythingBackend(lease.move_to("cpu"), "cpu", precision="fp32",
                                                  input_size=request.depth_input_size, name=choice.name))

        done = 0
        for depth in run_with_backoff(frames, _batch_fn(backend), batch_size,
                                      cleanup=lambda: empty_device_cache(device=device),
                                      cpu_fallback=cpu_fallback if on_cuda else None,
                                      between_batches=between, on_batch=on_batch):
            put(done, depth)
            done += 1
    if done != total:
        raise RuntimeError(f"depth extraction produced {done} of {total} maps")
    ctx.timeline.record(f"{choice.name} {request.teardown if request.teardown != 'keep' else 'kept'}",
                        monitor.snapshot())
    if on_cuda:
        report.peak_device_bytes = int(torch.cuda.max_memory_allocated(device))
    report.seconds = time.perf_counter() - started
    return report
