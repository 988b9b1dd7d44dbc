"""The memory side of one run, as the pipeline's batch loop sees it.

    memory = RunMemory(timeline, pressure, pool=pool, history=history, device=device)
    with memory:                                   # pool loads/unloads/releases become timeline events
        memory.check_pressure("between inputs")
        size = memory.choose_batch(key, requested=req.batch_size, default=2, cap=16)
        run_with_backoff(..., size, between_batches=memory.before_batch, on_batch=memory.after_batch,
                         on_oom=memory.on_oom)
    memory.finish()                                # the outcome goes into the batch-size history
    memory.summary_lines()

``choose_batch``: an explicit size wins; else the history's recommendation; else the default.
``before_batch`` runs the pressure policy (RAM everywhere, device memory on CUDA) and may shrink the
batch; every action, batch-size change and OOM back-off is logged and put on the timeline.
"""
from __future__ import annotations

import logging
from typing import Any, Optional

from .batch_history import BatchOutcome, BatchSizeHistory
from .devices import loaded_torch
from .monitor import MemoryMonitor, MemorySnapshot
from .pressure import PressureDecision, PressurePolicy
from .timeline import Timeline

logger = logging.getLogger(__name__)


class RunMemory:
    """Batch size, pressure checks, history and timeline events of one run (one device)."""

    def __init__(self, timeline: Timeline, pressure: PressurePolicy, *, pool=None,
                 history: Optional[BatchSizeHistory] = None, device: Any = "cpu",
                 monitor: Optional[MemoryMonitor] = None) -> None:
        self.timeline = timeline
        self.pressure = pressure
        self.pool = pool
        self.history = history
        self.monitor = monitor or MemoryMonitor(device)
        self.device = self.monitor.device
        timeline.use_monitor(self.monitor)
        self.key: Optional[str] = None
        self.start_size = 0
        self.size = 0
        self.batch_note = ""
        self.short_note = ""
        self.ooms = 0
        self.shrinks = 0
        self.changes: list[str] = []
        self.decisions: list[PressureDecision] = []
        self.reports: list[str] = []
        self.max_fraction = 0.0
        self.max_size = 0
        self._baseline: Optional[MemorySnapshot] = None
        self._peak_growth = 0
        self._attached = False
        self._report_before: Optional[str] = None

    # pool events ----------------------------------------------------------------------------
    def __enter__(self) -> "RunMemory":
        self._report_before = getattr(self.pool, "last_report", None)
        if self.pool is not None and hasattr(self.pool, "add_event_listener"):
            self.pool.add_event_listener(self._pool_event)
            self._attached = True
        return self

    def __exit__(self, *exc) -> None:
        if self._attached:
            self.pool.remove_event_listener(self._pool_event)
            self._attached = False
        report = getattr(self.pool, "last_report", None)
        if report and report is not self._report_before:  # this run's unload/release of the annotator
            self.reports.append(report)

    def _pool_event(self, kind: str, name: str) -> None:
        self.timeline.event(kind, f"{kind} {name.split('|', 1)[0]}")

    # batch size -----------------------------------------------------------------------------
    @property
    def on_cuda(self) -> bool:
        return self.monitor.on_cuda

    def history_key(self, backend: str, height: int, width: int, precision: str) -> str:
        """The history key of this run's device for ``backend`` at ``width``×``height``."""
        device_name = loaded_torch().cuda.get_device_name(self.device) if self.on_cuda else "cpu"
        return BatchSizeHistory.key(backend, device_name, height, width, precision)

    def free_bytes(self) -> int:
        """What the next batch can use: free device memory on CUDA, else the rest of the RAM budget."""
        if self.on_cuda:
            return self.monitor.snapshot().free
        ram = self.pressure.read_ram()
        return max(0, ram.budget - ram.anon)

    def choose_batch(self, key: Optional[str], requested: Optional[int], default: int, cap: int) -> int:
        """The first batch size: ``requested`` wins, else the history's recommendation, else ``default``."""
        self.key = key
        if requested:
            size, self.batch_note = int(requested), f"batch size {requested} (set explicitly)"
            self.short_note = f"batch {size} (set)"
        else:
            found = self.history.recommend(key, self.free_bytes(), cap) if self.history and key else None
            if found is not None:
                size, self.batch_note = found.size, f"batch size {found.size}, {found.reason}"
                self.short_note = f"batch {size} (learned)"
            else:
                size = max(1, min(int(default), int(cap)))
                self.batch_note = f"batch size {size} (default; no history yet for this device and size)"
                self.short_note = f"batch {size} (default)"
        self.start_size = self.size = self.max_size = size
        self._baseline = self.monitor.snapshot()
        self.timeline.event("batch size", f"batch size {size}")
        logger.info("Starting at %s", self.batch_note)
        return size

    def _change(self, new_size: int, why: str) -> None:
        if new_size != self.size:
            text = f"batch {self.size} -> {new_size} ({why})"
            self.changes.append(text)
            self.timeline.event("batch size", text)
            self.size = new_size

    # during the run -------------------------------------------------------------------------
    def check_pressure(self, where: str = "before batch") -> PressureDecision:
        """Run the pressure policy once; acts, logs, marks the timeline; may shrink :attr:`size`."""
        decision = self.pressure.check(self.monitor if self.on_cuda else None, self.pool, max(1, self.size))
        self.max_fraction = max(self.max_fraction, decision.device_fraction, decision.ram_fraction)
        if decision.acted:
            self.decisions.append(decision)
            self.reports.append(decision.report)
            self.timeline.event("pressure", f"{decision.level} ({decision.resource} {decision.used_fraction:.0%}) "
                                            f"{where}: {', '.join(decision.actions)}")
            if decision.new_batch_size is not None:
                self.shrinks += 1
                self._change(decision.new_batch_size, f"{decision.level} {decision.resource} pressure")
        return decision

    def before_batch(self, size: int) -> Optional[int]:
        """``between_batches`` of :func:`run_with_backoff`: the pressure check; returns a new size or None."""
        self.size = size
        before = self.size
        self.check_pressure()
        return self.size if self.size != before else None

    def after_batch(self, done: int, total: int, size: int) -> None:
        """After each successful batch: a timeline sample and the peak memory per pair so far."""
        self.size = size
        self.max_size = max(self.max_size, size)
        sample = self.timeline.record(f"batch {done}/{total}")
        if self._baseline is not None:
            if self.on_cuda:
                growth = sample.snapshot.peak - self._baseline.allocated
            else:
                growth = sample.snapshot.anon - self._baseline.anon
            self._peak_growth = max(self._peak_growth, growth)

    def on_oom(self, size: int, new_size: Optional[int]) -> None:
        """``on_oom`` of :func:`run_with_backoff`."""
        self.ooms += 1
        if new_size is None:
            self.timeline.event("oom", f"out of memory at batch {size}: CPU fallback")
            self.changes.append(f"out of memory at batch {size}: finished on the CPU")
        else:
            self.timeline.event("oom", f"out of memory at batch {size}")
            self.size = size
            self._change(new_size, "out of memory")

    # after the run --------------------------------------------------------------------------
    def outcome(self) -> BatchOutcome:
        per_item = self._peak_growth // max(1, self.max_size) if self._peak_growth > 0 else 0
        return BatchOutcome(self.start_size, self.size, self.ooms, self.shrinks, int(per_item),
                            headroom=self.max_fraction < self.pressure.standard)

    def finish(self) -> Optional[BatchOutcome]:
        """Record the run in the history (when it has one and a batch size was chosen)."""
        if self.history is None or self.key is None or self.size < 1:
            return None
        outcome = self.outcome()
        self.history.record_run(self.key, outcome)
        return outcome

    def summary_lines(self) -> list[str]:
        """What the run's summary says about memory."""
        lines = [self.batch_note[0].upper() + self.batch_note[1:]] if self.batch_note else []
        if self.changes:
            lines.append("Batch size changed: " + "; ".join(self.changes))
        if self.decisions:
            worst = max(self.decisions, key=lambda d: ("none", "standard", "aggressive", "emergency").index(d.level))
            lines.append(f"Memory pressure: {len(self.decisions)} clean-up{'s' if len(self.decisions) != 1 else ''}, "
                         f"worst {worst.level} ({worst.resource} {worst.used_fraction:.0%})")
        return lines
