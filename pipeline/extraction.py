"""The one extraction loop: stream fitted source frames through any annotator in batches, on the source timeline.

Inputs are the fitted frames of the source *nodes* (``per_pair`` annotators get (node j, node j+1)
pairs: row ``j`` is between them; the others get one frame per node: row ``j`` is node ``j``). Only one
batch exists at a time (decoded, fitted, on the device) plus a few inputs decoded ahead on a thread;
rows go to ``put(j, row)`` one by one, so memory stays flat in the video's length.

Around every annotator the same machinery runs: the model from the annotator pool under the GPU lock,
torn down as the request says; the pressure policy before each batch; OOM back-off that shrinks the
batch and retries the same inputs (identical rows), finishing on the CPU at batch size 1 on CUDA; the
batch-size history; progress and cancel; the memory timeline. The batch size is chosen in
:func:`choose_batch_size` and nowhere else.
"""
from __future__ import annotations

import contextlib
import logging
import threading
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Iterator, Optional, Sequence

import numpy as np

from ..memory import RunMemory, Timeline, empty_device_cache, run_with_backoff
from ..memory.devices import as_device
from ..preprocessors.annotators.shot_cuts import CutProbe
from ..preprocessors.video.fit import FrameFitter
from ..preprocessors.video.video_io import VideoInfo, iter_planned_frames
from ..progress import Progress
from .annotators.base import Annotator, BatchFn, ModelChoice
from .context import RunContext
from .prefetch import prefetched
from .request import GuideRequest

if TYPE_CHECKING:  # pragma: no cover - types only
    from .prepare import PreparedGuide

logger = logging.getLogger(__name__)

#: The largest automatic batch on CUDA.
MAX_AUTO_BATCH = 16
#: Share of free device memory an automatic batch may fill.
FREE_MEMORY_SHARE = 0.85


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


def iter_node_frames(path: str, info: VideoInfo, nodes: Sequence[int], fitter: FrameFitter,
                     probe: Optional[CutProbe] = None) -> Iterator[np.ndarray]:
    """Fitted frames of ``nodes`` (increasing), decoding the source once, front to back; each is also
    shown to ``probe`` (hard-cut evidence on the frames the annotator sees)."""
    for frame in iter_planned_frames(path, nodes, info):
        fitted = fitter(frame)
        del frame
        if probe is not None:
            probe.add(fitted)
        yield fitted


def iter_node_pairs(path: str, info: VideoInfo, nodes: Sequence[int], fitter: FrameFitter,
                    probe: Optional[CutProbe] = None) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Fitted (node j, node j+1) frames, each node decoded once."""
    previous: Optional[np.ndarray] = None
    for fitted in iter_node_frames(path, info, nodes, fitter, probe):
        if previous is not None:
            yield previous, fitted
        previous = fitted


def choose_batch_size(annotator: Annotator, choice: ModelChoice, request: GuideRequest, memory: RunMemory,
                      key: str, height: int, width: int, pooled: bool = True) -> int:
    """The one place a batch size is chosen: the request's, else the batch-size history's
    recommendation, else a default (the CPU and model-free annotators — ``pooled`` False: the
    annotator's constant; CUDA: what free memory holds by the annotator's estimate)."""
    if not pooled or not memory.on_cuda:
        default = cap = annotator.cpu_batch_size(choice)
    else:
        per_input = annotator.bytes_per_input(choice, request, height, width)
        default = max(1, min(MAX_AUTO_BATCH, int(memory.monitor.snapshot().free * FREE_MEMORY_SHARE
                                                 // max(1, per_input))))
        cap = MAX_AUTO_BATCH
    return memory.choose_batch(key, request.batch_size, default, cap)


def _timed_inputs(inputs: Iterator[Any], timeline: Timeline) -> Iterator[Any]:
    """``inputs``, with the decoding of each marked as the ``decode`` phase."""
    source = iter(inputs)
    while True:
        with timeline.phase("decode"):
            item = next(source, None)
        if item is None:
            return
        yield item


def _timed(compute: BatchFn, timeline: Timeline, phase: str) -> BatchFn:
    def run(batch: list[Any]) -> Sequence[np.ndarray]:
        with timeline.phase(phase):
            return compute(batch)
    return run


def own_rows(compute: BatchFn) -> BatchFn:
    """``compute``, each row copied out so no row keeps the whole batch's array alive."""
    def run(batch: list[Any]) -> list[np.ndarray]:
        return [np.array(row, copy=True) for row in compute(batch)]
    return run


def run_batches(annotator: Annotator, inputs: Iterator[Any], total: int, put: Callable[[int, np.ndarray], None],
                compute: BatchFn, *, batch_size: int, progress: Progress, memory: RunMemory,
                cpu_fallback: Optional[Callable[[], BatchFn]] = None,
                cleanup: Optional[Callable[[], None]] = None) -> int:
    """The batch loop: every input through ``compute`` with OOM back-off, row ``i`` for input ``i``;
    the pressure policy before each batch (it may shrink it), phases and back-offs on the timeline."""
    words, phase = annotator.progress_words, annotator.phase

    def report(count: int, size: int) -> None:
        memory.after_batch(count, total, size)
        progress.update(phase, count, total, f"{words} {count}/{total} (batch {size})")

    timed_fallback = None
    if cpu_fallback is not None:
        fallback = cpu_fallback
        timed_fallback = lambda: _timed(own_rows(fallback()), memory.timeline, phase)  # noqa: E731
    if memory.check_pressure("before the first batch").new_batch_size is not None:
        batch_size = memory.size
    progress.update(phase, 0, total, f"{words} 0/{total}")
    done = 0
    for row in run_with_backoff(_timed_inputs(inputs, memory.timeline),
                                _timed(own_rows(compute), memory.timeline, phase), batch_size,
                                cleanup=cleanup, cpu_fallback=timed_fallback, between_batches=memory.before_batch,
                                on_batch=report, on_oom=memory.on_oom):
        put(done, row)
        done += 1
    if done != total:
        raise RuntimeError(f"{annotator.guide_type} extraction produced {done} of {total} rows")
    return done


def extract_rows(annotator: Annotator, prepared: "PreparedGuide", choice: ModelChoice, nodes: Sequence[int],
                 put: Callable[[int, np.ndarray], None], ctx: RunContext,
                 probe: Optional[CutProbe] = None) -> ExtractionReport:
    """The rows of ``nodes`` into ``put(j, row)`` (and the node frames into ``probe``, for hard cuts)."""
    started = time.perf_counter()
    request = prepared.request
    total = len(nodes) - 1 if annotator.per_pair else len(nodes)
    if total <= 0:
        return ExtractionReport("cpu", 0)
    device = annotator.device_for(request, choice)
    memory = RunMemory(ctx.timeline, ctx.pressure, pool=ctx.pool, history=ctx.history, device=device)
    width, height = prepared.size
    frames = iter_node_pairs if annotator.per_pair else iter_node_frames
    # Decoding runs ahead on its own thread, beside the model (closed when the block ends).
    inputs = prefetched(frames(str(request.input), prepared.info, nodes, prepared.fitter, probe),
                        annotator.prefetch, "decode")
    with memory, contextlib.closing(inputs):
        memory.check_pressure("before the input")  # between inputs of a batch run, before anything loads
        precision = annotator.precision(request, choice, device)
        key = memory.history_key(choice.identity(), height, width, precision)
        factory = annotator.factory(choice)
        batch = choose_batch_size(annotator, choice, request, memory, key, height, width, pooled=factory is not None)
        if factory is None:
            run_batches(annotator, inputs, total, put, annotator.batch_fn(choice, None, device, request, precision),
                        batch_size=batch, progress=ctx.progress, memory=memory)
            report = ExtractionReport("cpu", batch)
        else:
            name = register(ctx, choice, factory)
            report = _with_pooled_model(annotator, choice, name, request, inputs, total, put, ctx, memory, batch,
                                        precision)
    memory.finish()
    report.add_memory(memory)
    report.seconds = time.perf_counter() - started
    return report


def _with_pooled_model(annotator: Annotator, choice: ModelChoice, name: str, request: GuideRequest,
                       inputs: Iterator[Any], total: int, put: Callable[[int, np.ndarray], None], ctx: RunContext,
                       memory: RunMemory, batch_size: int, precision: str) -> ExtractionReport:
    """The model (pool entry ``name``) through the annotator pool: loaded under the GPU lock, torn down in
    ``finally``."""
    device = memory.device
    on_cuda = device.type == "cuda"
    report = ExtractionReport(str(device), batch_size)
    if on_cuda:
        import torch

        torch.cuda.reset_peak_memory_stats(device)
    ctx.timeline.record("start")
    with ctx.gpu_lock(), ctx.pool.use(name, device, teardown=request.teardown) as lease:
        ctx.timeline.record(f"{choice.name} loaded")

        def cpu_fallback() -> BatchFn:
            logger.warning("Out of memory at batch size 1 on %s: continuing %s on the CPU.", device, choice.name)
            report.warnings.append(f"Ran out of GPU memory at batch size 1; finished {choice.name} on the CPU.")
            return annotator.batch_fn(choice, lease.move_to("cpu"), as_device("cpu"), request, "fp32")

        run_batches(annotator, inputs, total, put,
                    annotator.batch_fn(choice, lease.model, lease.device, request, precision),
                    batch_size=batch_size, progress=ctx.progress, memory=memory,
                    cpu_fallback=cpu_fallback if on_cuda else None,
                    cleanup=lambda: empty_device_cache(device=device))
    ctx.timeline.record(f"{choice.name} {request.teardown if request.teardown != 'keep' else 'kept'}")
    if on_cuda:
        import torch

        report.peak_device_bytes = int(torch.cuda.max_memory_allocated(device))
    return report


_REGISTER_LOCK = threading.Lock()


def register(ctx: RunContext, choice: ModelChoice, factory: Callable[[], Any]) -> str:
    """Register ``factory`` (what builds ``choice``'s model) with the run's pool, once; return its pool name."""
    name = choice.annotator_name()
    with _REGISTER_LOCK:  # "register unless registered" is atomic when several requests start at once
        if not ctx.pool.is_registered(name):
            ctx.pool.register(name, factory)
    return name
