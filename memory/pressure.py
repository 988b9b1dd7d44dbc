"""Pressure policy: between batches, map device memory use to a cleanup tier and apply it.

Tiers (defaults, share of usable device memory in use): ``standard`` ≥ 70 % empties PyTorch's cache;
``aggressive`` ≥ 80 % also collects garbage and unloads idle annotators; ``emergency`` ≥ 90 % releases
every idle annotator and shrinks the batch. An annotator in use is never released by the policy.
Every action is logged with before/after figures.
"""
from __future__ import annotations

import gc
import logging
from dataclasses import dataclass, field
from typing import Any, Optional

from .monitor import MemoryMonitor, empty_device_cache, format_cleanup_report

logger = logging.getLogger(__name__)

LEVELS = ("none", "standard", "aggressive", "emergency")


@dataclass(frozen=True)
class PressureDecision:
    """What one check found and did."""

    level: str
    used_fraction: float
    actions: tuple[str, ...] = ()
    new_batch_size: Optional[int] = None
    report: str = ""


@dataclass
class PressurePolicy:
    """Thresholds as fractions of usable device memory; ``shrink`` is the emergency batch factor."""

    standard: float = 0.70
    aggressive: float = 0.80
    emergency: float = 0.90
    shrink: float = 0.5
    decisions: list[PressureDecision] = field(default_factory=list, repr=False)

    def __post_init__(self) -> None:
        if not 0.0 < self.standard <= self.aggressive <= self.emergency <= 1.0:
            raise ValueError("pressure thresholds must satisfy 0 < standard <= aggressive <= emergency <= 1")
        if not 0.0 < self.shrink < 1.0:
            raise ValueError("shrink must be between 0 and 1 (exclusive)")

    def level_for(self, used_fraction: float) -> str:
        if used_fraction >= self.emergency:
            return "emergency"
        if used_fraction >= self.aggressive:
            return "aggressive"
        if used_fraction >= self.standard:
            return "standard"
        return "none"

    def check(self, monitor: MemoryMonitor, pool: Any, batch_size: int) -> PressureDecision:
        """Measure, pick the tier, act; returns the decision (``new_batch_size`` set in an emergency)."""
        before = monitor.snapshot()
        if not before.total:
            return PressureDecision("none", 0.0)
        used = 1.0 - before.free / before.total
        level = self.level_for(used)
        if level == "none":
            return PressureDecision(level, used)
        actions: list[str] = []
        new_batch: Optional[int] = None
        if level in ("aggressive", "emergency"):
            gc.collect()
            actions.append("gc")
        if level == "aggressive" and pool is not None:
            unloaded = pool.unload_idle()
            actions.extend(f"unload {name}" for name in unloaded)
        if level == "emergency":
            if pool is not None:
                released = pool.release_idle()
                actions.extend(f"release {name}" for name in released)
            new_batch = max(1, int(batch_size * self.shrink)) if batch_size > 1 else None
            if new_batch is not None:
                actions.append(f"batch {batch_size} -> {new_batch}")
        empty_device_cache(collect=False)
        actions.append("empty cache")
        report = format_cleanup_report(before, monitor.snapshot(),
                                       f"Memory pressure {level} ({used:.0%} used): {', '.join(actions)}")
        logger.info(report)
        decision = PressureDecision(level, used, tuple(actions), new_batch, report)
        self.decisions.append(decision)
        return decision
