"""Pressure policy driven by a fake monitor: right tier, right actions, in-use annotators kept."""
from __future__ import annotations

import weakref

import pytest
import torch

from wan2gp_structure_video.memory import AnnotatorPool, MemorySnapshot, PressurePolicy

GIB = 1024 ** 3


class _FakeMonitor:
    def __init__(self, used: float, total: int = 10 * GIB) -> None:
        self.used, self.total = used, total

    def snapshot(self) -> MemorySnapshot:
        allocated = int(self.total * self.used)
        return MemorySnapshot(0.0, "cuda:0", allocated, allocated, self.total - allocated, self.total, allocated, 0)


class _RecordingPool:
    def __init__(self) -> None:
        self.calls = []

    def unload_idle(self):
        self.calls.append("unload_idle")
        return ["raft-large"]

    def release_idle(self):
        self.calls.append("release_idle")
        return ["canny"]


@pytest.mark.parametrize("used, level, pool_calls, new_batch", [
    (0.50, "none", [], None),
    (0.72, "standard", [], None),
    (0.85, "aggressive", ["unload_idle"], None),
    (0.95, "emergency", ["release_idle"], 4),
])
def test_tiers(used, level, pool_calls, new_batch) -> None:
    policy = PressurePolicy()
    pool = _RecordingPool()
    decision = policy.check(_FakeMonitor(used), pool, 8)
    assert decision.level == level and pool.calls == pool_calls and decision.new_batch_size == new_batch
    if level != "none":
        assert "empty cache" in decision.actions and "Before:" in decision.report and "After:" in decision.report


def test_configurable_thresholds_and_cpu_noop() -> None:
    policy = PressurePolicy(standard=0.3, aggressive=0.4, emergency=0.5, shrink=0.25)
    assert policy.check(_FakeMonitor(0.45), _RecordingPool(), 8).level == "aggressive"
    assert policy.check(_FakeMonitor(0.55), _RecordingPool(), 8).new_batch_size == 2
    assert policy.check(_FakeMonitor(0.99), _RecordingPool(), 1).new_batch_size is None
    cpu = _FakeMonitor(0.0, total=0)
    assert policy.check(cpu, _RecordingPool(), 8).level == "none"
    with pytest.raises(ValueError):
        PressurePolicy(standard=0.9, aggressive=0.8)


def test_emergency_never_releases_an_annotator_in_use() -> None:
    pool = AnnotatorPool(offload="plain")
    pool.register("busy", lambda: torch.nn.Linear(2, 2))
    pool.register("idle", lambda: torch.nn.Linear(2, 2))
    with pool.use("idle", "cpu", teardown="keep") as lease:
        idle_ref = weakref.ref(lease.model)
        del lease
    with pool.use("busy", "cpu") as lease:
        decision = PressurePolicy().check(_FakeMonitor(0.97), pool, 4)
        assert "release idle" in decision.actions and "release busy" not in decision.actions
        assert lease.model is not None and pool.is_built("busy")
    import gc
    gc.collect()
    assert idle_ref() is None
