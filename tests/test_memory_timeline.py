"""Monitor, timeline exports, cleanup reports and the batch-size history."""
from __future__ import annotations

import csv
import json
import threading

import numpy as np

from wan2gp_structure_video.memory import (BatchSizeHistory, MemoryMonitor, MemorySnapshot, Timeline,
                                           format_cleanup_report)

GIB = 1024 ** 3


def test_cpu_snapshot_has_rss_and_no_device_figures() -> None:
    snap = MemoryMonitor("cpu").snapshot()
    assert snap.rss > 10 * 2**20 and snap.total == 0 and snap.free == 0


def test_rss_follows_a_large_allocation() -> None:
    monitor = MemoryMonitor("cpu")
    before = monitor.snapshot().rss
    block = np.ones(64 * 2**20, dtype=np.uint8)
    after = monitor.snapshot().rss
    assert after - before > 48 * 2**20
    del block


def test_cleanup_report_text() -> None:
    a = MemorySnapshot(0, "cuda:0", int(2.34 * GIB), int(2.56 * GIB), 0, 10 * GIB, 0, 0)
    b = MemorySnapshot(1, "cuda:0", int(0.12 * GIB), int(1.45 * GIB), 0, 10 * GIB, 0, 0)
    assert format_cleanup_report(a, b) == ("Before: 2.34 GB allocated, 2.56 GB reserved. "
                                           "After: 0.12 GB allocated, 1.45 GB reserved.")


def test_timeline_exports(tmp_path) -> None:
    timeline = Timeline()
    for label in ["start", "raft-large loaded", "batch 1/3", "batch 3/3", "released"]:
        timeline.record(label)
    assert [s.label for s in timeline.samples][0] == "start" and timeline.samples[0].t == 0.0
    rows = list(csv.DictReader(open(timeline.to_csv(tmp_path / "t.csv"), encoding="utf-8")))
    assert [r["label"] for r in rows] == [s.label for s in timeline.samples] and int(rows[0]["rss"]) > 0
    data = json.loads((timeline.to_json(tmp_path / "t.json")).read_text())
    assert len(data["samples"]) == 5 and data["samples"][-1]["label"] == "released"
    png = timeline.render_png(tmp_path / "t.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 5000
    assert not list(tmp_path.glob(".*partial*"))
    empty = Timeline().render_png(tmp_path / "empty.png")
    assert empty.stat().st_size > 1000


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


def test_batch_history_suggests_from_free_memory_and_persists(tmp_path) -> None:
    path = tmp_path / "history.json"
    history = BatchSizeHistory(path)
    key = history.key("raft-large", "NVIDIA H200", 480, 832, "fp16")
    assert key == "raft-large|NVIDIA H200|832x512|fp16"
    assert history.suggest(key, 8 * GIB, default=3) == 3
    history.record(key, 6, 400 * 2**20)
    history.record(key, 4, 300 * 2**20)  # smaller run: keep the larger batch and the safer bytes/item
    again = BatchSizeHistory(path)
    assert again.get(key) == {"batch": 6, "bytes_per_item": 400 * 2**20}
    assert again.suggest(key, 8 * GIB, default=3) == int(8 * GIB * 0.85 // (400 * 2**20))
    assert again.suggest(key, 0, default=3) == 1


def test_batch_history_ignores_a_corrupt_file(tmp_path) -> None:
    path = tmp_path / "history.json"
    path.write_text("{not json")
    history = BatchSizeHistory(path)
    assert history.suggest("k", GIB, default=2) == 2
    path.write_text(json.dumps({"k": {"batch": "x", "bytes_per_item": 5}, "ok": {"batch": 2, "bytes_per_item": 9}}))
    history = BatchSizeHistory(path)
    assert history.get("k") is None and history.get("ok") == {"batch": 2, "bytes_per_item": 9}
