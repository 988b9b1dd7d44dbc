"""Flow extraction on the source timeline: stream fitted node frames through a backend in batches.

Row ``j`` of the output is the flow from source node ``j`` to node ``j+1`` (see
``preprocessors/timeline/motion_resample``). Only one batch of frame pairs exists at a time (decoded,
fitted, on the device), plus one more batch decoded ahead on a thread (``prefetch``) while the
backend works; flows go straight to a :class:`FlowStoreWriter` row by row.

The batch loop is :func:`extract_flows` (OOM back-off, pressure checks before each batch, progress)
and the batch size is chosen in :func:`choose_batch_size` — nowhere else. The memory side of a run
(history, pressure, timeline events and phases) is one :class:`RunMemory`.
"""
from __future__ import annotations

import contextlib
import logging
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, Optional, Sequence

import numpy as np

from ..memory import RunMemory, Timeline, empty_device_cache, run_with_backoff
from ..memory.devices import as_device
from ..preprocessors.video.fit import FrameFitter
from ..preprocessors.annotators.flow_dis import DisFlowBackend
from ..preprocessors.cache.flow_store import FlowStoreWriter
from ..preprocessors.annotators.shot_cuts import CutProbe
from ..preprocessors.video.video_io import VideoInfo, iter_planned_frames
from ..progress import Progress
from .backend_choice import BackendChoice, register_raft, resolve_device
from .context import RunContext
from .prefetch import prefetched
from .request import GuideRequest

logger = logging.getLogger(__name__)

CPU_RAFT_BATCH = 2
DIS_BATCH = 8
MAX_AUTO_BATCH = 16
#: Frame pairs decoded ahead of the flow model (a batch of DIS; a few MB at 832×480).
PREFETCH_PAIRS = 8

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
    batch_note: str = ""
    memory_notes: list[str] = field(default_factory=list)
    memory_reports: list[str] = field(default_factory=list)

    def add_memory(self, memory: RunMemory) -> None:
        """Take the run's batch-size and pressure notes and its before/after reports."""
        self.batch_size = memory.start_size
        self.batch_note = memory.short_note
        self.memory_notes = memory.summary_lines()
        self.memory_reports = list(memory.reports)


def iter_node_pairs(path: str, info: VideoInfo, nodes: Sequence[int], fitter: FrameFitter,
                    probe: Optional[CutProbe] = None) -> Iterator[FramePair]:
    """Fitted (node j, node j+1) frames, decoding the source once, front to back; each fitted node
    frame is also shown to ``probe`` (hard-cut evidence on the frames the flow model sees)."""
    previous: Optional[np.ndarray] = None
    for frame in iter_planned_frames(path, nodes, info):
        fitted = fitter(frame)
        del frame
        if probe is not None:
            probe.add(fitted)
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


def choose_batch_size(request: GuideRequest, kind: str, memory: RunMemory, key: str, height: int, width: int) -> int:
    """The one place a batch size is chosen: the request's, else the batch-size history's
    recommendation, else a default (DIS and the CPU: constants; CUDA: what free memory holds)."""
    if kind == "dis":
        default = cap = DIS_BATCH
    elif not memory.on_cuda:
        default = cap = CPU_RAFT_BATCH
    else:
        from ..preprocessors.annotators.flow_raft import estimate_bytes_per_pair  # RAFT on CUDA: torch is loaded

        per_pair = estimate_bytes_per_pair(height, width)
        default = max(1, min(MAX_AUTO_BATCH, int(memory.monitor.snapshot().free * 0.85 // max(1, per_pair))))
        cap = MAX_AUTO_BATCH
    return memory.choose_batch(key, request.batch_size, default, cap)


def _precision(request: GuideRequest, kind: str, device: Any) -> str:
    if kind == "dis" or device.type != "cuda":
        return "fp32"
    return "fp16" if request.precision == "auto" else request.precision


def timed_pairs(pairs: Iterator[FramePair], timeline: Timeline) -> Iterator[FramePair]:
    """``pairs``, with the decoding of each marked as the ``decode`` phase."""
    source = iter(pairs)
    while True:
        with timeline.phase("decode"):
            pair = next(source, None)
        if pair is None:
            return
        yield pair


def timed_compute(compute: ComputeFn, timeline: Timeline) -> ComputeFn:
    """``compute``, marked as the ``flow`` phase."""
    def run(batch: list[FramePair]) -> Sequence[np.ndarray]:
        with timeline.phase("flow"):
            return compute(batch)
    return run


def extract_flows(pairs: Iterator[FramePair], total: int, writer: FlowStoreWriter, compute: ComputeFn, *,
                  batch_size: int, progress: Progress,
                  cpu_fallback: Optional[Callable[[], ComputeFn]] = None,
                  cleanup: Optional[Callable[[], None]] = None,
                  between_batches: Optional[Callable[[int], Optional[int]]] = None,
                  on_batch: Optional[Callable[[int, int], None]] = None,
                  memory: Optional[RunMemory] = None) -> int:
    """The batch loop: every pair through ``compute`` with OOM back-off, row ``i`` for pair ``i``.

    With ``memory`` the pressure policy runs before each batch (it may shrink the batch), each batch
    is sampled on the timeline with decode and flow phases marked, and OOM back-offs are recorded."""
    done = 0

    def report(count: int, size: int) -> None:
        if memory is not None:
            memory.after_batch(count, total, size)
        if on_batch is not None:
            on_batch(count, size)
        progress.update("flow", count, total, f"optical flow {count}/{total} (batch {size})")

    on_oom = None
    if memory is not None:
        pairs, compute = timed_pairs(pairs, memory.timeline), timed_compute(compute, memory.timeline)
        between_batches = between_batches or memory.before_batch
        on_oom = memory.on_oom
        if cpu_fallback is not None:
            fallback = cpu_fallback
            cpu_fallback = lambda: timed_compute(fallback(), memory.timeline)  # noqa: E731
        if memory.check_pressure("before the first batch").new_batch_size is not None:
            batch_size = memory.size
    progress.update("flow", 0, total, f"optical flow 0/{total}")
    for flow in run_with_backoff(pairs, compute, batch_size, cleanup=cleanup, cpu_fallback=cpu_fallback,
                                 between_batches=between_batches, on_batch=report, on_oom=on_oom):
        writer.put(done, flow)
        done += 1
    if done != total:
        raise RuntimeError(f"flow extraction produced {done} of {total} flows")
    return done


def extract_node_flows(request: GuideRequest, info: VideoInfo, fitter: FrameFitter, choice: BackendChoice,
                       nodes: Sequence[int], writer: FlowStoreWriter, ctx: RunContext,
                       size: tuple[int, int], probe: Optional[CutProbe] = None) -> ExtractionReport:
    """Flows between consecutive ``nodes`` into ``writer`` with the chosen backend (and the node frames
    into ``probe``, for hard cuts)."""
    started = time.perf_counter()
    total = len(nodes) - 1
    if total <= 0:
        return ExtractionReport("cpu", 0)
    device = as_device("cpu") if choice.kind == "dis" else resolve_device(request.device)
    memory = RunMemory(ctx.timeline, ctx.pressure, pool=ctx.pool, history=ctx.history, device=device)
    width, height = size
    # Decoding runs a batch ahead on its own thread, beside the flow model (closed when the block ends).
    pairs = prefetched(iter_node_pairs(str(request.input), info, nodes, fitter, probe), PREFETCH_PAIRS, "decode")
    with memory, contextlib.closing(pairs):
        memory.check_pressure("before the input")  # between inputs of a batch run, before anything loads
        key = memory.history_key(choice.identity(), height, width, _precision(request, choice.kind, device))
        batch = choose_batch_size(request, choice.kind, memory, key, height, width)
        if choice.kind == "dis":
            extract_flows(pairs, total, writer, stack_and_compute(DisFlowBackend().compute), batch_size=batch,
                          progress=ctx.progress, memory=memory)
            report = ExtractionReport("cpu", batch)
        else:
            report = _extract_with_raft(request, choice, pairs, total, writer, ctx, memory, batch)
    memory.finish()
    report.add_memory(memory)
    report.seconds = time.perf_counter() - started
    return report


def _extract_with_raft(request: GuideRequest, choice: BackendChoice, pairs: Iterator[FramePair], total: int,
                       writer: FlowStoreWriter, ctx: RunContext, memory: RunMemory,
                       batch_size: int) -> ExtractionReport:
    """RAFT through the annotator pool: loaded under the GPU lock, torn down in ``finally``."""
    import torch

    from ..preprocessors.annotators.flow_raft import RaftFlowBackend  # torch and torchvision: only when RAFT runs

    device = memory.device
    name = register_raft(ctx.pool, choice)
    timeline = ctx.timeline
    on_cuda = device.type == "cuda"
    report = ExtractionReport(str(device), batch_size)
    if on_cuda:
        torch.cuda.reset_peak_memory_stats(device)
    timeline.record("start")
    with ctx.gpu_lock(), ctx.pool.use(name, device, teardown=request.teardown) as lease:
        timeline.record(f"{choice.name} loaded")
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
                      cleanup=lambda: empty_device_cache(device=device), memory=memory)
    timeline.record(f"{choice.name} {request.teardown if request.teardown != 'keep' else 'kept'}")
    if on_cuda:
        report.peak_device_bytes = int(torch.cuda.max_memory_allocated(device))
    return report

