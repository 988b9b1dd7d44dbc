"""Batch-size history and the per-run bookkeeping (RunMemory) with injected memory readers."""
from __future__ import annotations

import json

import pytest
import torch

from wan2gp_structure_video.memory import (AnnotatorPool, BatchOutcome, BatchSizeHistory, PressurePolicy,
                                           RamReading, RunMemory, Timeline, run_with_backoff)

GIB = 1024 ** 3
MIB = 2**20


def test_key_buckets_the_size() -> None:
    assert BatchSizeHistory.key("raft-large|sha:1", "NVIDIA H200", 480, 832, "fp16") == \
        "raft-large|sha:1|NVIDIA H200|832x512|fp16"


def test_recommendation_follows_the_outcomes(tmp_path) -> None:
    path = tmp_path / "history.json"
    history = BatchSizeHistory(path)
    key = "raft-large|cuda|832x512|fp16"
    assert history.recommend(key, 8 * GIB, cap=16) is None
    history.record_run(key, BatchOutcome(start=4, final=4, bytes_per_item=400 * MIB))
    found = BatchSizeHistory(path).recommend(key, 8 * GIB, cap=16)  # read back from the file
    assert found.size == 8 and "1 earlier run" in found.reason  # a clean run with headroom: grow x2
    assert history.recommend(key, 2 * GIB, cap=16).size == int(2 * GIB * 0.85 // (400 * MIB))  # what fits
    assert history.recommend(key, 80 * GIB, cap=6).size == 6  # never above the cap
    history.record_run(key, BatchOutcome(start=8, final=2, ooms=1, bytes_per_item=300 * MIB))
    again = BatchSizeHistory(path)
    assert again.get(key)["runs"] == 2 and again.get(key)["bytes_per_item"] == 400 * MIB  # the safer figure
    found = again.recommend(key, 80 * GIB, cap=16)
    assert found.size == 2 and "backed off" in found.reason
    history.record_run(key, BatchOutcome(start=2, final=2, headroom=False))
    assert history.recommend(key, 80 * GIB, cap=16).size == 2  # still tight: stay
    history.record_run(key, BatchOutcome(start=2, final=2, headroom=True))
    assert history.recommend(key, 80 * GIB, cap=16).size == 4  # room again: grow step by step
    assert not list(tmp_path.glob(".*partial*"))


def test_history_is_bounded_and_drops_the_least_recently_used(tmp_path) -> None:
    history = BatchSizeHistory(tmp_path / "h.json", max_entries=3)
    for k in range(5):
        history.record_run(f"k{k}", BatchOutcome(2, 2))
    data = json.loads((tmp_path / "h.json").read_text())
    assert sorted(data) == ["k2", "k3", "k4"] and len(history) == 3


def test_history_ignores_a_corrupt_file(tmp_path) -> None:
    path = tmp_path / "history.json"
    path.write_text("{not json")
    assert BatchSizeHistory(path).recommend("k", GIB, cap=4) is None
    good = {"runs": 1, "final": 3, "bytes_per_item": 0, "ooms": 0}
    path.write_text(json.dumps({"bad": {"runs": "x", "final": 2}, "ok": good, "neg": {**good, "final": -1}}))
    history = BatchSizeHistory(path)
    assert history.get("bad") is None and history.get("neg") is None and history.get("ok")["final"] == 3


def _ram(fraction: float, budget: int = 4 * GIB) -> RamReading:
    return RamReading(int(budget * fraction), budget - int(budget * fraction), budget)


def _memory(tmp_path, ram_fractions, pool=None) -> RunMemory:
    readings = iter(ram_fractions)
    last = {"f": 0.1}

    def reader() -> RamReading:
        last["f"] = next(readings, last["f"])
        return _ram(last["f"])

    policy = PressurePolicy(ram_reader=reader, sleep=lambda s: None)
    return RunMemory(Timeline(), policy, pool=pool, history=BatchSizeHistory(tmp_path / "h.json"))


def test_explicit_batch_size_wins_and_the_next_run_starts_from_the_learned_size(tmp_path) -> None:
    first = _memory(tmp_path, [0.1] * 50)
    key = first.history_key("dis", 480, 832, "fp32")
    assert key == "dis|cpu|832x512|fp32"
    assert first.choose_batch(key, requested=None, default=8, cap=8) == 8
    assert "default; no history yet" in first.summary_lines()[0]
    first.after_batch(8, 8, 8)
    assert first.finish().final == 8
    second = _memory(tmp_path, [0.1] * 50)
    assert second.choose_batch(key, requested=None, default=8, cap=8) == 8
    assert second.summary_lines()[0].startswith("Batch size 8, learned from 1 earlier run")
    third = _memory(tmp_path, [0.1] * 50)
    assert third.choose_batch(key, requested=3, default=8, cap=8) == 3
    assert third.summary_lines()[0] == "Batch size 3 (set explicitly)"


def test_pressure_before_batches_shrinks_logs_and_marks_the_timeline(tmp_path) -> None:
    pool = AnnotatorPool(offload="plain")
    pool.register("idle", lambda: torch.nn.Linear(2, 2))
    with pool.use("idle", "cpu", teardown="keep"):
        pass
    memory = _memory(tmp_path, [0.1, 0.1, 0.95, 0.95, 0.95, 0.5, 0.5, 0.5], pool=pool)
    items = list(range(20))
    with memory:
        memory.check_pressure("between inputs")
        size = memory.choose_batch("k", None, default=8, cap=8)
        out = list(run_with_backoff(items, lambda batch: [x * 2 for x in batch], size,
                                    between_batches=memory.before_batch,
                                    on_batch=lambda done, s: memory.after_batch(done, len(items), s),
                                    on_oom=memory.on_oom))
    outcome = memory.finish()
    assert out == [x * 2 for x in items]
    assert outcome.start == 8 and outcome.final == 4 and outcome.shrinks == 1 and not outcome.headroom
    kinds = [e.kind for e in memory.timeline.events]
    assert kinds.count("pressure") >= 1 and "release" in kinds and "batch size" in kinds
    assert any(e.text == "batch 8 -> 4 (emergency RAM pressure)" for e in memory.timeline.events)
    assert not pool.is_built("idle")  # released by the emergency tier
    lines = memory.summary_lines()
    assert lines[1] == "Batch size changed: batch 8 -> 4 (emergency RAM pressure)"
    assert lines[2].startswith("Memory pressure: ") and "emergency (RAM 95%)" in lines[2]
    assert memory.reports and all("RAM before:" in r for r in memory.reports)
    nxt = _memory(tmp_path, [0.1] * 10)
    assert nxt.choose_batch("k", None, default=8, cap=8) == 4  # learned


def test_oom_back_off_is_recorded(tmp_path) -> None:
    memory = _memory(tmp_path, [0.1] * 100)
    failed = {"done": False}

    def process(batch):
        if len(batch) > 2 and not failed["done"]:
            failed["done"] = True
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2 GiB")
        return list(batch)

    size = memory.choose_batch("k", None, default=8, cap=8)
    out = list(run_with_backoff(range(10), process, size, between_batches=memory.before_batch,
                                on_batch=lambda d, s: memory.after_batch(d, 10, s), on_oom=memory.on_oom))
    assert out == list(range(10)) and memory.ooms == 1 and memory.size == 2
    assert [e.text for e in memory.timeline.events if e.kind == "oom"] == ["out of memory at batch 8"]
    assert memory.finish().troubled
