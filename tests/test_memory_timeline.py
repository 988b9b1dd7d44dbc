"""Monitor, timeline (samples, events, phases, notes) and its exports, cleanup reports."""
from __future__ import annotations

import csv
import json
import threading

import numpy as np

from wan2gp_structure_video.memory import MemoryMonitor, MemorySnapshot, Timeline, format_cleanup_report

GIB = 1024 ** 3


def test_cpu_snapshot_has_rss_anon_and_no_device_figures() -> None:
    snap = MemoryMonitor("cpu").snapshot()
    assert snap.rss > 10 * 2**20 and snap.total == 0 and snap.free == 0 and snap.used_fraction == 0.0
    assert 0 < snap.anon <= snap.rss and snap.available > 0


def test_used_fraction_is_one_minus_free_over_total() -> None:
    # 2 GiB allocated but only 5 GiB free of 10: another process holds 3 GiB; we can no longer get 50 %.
    snap = MemorySnapshot(0.0, "cuda:0", 2 * GIB, 3 * GIB, 5 * GIB, 10 * GIB, 2 * GIB, 0)
    assert snap.used_fraction == 0.5


def test_anon_ignores_a_mapped_file_but_follows_an_allocation(tmp_path) -> None:
    monitor = MemoryMonitor("cpu")
    path = tmp_path / "flows.bin"
    path.write_bytes(b"\1" * (96 * 2**20))
    before = monitor.snapshot()
    mapped = np.memmap(path, dtype=np.uint8, mode="r")
    assert int(mapped.sum(dtype=np.uint64)) == 96 * 2**20  # touch every page
    during = monitor.snapshot()
    assert during.rss - before.rss > 64 * 2**20 and during.anon - before.anon < 16 * 2**20
    del mapped
    block = np.ones(64 * 2**20, dtype=np.uint8)
    assert monitor.snapshot().anon - during.anon > 48 * 2**20
    del block


_RSS_PROBE = """
import numpy as np
from wan2gp_structure_video.memory import MemoryMonitor
monitor = MemoryMonitor("cpu")
before = monitor.snapshot().rss
block = np.ones(64 * 2**20, dtype=np.uint8)
print(monitor.snapshot().rss - before)
"""


def test_rss_follows_a_large_allocation() -> None:
    # In a fresh process: in this one, freed heap pages that are still resident can absorb the block.
    import subprocess
    import sys

    grown = int(subprocess.run([sys.executable, "-c", _RSS_PROBE], check=True, capture_output=True,
                               text=True, timeout=120).stdout.split()[-1])
    assert grown > 48 * 2**20


def test_cleanup_report_text() -> None:
    a = MemorySnapshot(0, "cuda:0", int(2.34 * GIB), int(2.56 * GIB), 0, 10 * GIB, 0, 0)
    b = MemorySnapshot(1, "cuda:0", int(0.12 * GIB), int(1.45 * GIB), 0, 10 * GIB, 0, 0)
    assert format_cleanup_report(a, b) == ("Before: 2.34 GB allocated, 2.56 GB reserved. "
                                           "After: 0.12 GB allocated, 1.45 GB reserved.")


def test_timeline_exports_events_phases_and_notes(tmp_path) -> None:
    timeline = Timeline()
    timeline.record("start")
    timeline.event("load", "load raft-large")
    for k in range(3):
        with timeline.phase("decode"):
            pass
        with timeline.phase("flow"):
            timeline.record(f"batch {k + 1}/3")
    for _ in range(4):  # back-to-back uses of one phase stay one span
        with timeline.phase("encode"):
            pass
    timeline.event("release", "release raft-large")
    assert [s.label for s in timeline.samples][0] == "start" and timeline.samples[0].t == 0.0
    assert [(e.kind, e.text) for e in timeline.events] == [("load", "load raft-large"),
                                                           ("release", "release raft-large")]
    assert [p.name for p in timeline.phases] == ["decode", "flow"] * 3 + ["encode"]
    assert all(p.end >= p.start >= 0 for p in timeline.phases)
    assert set(timeline.phase_totals()) == {"decode", "flow", "encode"}
    series = {row["series"] for row in timeline.chart_rows()}
    assert series == {"process memory (anonymous)"}  # no GPU here, and never the RSS
    rows = list(csv.DictReader(open(timeline.to_csv(tmp_path / "t.csv"), encoding="utf-8")))
    assert [r["label"] for r in rows] == [s.label for s in timeline.samples] and int(rows[0]["anon"]) > 0
    data = json.loads((timeline.to_json(tmp_path / "t.json")).read_text())
    assert len(data["samples"]) == len(timeline) and data["events"][0]["kind"] == "load"
    assert data["phases"][-1]["phase"] == "encode"
    png = timeline.render_png(tmp_path / "t.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 5000
    assert not list(tmp_path.glob(".*partial*"))


def test_chart_rows_on_cuda_have_device_series() -> None:
    timeline = Timeline()
    for k in range(2):
        timeline.record("batch", MemorySnapshot(float(k), "cuda:0", GIB, 2 * GIB, 6 * GIB, 8 * GIB, GIB, 3 * GIB,
                                                GIB // 2, 20 * GIB))
    rows = timeline.chart_rows()
    assert {r["series"] for r in rows} == {"process memory (anonymous)", "GPU allocated", "GPU reserved"}
    assert {r["mib"] for r in rows if r["series"] == "GPU reserved"} == {2048.0}
    assert {r["mib"] for r in rows if r["series"].startswith("process")} == {512.0}


def test_a_run_without_samples_says_why_instead_of_empty_axes(tmp_path) -> None:
    timeline = Timeline()
    timeline.note("Flows read from the cache: nothing was extracted.")
    timeline.note("Flows read from the cache: nothing was extracted.")
    assert timeline.notes == ["Flows read from the cache: nothing was extracted."]
    png = timeline.render_png(tmp_path / "hit.png")
    from PIL import Image
    image = np.asarray(Image.open(png).convert("L"))
    dark = image < 128
    # Text only: a few dark pixels in the middle band, no axes or frame lines.
    assert 0 < dark.mean() < 0.05 and not dark[:, :5].any() and not dark[-5:, :].any()


def test_timeline_is_bounded_and_thread_safe() -> None:
    timeline = Timeline(max_samples=100)
    snap = MemorySnapshot(0.0, "cpu", 0, 0, 0, 0, 0, 1)
    threads = [threading.Thread(target=lambda: [timeline.record("batch", snap) for _ in range(500)])
               for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert 50 <= len(timeline) <= 100




def test_png_legend_sits_outside_the_plot(tmp_path) -> None:
    """The legend never covers the memory line: its box lies right of the axes, inside the image."""
    import pytest

    pytest.importorskip("matplotlib")
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    timeline = Timeline()
    for k in range(6):
        with timeline.phase("flow" if k % 2 else "decode"):
            timeline.record(f"s{k}")
    timeline.event("load", "load raft-large")
    figure = timeline.figure()
    canvas = FigureCanvasAgg(figure)
    canvas.draw()
    axes = figure.axes[0]
    legend, plot = axes.get_legend().get_window_extent(), axes.get_window_extent()
    assert legend.x0 >= plot.x1, (legend, plot)
    assert legend.x1 <= figure.bbox.x1 + 1  # not cut off by the image's edge
    png = timeline.render_png(tmp_path / "legend.png")
    assert png.stat().st_size > 5000
