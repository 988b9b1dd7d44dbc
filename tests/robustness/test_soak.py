"""Soak: sequential extractions in one process (``SOAK_RUNS``, default 12; ``bench/soak.py`` runs 50) —
RAFT constructed once, RSS after warm-up grows by at most 5 %, no fd or temp-file leaks."""
from __future__ import annotations

import importlib.util
import os
import tempfile
from pathlib import Path

import pytest

RUNS = int(os.environ.get("SOAK_RUNS", "12"))
BENCH = Path(__file__).resolve().parents[2] / "bench" / "soak.py"


def _bench_module():
    spec = importlib.util.spec_from_file_location("sv_bench_soak", BENCH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="counts fds through /proc")
def test_sequential_extractions_do_not_leak(tmp_path, monkeypatch) -> None:
    # A private temporary folder: other processes' "sv-" folders in the shared one must not count.
    private = tmp_path / "tmp"
    private.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(private))
    bench = _bench_module()
    result = bench.soak(RUNS, tmp_path / "soak")
    assert result["construct_count"] == 1 and not result["in_use"]
    assert result["rss_growth"] <= 0.05, [s["rss"] for s in result["samples"]]
    assert result["fds_end"] <= result["fds_warm"], [s["fds"] for s in result["samples"]]
    assert not result["temp_leaked"]
    assert all(s["temp"] == 0 for s in result["samples"])
