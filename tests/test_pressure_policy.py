"""Pressure policy driven by injected readers: right tier for GPU and RAM, right actions, in-use kept."""
from __future__ import annotations

import gc
import weakref

import pytest
import torch

from wan2gp_structure_video.memory import AnnotatorPool, MemorySnapshot, PressurePolicy, RamReading, read_ram

GIB = 1024 ** 3


class _FakeMonitor:
    def __init__(self, used: float, total: int = 10 * GIB) -> None:
        self.used, self.total = used, total

    def snapshot(self) -> MemorySnapshot:
        allocated = int(self.total * self.used)
        return MemorySnapshot(0.0, "cuda:0", allocated, allocated, self.total - allocated, self.total, allocated, 0)


def _ram(fraction: float, budget: int = 4 * GIB):
    return lambda: RamReading(int(budget * fraction), budget - int(budget * fraction), budget)


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
def test_gpu_tiers(used, level, pool_calls, new_batch) -> None:
    pauses = []
    policy = PressurePolicy(ram_reader=_ram(0.1), sleep=pauses.append)
    pool = _RecordingPool()
    decision = policy.check(_FakeMonitor(used), pool, 8)
    assert decision.level == level and pool.calls == pool_calls and decision.new_batch_size == new_batch
    assert decision.device_fraction == pytest.approx(used, abs=1e-6)
    if level != "none":
        assert decision.resource == "GPU" and "empty cache" in decision.actions
        assert "Before:" in decision.report and "After:" in decision.report
    if level == "emergency":  # the fake stays at 95 %: one pause, then on
        assert pauses == [policy.pause_s] and f"pause {policy.pause_s:g}s" in decision.actions


@pytest.mark.parametrize("used, level, pool_calls, new_batch", [
    (0.30, "none", [], None),
    (0.75, "standard", [], None),
    (0.85, "aggressive", ["release_idle"], None),
    (0.93, "emergency", ["release_idle"], 3),
])
def test_ram_tiers_act_on_a_cpu_machine(used, level, pool_calls, new_batch) -> None:
    pauses = []
    policy = PressurePolicy(ram_reader=_ram(used), sleep=pauses.append)
    pool = _RecordingPool()
    decision = policy.check(None, pool, 6)  # no device monitor: a CPU machine
    assert (decision.level, decision.resource, pool.calls, decision.new_batch_size) == (level, "RAM", pool_calls,
                                                                                       new_batch)
    assert decision.ram_fraction == pytest.approx(used, abs=1e-6)
    if level != "none":
        assert "gc" in decision.actions and "empty cache" not in decision.actions
        assert decision.report.startswith(f"Memory pressure {level} (RAM {used:.0%} used)")
        assert "RAM before:" in decision.report and policy.decisions[-1] is decision
    assert bool(pauses) == (level == "emergency")


def test_the_worse_resource_decides() -> None:
    policy = PressurePolicy(ram_reader=_ram(0.91), sleep=lambda s: None)
    decision = policy.check(_FakeMonitor(0.75), _RecordingPool(), 8)
    assert (decision.level, decision.resource, decision.new_batch_size) == ("emergency", "RAM", 4)
    assert "empty cache" in decision.actions  # the GPU's own standard tier still acts


def test_pauses_are_rate_limited() -> None:
    pauses = []
    policy = PressurePolicy(ram_reader=_ram(0.95), sleep=pauses.append, pause_interval_s=60)
    for _ in range(3):
        assert policy.check(None, None, 8).level == "emergency"
    assert pauses == [policy.pause_s]  # memory the host holds does not go away by waiting: once a minute
    assert [any("pause" in a for a in d.actions) for d in policy.decisions] == [True, False, False]


def test_no_pause_when_the_clean_up_worked() -> None:
    readings = iter([0.95, 0.5, 0.5])
    pauses = []
    policy = PressurePolicy(ram_reader=lambda: _ram(next(readings))(), sleep=pauses.append)
    decision = policy.check(None, _RecordingPool(), 8)
    assert decision.level == "emergency" and pauses == [] and not any("pause" in a for a in decision.actions)


def test_configurable_thresholds() -> None:
    policy = PressurePolicy(standard=0.3, aggressive=0.4, emergency=0.5, shrink=0.25, ram_reader=_ram(0.0),
                            sleep=lambda s: None)
    assert policy.check(_FakeMonitor(0.45), _RecordingPool(), 8).level == "aggressive"
    assert policy.check(_FakeMonitor(0.55), _RecordingPool(), 8).new_batch_size == 2
    assert policy.check(_FakeMonitor(0.99), _RecordingPool(), 1).new_batch_size is None
    with pytest.raises(ValueError):
        PressurePolicy(standard=0.9, aggressive=0.8)
    with pytest.raises(ValueError):
        PressurePolicy(ram_budget=0)


def test_real_ram_reading_and_a_lowered_budget() -> None:
    natural = read_ram()
    assert natural.anon > 10 * 2**20 and natural.budget >= natural.anon and 0 < natural.used_fraction < 1
    tight = read_ram(budget=natural.anon)  # a budget the process already fills
    assert tight.budget == natural.anon and tight.used_fraction > 0.5
    decision = PressurePolicy(ram_budget=max(1, natural.anon // 2), sleep=lambda s: None).check(None, None, 4)
    assert decision.level == "emergency" and decision.new_batch_size == 2 and decision.resource == "RAM"


def test_emergency_never_releases_an_annotator_in_use() -> None:
    pool = AnnotatorPool(offload="plain")
    pool.register("busy", lambda: torch.nn.Linear(2, 2))
    pool.register("idle", lambda: torch.nn.Linear(2, 2))
    with pool.use("idle", "cpu", teardown="keep") as lease:
        idle_ref = weakref.ref(lease.model)
        del lease
    with pool.use("busy", "cpu") as lease:
        decision = PressurePolicy(ram_reader=_ram(0.1), sleep=lambda s: None).check(_FakeMonitor(0.97), pool, 4)
        assert "release idle" in decision.actions and "release busy" not in decision.actions
        assert lease.model is not None and pool.is_built("busy")
    gc.collect()
    assert idle_ref() is None
