"""A recorder of one run's memory: labelled samples, phases and events, exported as CSV, JSON or a PNG chart.

* samples — :class:`MemorySnapshot` figures with a label (``batch 7/40``);
* phases — named spans (``decode``, ``flow``, ``render``, ``encode``); back-to-back spans of the same
  name are merged, so a phase entered once per frame stays one span until another phase interrupts it;
* events — ``(t, kind, text)`` records: ``load``, ``unload``, ``release``, ``batch size``, ``oom``,
  ``pressure``;
* notes — sentences about the run as a whole (``flows read from the cache: nothing was extracted``).

The chart plots the process's anonymous memory (``RssAnon``), not its RSS: RSS counts the pages of the
memory-mapped flow file, which the kernel drops at will, and would look like a leak.
"""
from __future__ import annotations

import contextlib
import csv
import io
import json
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, NamedTuple, Optional, Union

from ..atomic_files import publishing, write_text_atomic
from .monitor import MemoryMonitor, MemorySnapshot

MIB = 1024 ** 2
FIELDS = ("t", "label", "device", "allocated", "reserved", "free", "total", "peak", "rss", "anon", "available")
ANON_SERIES = "process memory (anonymous)"
EVENT_KINDS = ("load", "unload", "release", "batch size", "oom", "pressure")
PHASE_COLOURS = {"decode": "tab:green", "flow": "tab:purple", "render": "tab:olive", "encode": "tab:cyan"}
EVENT_COLOURS = {"load": "tab:blue", "unload": "tab:grey", "release": "black", "batch size": "tab:orange",
                 "oom": "tab:red", "pressure": "tab:brown"}


@dataclass(frozen=True)
class TimelineSample:
    """One labelled snapshot; ``t`` is seconds since the timeline started."""

    t: float
    label: str
    snapshot: MemorySnapshot

    def __getattr__(self, name: str):
        # Expose the snapshot's figures directly (sample.rss, sample.anon, ...).
        if name in FIELDS[2:]:
            return getattr(self.snapshot, name)
        raise AttributeError(name)

    def row(self) -> dict:
        s = self.snapshot
        return {"t": round(self.t, 4), "label": self.label, "device": s.device, "allocated": s.allocated,
                "reserved": s.reserved, "free": s.free, "total": s.total, "peak": s.peak, "rss": s.rss,
                "anon": s.anon, "available": s.available}


class TimelineEvent(NamedTuple):
    """Something that happened to memory: ``kind`` is one of :data:`EVENT_KINDS`."""

    t: float
    kind: str
    text: str


class TimelinePhase(NamedTuple):
    """A span ``[start, end]`` (seconds since the start) spent in phase ``name``."""

    name: str
    start: float
    end: float


class Timeline:
    """Thread-safe; keeps at most ``max_samples`` samples (thinning the middle when full) and as many phases."""

    def __init__(self, max_samples: int = 5000, monitor: Optional[MemoryMonitor] = None) -> None:
        self.max_samples = max(16, max_samples)
        self._monitor = monitor or MemoryMonitor("cpu")
        self._samples: list[TimelineSample] = []
        self._events: list[TimelineEvent] = []
        self._phases: list[TimelinePhase] = []
        self._open_phases: dict[str, float] = {}
        self._notes: list[str] = []
        self._lock = threading.Lock()
        self._origin: Optional[float] = None
        self._last_sample = 0.0

    # recording ------------------------------------------------------------------------------
    def use_monitor(self, monitor: MemoryMonitor) -> None:
        """Take fresh snapshots from ``monitor`` from now on (e.g. the run's CUDA device)."""
        self._monitor = monitor

    def _t(self, when: float) -> float:
        if self._origin is None:
            self._origin = when
        return when - self._origin

    def record(self, label: str, snapshot: Optional[MemorySnapshot] = None) -> TimelineSample:
        """Add a sample (a fresh snapshot of the timeline's monitor when none is given)."""
        snapshot = snapshot or self._monitor.snapshot()
        with self._lock:
            sample = TimelineSample(self._t(snapshot.time), str(label), snapshot)
            self._samples.append(sample)
            self._last_sample = time.monotonic()
            if len(self._samples) > self.max_samples:
                # Keep the first and last quarter, thin the middle by half: bounded memory on long runs.
                quarter = self.max_samples // 4
                middle = self._samples[quarter:-quarter][::2]
                self._samples = self._samples[:quarter] + middle + self._samples[-quarter:]
        return sample

    def sample_every(self, label: str, seconds: float = 0.25) -> Optional[TimelineSample]:
        """Record a sample unless one was taken less than ``seconds`` ago (for per-frame loops)."""
        if self._samples and time.monotonic() - self._last_sample < seconds:
            return None
        return self.record(label)

    def event(self, kind: str, text: str) -> TimelineEvent:
        """Record an event (and a sample labelled with its text)."""
        sample = self.record(text)
        item = TimelineEvent(sample.t, str(kind), str(text))
        with self._lock:
            self._events.append(item)
            if len(self._events) > self.max_samples:
                del self._events[: len(self._events) - self.max_samples]
        return item

    @contextlib.contextmanager
    def phase(self, name: str) -> Iterator[None]:
        """Mark the enclosed work as phase ``name`` (nested or repeated uses are fine)."""
        with self._lock:
            start = self._t(time.time())
        try:
            yield
        finally:
            with self._lock:
                end = self._t(time.time())
                if self._phases and self._phases[-1].name == name:  # back-to-back: one span
                    self._phases[-1] = TimelinePhase(name, self._phases[-1].start, end)
                else:
                    self._phases.append(TimelinePhase(name, start, end))
                if len(self._phases) > self.max_samples:
                    del self._phases[: len(self._phases) - self.max_samples]

    def note(self, text: str) -> None:
        """A sentence about the whole run, shown with the chart."""
        with self._lock:
            if text not in self._notes:
                self._notes.append(str(text))

    # reading --------------------------------------------------------------------------------
    @property
    def samples(self) -> list[TimelineSample]:
        with self._lock:
            return list(self._samples)

    @property
    def events(self) -> list[TimelineEvent]:
        with self._lock:
            return list(self._events)

    @property
    def phases(self) -> list[TimelinePhase]:
        with self._lock:
            return list(self._phases)

    @property
    def notes(self) -> list[str]:
        with self._lock:
            return list(self._notes)

    def phase_totals(self) -> dict[str, float]:
        """Seconds spent in each phase (overlapping spans of different phases both count)."""
        totals: dict[str, float] = {}
        for name, start, end in self.phases:
            totals[name] = totals.get(name, 0.0) + (end - start)
        return totals

    def __len__(self) -> int:
        return len(self._samples)

    def to_rows(self) -> list[dict]:
        return [sample.row() for sample in self.samples]

    def chart_rows(self) -> list[dict]:
        """Long-format rows for an interactive chart: ``{"t": s, "series": name, "mib": value}``.

        This is the interface the UI plots (``gr.LinePlot(x="t", y="mib", color="series")``); which
        series appear is this module's decision: the process's anonymous memory, and on CUDA the
        device's allocated and reserved memory.
        """
        rows: list[dict] = []
        for sample in self.samples:
            s, t = sample.snapshot, round(sample.t, 3)
            rows.append({"t": t, "series": ANON_SERIES, "mib": round((s.anon or s.rss) / MIB, 1)})
            if s.total:
                rows.append({"t": t, "series": "GPU allocated", "mib": round(s.allocated / MIB, 1)})
                rows.append({"t": t, "series": "GPU reserved", "mib": round(s.reserved / MIB, 1)})
        return rows

    def event_rows(self) -> list[dict]:
        """``{"t", "kind", "text"}`` per event (for a table or markers next to :meth:`chart_rows`)."""
        return [{"t": round(e.t, 3), "kind": e.kind, "text": e.text} for e in self.events]

    def phase_rows(self) -> list[dict]:
        """``{"phase", "start", "end"}`` per phase span."""
        return [{"phase": p.name, "start": round(p.start, 3), "end": round(p.end, 3)} for p in self.phases]

    # exports --------------------------------------------------------------------------------
    def to_csv(self, path: Union[str, Path]) -> Path:
        """Write the samples as CSV (bytes); returns the path."""
        buffer = io.StringIO(newline="")
        writer = csv.DictWriter(buffer, fieldnames=FIELDS)
        writer.writeheader()
        writer.writerows(self.to_rows())
        return write_text_atomic(path, buffer.getvalue())

    def to_json(self, path: Union[str, Path]) -> Path:
        """Write samples (bytes), events, phases and notes as JSON; returns the path."""
        data = {"samples": self.to_rows(), "events": self.event_rows(), "phases": self.phase_rows(),
                "notes": self.notes}
        return write_text_atomic(path, json.dumps(data, indent=1))

    def render_png(self, path: Union[str, Path], title: str = "Memory during the run") -> Path:
        """A chart: anonymous memory (and GPU allocated/reserved) in MiB over time, phases shaded,
        events as labelled lines. Without samples it says why (the notes) instead of drawing axes."""
        figure = self.figure(title)
        with publishing(path) as tmp:
            figure.savefig(tmp, format="png")
        return Path(path)

    def figure(self, title: str = "Memory during the run"):
        """The chart of :meth:`render_png` as a matplotlib ``Figure`` (the legend sits right of the plot,
        never over the lines)."""
        import matplotlib
        matplotlib.use("Agg", force=False)
        from matplotlib.figure import Figure

        samples, events, phases, notes = self.samples, self.events, self.phases, self.notes
        figure = Figure(figsize=(10.5, 4), dpi=100)
        axes = figure.add_subplot(1, 1, 1)
        if len(samples) < 2:
            message = "\n".join(notes) or "No memory samples were recorded in this run."
            axes.text(0.5, 0.5, message, ha="center", va="center", fontsize=11, wrap=True, transform=axes.transAxes)
            axes.set_axis_off()
            axes.set_title(title)
        else:
            self._draw(axes, samples, events, phases)
            axes.set_title(title if not notes else f"{title}\n{'; '.join(notes)}", fontsize=10)
        figure.tight_layout()
        return figure

    @staticmethod
    def _draw(axes, samples: list[TimelineSample], events: list[TimelineEvent],
              phases: list[TimelinePhase]) -> None:
        times = [s.t for s in samples]
        shaded: set[str] = set()
        for name, start, end in phases:
            axes.axvspan(start, max(end, start + 1e-3), color=PHASE_COLOURS.get(name, "tab:pink"), alpha=0.12,
                         linewidth=0, label=None if name in shaded else f"phase: {name}")
            shaded.add(name)
        axes.plot(times, [(s.anon or s.rss) / MIB for s in samples], label=ANON_SERIES, color="tab:blue")
        if any(s.snapshot.total for s in samples):
            axes.plot(times, [s.allocated / MIB for s in samples], label="GPU allocated", color="tab:red")
            axes.plot(times, [s.reserved / MIB for s in samples], label="GPU reserved", color="tab:orange",
                      linestyle="--")
        for number, event in enumerate(events[:40]):
            colour = EVENT_COLOURS.get(event.kind, "dimgrey")
            axes.axvline(event.t, color=colour, alpha=0.6, linewidth=0.9)
            # Stagger the labels: events often come in bursts (load, batch size, first pressure check).
            axes.annotate(event.text[:40], (event.t, 0.02 + 0.33 * (number % 3)), xycoords=("data", "axes fraction"),
                          rotation=90, fontsize=7, va="bottom", ha="right", color=colour)
        axes.set_xlabel("seconds")
        axes.set_ylabel("MiB")
        axes.set_ylim(bottom=0)
        axes.grid(alpha=0.3)
        axes.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0, fontsize=7)
