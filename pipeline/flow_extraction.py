"""Flow extraction on the source timeline: stream fitted node frames through a backend in batches.

Row ``j`` of the output is the flow from source node ``j`` to node ``j+1`` (see
``preprocessors/motion_resample``). Only one batch of frame pairs exists at a time (decoded,
fitted, on the device); flows go straight to a :class:`FlowStoreWriter` row by row.

The batch loop is :func:`extract_flows` (OOM back-off, pressure checks between batches, progress)
and the batch size is chosen in :func:`choose_batch_size` — nowhere else.
"""
from __future__ import annotations

import gc
import logging
import time
from dataclasses import dataclass, field
from typing import Callable, Iterator, Optional, Sequence

import numpy as np
import torch

from ..memory import BatchSizeHistory, MemoryMonitor, run_with_backoff
from ..preprocessors.fit import FrameFitter
from ..preprocessors.flow_dis import DisFlowBackend
from ..preprocessors.flow_raft import RaftFlowBackend, estimate_bytes_per_pair
from ..preprocessors.flow_store import FlowStoreWriter
from ..preprocessors.video_io import VideoInfo, iter_planned_frames
from ..progress import Progress
from .backend_choice import BackendChoice, register_raft, resolve_device
from .context import RunContext
from .request import GuideRequest

logger = logging.getLogger(__name__)

CPU_RAFT_BATCH = 2
DIS_BATCH = 8
MAX_AUTO_BATCH = 16

FramePair = tuple[np.ndarray, np.ndarray]
ComputeFn = Callable[[list[FramePair]], Sequence[np.ndarray]]


@dataclass
class ExtractionReport:
    """What one extraction did (returned, never written into a shared result)."""

    device: str
    batch_size: int
    seconds: float = 0.0
    peak_device_bytes: int = 0
    warnings: list[str] = field(default_factory=list)


def iter_node_pairs(path: str, info: VideoInfo, nodes: Sequence[int], fitter: FrameFitter) -> Iterator[FramePair]:
    """Fitted (node j, node j+1) frames, decoding the source once, front to back."""
    previous: Optional[np.ndarray] = None
    for frame in iter_planned_frames(path, nodes, info):
        fitted = fitter(frame)
        del frame
        if previous is not None:
            yield previous, fitted
        previous = fitted


def stack_and_compute(compute: Callable[[np.ndarray, np.ndarray], np.ndarray]) -> ComputeFn:
    """Adapt a backend's ``compute(first_batch, second_batch)`` to a list of frame pairs."""
    def run(batch: list[FramePair]) -> list[np.ndarray]:
        firsts = np.stack([pair[0] for pair in batch])
        seconds = np.stack([pair[1] for pair in batch])
        flows = compute(firsts, seconds)
        # Copy each row out so no result keeps the whole batch array alive.
        return [np.array(flow, dtype=np.float32, copy=True) for flow in flows]
    return run


def choose_batch_size(request: GuideRequest, kind: str, device: torch.device, height: int, width: int,
                      monitor: Optional[MemoryMonitor] = None, history: Optional[BatchSizeHistory] = None,
                      history_key: Optional[str] = None) -> int:
    """The one place a batch size is chosen: the request's, else DIS/CPU constants, else what the
    free GPU memory holds (per the batch-size history when it knows this device and size)."""
    if request.batch_size:
        return request.batch_size
    if kind == "dis":
        return DIS_BATCH
    if device.type != "cuda" or monitor is None:
        return CPU_RAFT_BATCH
    snapshot = monitor.snapshot()
    per_pair = estimate_bytes_per_pair(height, width)
    estimate = max(1, min(MAX_AUTO_BATCH, int(snapshot.free * 0.85 // max(1, per_pair))))
    if history is not None and history_key is not None:
        return max(1, min(MAX_AUTO_BATCH, history.suggest(history_key, snapshot.free, default=estimate)))
    return estimate


def extract_flows(pairs: Iterator[FramePair], total: int, writer: FlowStoreWriter, compute: ComputeFn, *,
                  batch_size: int, progress: Progress,
                  cpu_fallback: Optional[Callable[[], ComputeFn]] = None,
                  cleanup: Optional[Callable[[], None]] = None,
                  between_batches: Optional[Callable[[int], Optional[int]]] = None,
                  on_batch: Optional[Callable[[int, int], None]] = None) -> int:
    """The batch loop: every pair through ``compute`` with OOM back-off, row ``i`` for pair ``i``."""
    done = 0

    def report(count: int, size: int) -> None:
        if on_batch is not None:
            on_batch(count, size)
        progress.update("flow", count, total, f"optical flow {count}/{total} (batch {size})")

    progress.update("flow", 0, total, f"optical flow 0/{total}")
    for flow in run_with_backoff(pairs, compute, batch_size, cleanup=cleanup, cpu_fallback=cpu_fallback,
                                 between_batches=between_batches, on_batch=report):
        writer.put(done, flow)
        done += 1
    if done != total:
        raise RuntimeError(f"flow extraction produced {done} of {total} flows")
    return done


def extract_node_flows(request: GuideRequest, info: VideoInfo, fitter: FrameFitter, choice: BackendChoice,
                       nodes: Sequence[int], writer: FlowStoreWriter, ctx: RunContext,
                       size: tuple[int, int]) -> ExtractionReport:
    """Flows between consecutive ``nodes`` into ``writer`` with the chosen backend."""
    started = time.perf_counter()
    total = len(nodes) - 1
    if total <= 0:
        return ExtractionReport("cpu", 0)
    pairs = iter_node_pairs(str(request.input), info, nodes, fitter)
    if choice.kind == "dis":
        cpu = torch.device("cpu")
        batch = choose_batch_size(request, "dis", cpu, size[1], size[0])
        extract_flows(pairs, total, writer, stack_and_compute(DisFlowBackend().compute), batch_size=batch,
                      progress=ctx.progress, on_batch=lambda done, _: ctx.timeline.record(f"batch {done}/{total}"))
        report = ExtractionReport("cpu", batch)
    else:
        report = _extract_with_raft(request, choice, pairs, total, writer, ctx, size)
    report.seconds = time.perf_counter() - started
    return report


def _extract_with_raft(request: GuideRequest, choice: BackendChoice, pairs: Iterator[FramePair], total: int,
                       writer: FlowStoreWriter, ctx: RunContext, size: tuple[int, int]) -> ExtractionReport:
    """RAFT through the annotator pool: loaded under the GPU lock, torn down in ``finally``."""
    width, height = size
    device = resolve_device(request.device)
    name = register_raft(ctx.pool, choice)
    monitor = MemoryMonitor(str(device))
    timeline = ctx.timeline
    on_cuda = device.type == "cuda"
    history_key = None
    if on_cuda and ctx.history is not None:
        history_key = ctx.history.key(choice.name, torch.cuda.get_device_name(device), height, width,
                                      request.precision)
    batch_size = choose_batch_size(request, "raft", device, height, width, monitor, ctx.history, history_key)
    report = ExtractionReport(str(device), batch_size)
    if on_cuda:
        torch.cuda.reset_peak_memory_stats(device)
    timeline.record("start", monitor.snapshot())
    current = {"size": batch_size}

    def between(size_now: int) -> Optional[int]:
        current["size"] = size_now
        decision = ctx.pressure.check(monitor, ctx.pool, size_now) if on_cuda else None
        return None if decision is None else decision.new_batch_size

    def on_batch(done: int, size_now: int) -> None:
        current["size"] = size_now
        timeline.record(f"batch {done}/{total}", monitor.snapshot())

    with ctx.gpu_lock(), ctx.pool.use(name, device, teardown=request.teardown) as lease:
        timeline.record(f"{choice.name} loaded", monitor.snapshot())
        backend = RaftFlowBackend(lease.model, lease.device, iterations=request.iterations,
                                  precision=request.precision, name=choice.name)

        def cpu_fallback() -> ComputeFn:
            logger.warning("Out of memory at batch size 1 on %s: continuing %s on the CPU.", device, choice.name)
            report.warnings.append(f"Ran out of GPU memory at batch size 1; finished {choice.name} on the CPU.")
            cpu_backend = RaftFlowBackend(lease.move_to("cpu"), "cpu", iterations=request.iterations,
                                          precision="fp32", name=choice.name)
            return stack_and_compute(cpu_backend.compute)

        extract_flows(pairs, total, writer, stack_and_compute(backend.compute), batch_size=batch_size,
                      progress=ctx.progress, cpu_fallback=cpu_fallback if on_cuda else None,
                      cleanup=lambda: _free_device_cache(device), between_batches=between, on_batch=on_batch)
    timeline.record(f"{choice.name} {request.teardown if request.teardown != 'keep' else 'kept'}",
                    monitor.snapshot())
    if on_cuda:
        report.peak_device_bytes = int(torch.cuda.max_memory_allocated(device))
        if ctx.history is not None and history_key is not None and current["size"] > 0:
            ctx.history.record(history_key, current["size"], report.peak_device_bytes // max(1, current["size"]))
    return report


def _free_device_cache(device: torch.device) -> None:
    """What the OOM back-off does before retrying with a smaller batch."""
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()
