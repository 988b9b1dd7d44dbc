"""Flow extraction: plan the distinct pairs, stream fitted frames through the backend in batches.

Only one batch of frame pairs exists at a time (decoded, fitted, on the device); flows go
straight to a :class:`FlowStoreWriter` row by row. A pair whose two frames are the same source
frame is zero motion and is never computed; a pair that occurs again (a ``clip`` plan that loops)
is computed once.
"""
from __future__ import annotations

import logging
from collections import OrderedDict
from dataclasses import dataclass
from typing import Callable, Iterator, Optional, Sequence

import numpy as np

from ..memory import run_with_backoff
from ..preprocessors.fit import FrameFitter
from ..preprocessors.flow_store import FlowStoreWriter
from ..preprocessors.frame_plan import FramePlan, Pair
from ..preprocessors.video_io import VideoInfo, iter_planned_frames
from ..progress import Progress

logger = logging.getLogger(__name__)

#: ``FlowLayout.frame_rows`` value of a guide frame with zero motion.
ZERO_ROW = -1

FramePair = tuple[np.ndarray, np.ndarray]
ComputeFn = Callable[[list[FramePair]], Sequence[np.ndarray]]


@dataclass(frozen=True)
class FlowLayout:
    """The distinct pairs to compute (one stored row each) and the row of every guide frame."""

    jobs: tuple[Pair, ...]
    frame_rows: tuple[int, ...]

    @property
    def rows(self) -> int:
        return len(self.jobs)


def plan_flow_layout(plan: FramePlan) -> FlowLayout:
    """Map a frame plan's pairs onto distinct stored rows (zero-motion pairs get no row)."""
    row_of_pair: dict[Pair, int] = {}
    jobs: list[Pair] = []
    rows: list[Optional[int]] = []
    for pair in plan.pairs:
        if pair is None:
            rows.append(None)
        elif pair[0] == pair[1]:
            rows.append(ZERO_ROW)
        else:
            if pair not in row_of_pair:
                row_of_pair[pair] = len(jobs)
                jobs.append(pair)
            rows.append(row_of_pair[pair])
    for k, source in enumerate(plan.copy_from):
        if source is not None:
            rows[k] = rows[source]
    return FlowLayout(tuple(jobs), tuple(ZERO_ROW if r is None else r for r in rows))


def restrict_layout(layout: FlowLayout, lo: int, hi: int) -> FlowLayout:
    """Only the jobs that guide frames ``[lo, hi)`` need; frames outside the window get no row."""
    used = sorted({row for row in layout.frame_rows[lo:hi] if row != ZERO_ROW})
    renumber = {old: new for new, old in enumerate(used)}
    rows = tuple(renumber[row] if lo <= k < hi and row != ZERO_ROW else ZERO_ROW
                 for k, row in enumerate(layout.frame_rows))
    return FlowLayout(tuple(layout.jobs[old] for old in used), rows)


def iter_job_frames(path: str, info: VideoInfo, jobs: Sequence[Pair], fitter: FrameFitter) -> Iterator[FramePair]:
    """Fitted (first, second) frames for every job, decoding each needed source frame once in a row."""
    needed: list[int] = []
    for pair in jobs:
        for index in pair:
            if not needed or needed[-1] != index:
                needed.append(index)
    source = zip(needed, iter_planned_frames(path, needed, info))
    recent: "OrderedDict[int, np.ndarray]" = OrderedDict()
    for first, second in jobs:
        while first not in recent or second not in recent:
            index, frame = next(source)
            recent[index] = fitter(frame)
            del frame
            while len(recent) > 3:
                recent.popitem(last=False)
        yield recent[first], recent[second]


def stack_and_compute(compute: Callable[[np.ndarray, np.ndarray], np.ndarray]) -> ComputeFn:
    """Adapt a backend's ``compute(first_batch, second_batch)`` to a list of frame pairs."""
    def run(batch: list[FramePair]) -> list[np.ndarray]:
        firsts = np.stack([pair[0] for pair in batch])
        seconds = np.stack([pair[1] for pair in batch])
        flows = compute(firsts, seconds)
        # Copy each row out so no result keeps the whole batch array alive.
        return [np.array(flow, dtype=np.float32, copy=True) for flow in flows]
    return run


def extract_flows(pairs: Iterator[FramePair], total: int, writer: FlowStoreWriter, compute: ComputeFn, *,
                  batch_size: int, progress: Progress,
                  cpu_fallback: Optional[Callable[[], ComputeFn]] = None,
                  cleanup: Optional[Callable[[], None]] = None,
                  between_batches: Optional[Callable[[int], Optional[int]]] = None,
                  on_batch: Optional[Callable[[int, int], None]] = None) -> int:
    """Run every pair through ``compute`` with OOM back-off, storing row ``i`` for pair ``i``."""
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
