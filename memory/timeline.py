"""A recorder of labelled memory samples over one run, exported as CSV, JSON or a PNG chart."""
from __future__ import annotations

import csv
import json
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Union

from .monitor import MemoryMonitor, MemorySnapshot

MIB = 1024 ** 2
FIELDS = ("t", "label", "device", "allocated", "reserved", "free", "total", "peak", "rss")


@dataclass(frozen=True)
class TimelineSample:
    """One labelled snapshot; ``t`` is seconds since the timeline started."""

    t: float
    label: str
    snapshot: MemorySnapshot

    def __getattr__(self, name: str):
        # Expose the snapshot's figures directly (sample.rss, sample.allocated, ...).
        if name in ("device", "allocated", "reserved", "free", "total", "peak", "rss"):
            return getattr(self.snapshot, name)
        raise AttributeError(name)

    def row(self) -> dict:
        s = self.snapshot
        return {"t": round(self.t, 4), "label": self.label, "device": s.device, "allocated": s.allocated,
                "reserved": s.reserved, "free": s.free, "total": s.total, "peak": s.peak, "rss": s.rss}


class Timeline:
    """Thread-safe list of samples; keeps at most ``max_samples`` (thinning the middle when full)."""

    def __init__(self, max_samples: int = 5000, monitor: Optional[MemoryMonitor] = None) -> None:
        self.max_samples = max(16, max_samples)
        self._monitor = monitor or MemoryMonitor("cpu")
        self._samples: list[TimelineSample] = []
        self._lock = threading.Lock()
        self._origin: Optional[float] = None

    @property
    def samples(self) -> list[TimelineSample]:
        with self._lock:
            return list(self._samples)

    def __len__(self) -> int:
        return len(self._samples)

    def record(self, label: str, snapshot: Optional[MemorySnapshot] = None) -> TimelineSample:
        """Add a sample (a fresh snapshot of the timeline's monitor when none is given)."""
        snapshot = snapshot or self._monitor.snapshot()
        with self._lock:
            if self._origin is None:
                self._origin = snapshot.time
            sample = TimelineSample(snapshot.time - self._origin, str(label), snapshot)
            self._samples.append(sample)
            if len(self._samples) > self.max_samples:
                # Keep the first and last quarter, thin the middle by half: bounded memory on long runs.
                quarter = self.max_samples // 4
                middle = self._samples[quarter:-quarter][::2]
                self._samples = self._samples[:quarter] + middle + self._samples[-quarter:]
        return sample

    def to_rows(self) -> list[dict]:
        return [sample.row() for sample in self.samples]

    def chart_rows(self) -> list[dict]:
        """Long-format rows for an interactive chart: ``{"t": s, "series": name, "mib": value}``.

        This is the interface the UI plots (``gr.LinePlot(x="t", y="mib", color="series")``); which
        series appear is this module's decision.
        """
        rows: list[dict] = []
        for sample in self.samples:
            s = sample.snapshot
            rows.append({"t": round(sample.t, 3), "series": "process RSS", "mib": round(s.rss / MIB, 1)})
            if s.total:
                rows.append({"t": round(sample.t, 3), "series": "GPU allocated", "mib": round(s.allocated / MIB, 1)})
                rows.append({"t": round(sample.t, 3), "series": "GPU reserved", "mib": round(s.reserved / MIB, 1)})
        return rows

    def to_csv(self, path: Union[str, Path]) -> Path:
        """Write the samples as CSV (bytes); returns the path."""
        path = Path(path)
        with _atomic_text(path) as handle:
            writer = csv.DictWriter(handle, fieldnames=FIELDS)
            writer.writeheader()
            writer.writerows(self.to_rows())
        return path

    def to_json(self, path: Union[str, Path]) -> Path:
        """Write the samples as a JSON list (bytes); returns the path."""
        path = Path(path)
        with _atomic_text(path) as handle:
            json.dump({"samples": self.to_rows()}, handle, indent=1)
        return path

    def render_png(self, path: Union[str, Path], title: str = "Memory during the run") -> Path:
        """A chart of device allocated/reserved and process RSS (MiB) over time, labels as markers."""
        import matplotlib
        matplotlib.use("Agg", force=False)
        from matplotlib.figure import Figure

        samples = self.samples
        path = Path(path)
        figure = Figure(figsize=(8, 3.6), dpi=100)
        axes = figure.add_subplot(1, 1, 1)
        times = [s.t for s in samples]
        if any(s.snapshot.total for s in samples):
            axes.plot(times, [s.snapshot.allocated / MIB for s in samples], label="GPU allocated", color="tab:red")
            axes.plot(times, [s.snapshot.reserved / MIB for s in samples], label="GPU reserved",
                      color="tab:orange", linestyle="--")
        axes.plot(times, [s.snapshot.rss / MIB for s in samples], label="process RSS", color="tab:blue")
        shown = [s for s in samples if not s.label.startswith("batch ")][:12]
        for sample in shown:
            axes.axvline(sample.t, color="grey", alpha=0.25, linewidth=0.8)
            axes.annotate(sample.label, (sample.t, 0), xycoords=("data", "axes fraction"), rotation=90,
                          fontsize=7, va="bottom", ha="right", color="dimgrey")
        axes.set_xlabel("seconds")
        axes.set_ylabel("MiB")
        axes.set_title(title if samples else f"{title} (no samples)")
        axes.grid(alpha=0.3)
        if samples:
            axes.legend(loc="upper left", fontsize=8)
        figure.tight_layout()
        tmp = path.with_name(f".{path.name}.{os.getpid()}.partial.png")
        try:
            figure.savefig(tmp, format="png")
            os.replace(tmp, path)
        finally:
            if tmp.exists():
                tmp.unlink()
        return path


class _atomic_text:
    """Open a temporary text file next to ``path`` and rename it onto ``path`` on success."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.tmp = path.with_name(f".{path.name}.{os.getpid()}.partial")

    def __enter__(self):
        self.handle = open(self.tmp, "w", encoding="utf-8", newline="")
        return self.handle

    def __exit__(self, kind, value, traceback) -> None:
        self.handle.close()
        if kind is None:
            os.replace(self.tmp, self.path)
        else:
            self.tmp.unlink(missing_ok=True)
