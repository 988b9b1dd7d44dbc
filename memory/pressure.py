"""Pressure policy: before each batch and between inputs, map memory use to a clean-up tier and apply it.

Two resources are measured at every check, on every machine:

* **RAM** — the process's anonymous memory against its RAM budget (:attr:`RamReading.used_fraction`);
* **device memory** on CUDA — :attr:`MemorySnapshot.used_fraction` (``1 − free / total``).

Tiers (defaults; the higher of the two fractions decides):

* ``standard`` ≥ 70 % — light clean-up: empty PyTorch's device cache (GPU), collect garbage and give
  freed heap pages back to the system (RAM);
* ``aggressive`` ≥ 80 % — also unload idle annotators from the GPU (GPU) or release them (RAM);
* ``emergency`` ≥ 90 % — release every idle annotator, shrink the batch, and when memory is still
  above the emergency line afterwards, pause (``pause_s``, at most once every ``pause_interval_s``)
  so that a neighbour can finish — memory held by the host itself would not go away by waiting.

An annotator in use is never released by the policy. Every action is logged with before/after figures.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import gc
import logging
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Optional

from .monitor import (MemoryMonitor, MemorySnapshot, RamReading, empty_device_cache, format_bytes,
                      format_cleanup_report, read_ram)

logger = logging.getLogger(__name__)

LEVELS = ("none", "standard", "aggressive", "emergency")
MAX_DECISIONS = 1000
RamReader = Callable[[], RamReading]


@dataclass(frozen=True)
class PressureDecision:
    """What one check found and did. ``used_fraction`` is the fraction of ``resource`` that decided."""

    level: str
    used_fraction: float
    actions: tuple[str, ...] = ()
    new_batch_size: Optional[int] = None
    report: str = ""
    resource: str = "RAM"
    device_fraction: float = 0.0
    ram_fraction: float = 0.0

    @property
    def acted(self) -> bool:
        return self.level != "none"


@dataclass
class PressurePolicy:
    """Thresholds as fractions of the budget; ``shrink`` is the emergency batch factor.

    ``ram_budget`` (bytes) lowers the RAM budget below ``anonymous + available``; ``ram_reader``
    replaces the reading of ``/proc`` (tests inject one); ``sleep`` is the pause (tests inject one).
    """

    standard: float = 0.70
    aggressive: float = 0.80
    emergency: float = 0.90
    shrink: float = 0.5
    ram_budget: Optional[int] = None
    pause_s: float = 0.5
    pause_interval_s: float = 10.0
    ram_reader: Optional[RamReader] = field(default=None, repr=False)
    sleep: Callable[[float], None] = field(default=time.sleep, repr=False)
    decisions: list[PressureDecision] = field(default_factory=list, repr=False)
    _last_pause: Optional[float] = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        if not 0.0 < self.standard <= self.aggressive <= self.emergency <= 1.0:
            raise ValueError("pressure thresholds must satisfy 0 < standard <= aggressive <= emergency <= 1")
        if not 0.0 < self.shrink < 1.0:
            raise ValueError("shrink must be between 0 and 1 (exclusive)")
        if self.ram_budget is not None and self.ram_budget <= 0:
            raise ValueError("ram_budget must be a positive number of bytes (or None)")

    def level_for(self, used_fraction: float) -> str:
        if used_fraction >= self.emergency:
            return "emergency"
        if used_fraction >= self.aggressive:
            return "aggressive"
        if used_fraction >= self.standard:
            return "standard"
        return "none"

    def read_ram(self) -> RamReading:
        return self.ram_reader() if self.ram_reader is not None else read_ram(self.ram_budget)

    def measure(self, monitor: Optional[MemoryMonitor]) -> tuple[Optional[MemorySnapshot], RamReading]:
        """The device snapshot (None without a monitor) and the RAM reading, without acting."""
        return (monitor.snapshot() if monitor is not None else None), self.read_ram()

    def check(self, monitor: Optional[MemoryMonitor], pool: Any, batch_size: int) -> PressureDecision:
        """Measure both resources, pick the tier, act; ``new_batch_size`` is set in an emergency."""
        device_before, ram_before = self.measure(monitor)
        device_used = device_before.used_fraction if device_before is not None else 0.0
        ram_used = ram_before.used_fraction
        device_level, ram_level = self.level_for(device_used), self.level_for(ram_used)
        level = max(device_level, ram_level, key=LEVELS.index)
        resource = "GPU" if LEVELS.index(device_level) >= LEVELS.index(ram_level) and device_used else "RAM"
        used = device_used if resource == "GPU" else ram_used
        if level == "none":
            return PressureDecision(level, used, resource=resource, device_fraction=device_used, ram_fraction=ram_used)
        actions = self._act(device_level, ram_level, pool)
        new_batch: Optional[int] = None
        if level == "emergency" and batch_size > 1:
            new_batch = max(1, int(batch_size * self.shrink))
            actions.append(f"batch {batch_size} -> {new_batch}")
        device_after, ram_after = self.measure(monitor)
        if level == "emergency" and self._may_pause() and self._still_emergency(device_after, ram_after):
            self._last_pause = time.monotonic()
            self.sleep(self.pause_s)
            actions.append(f"pause {self.pause_s:g}s")
            device_after, ram_after = self.measure(monitor)
        title = f"Memory pressure {level} ({resource} {used:.0%} used): {', '.join(actions)}"
        report = _report(title, device_before, device_after, ram_before, ram_after, device_level != "none")
        logger.info(report)
        decision = PressureDecision(level, used, tuple(actions), new_batch, report, resource, device_used, ram_used)
        self.decisions.append(decision)
        del self.decisions[:-MAX_DECISIONS]  # a policy shared by many runs stays small
        return decision

    def _act(self, device_level: str, ram_level: str, pool: Any) -> list[str]:
        actions: list[str] = []
        device_rank, ram_rank = LEVELS.index(device_level), LEVELS.index(ram_level)
        if ram_rank >= 1 or device_rank >= 2:
            gc.collect()
            actions.append("gc")
        if pool is not None and (device_rank >= 3 or ram_rank >= 2):
            actions.extend(f"release {name}" for name in pool.release_idle())
        elif pool is not None and device_rank == 2:
            actions.extend(f"unload {name}" for name in pool.unload_idle())
        if device_rank >= 1:
            empty_device_cache(collect=False)
            actions.append("empty cache")
        if ram_rank >= 1 and trim_heap():
            actions.append("trim heap")
        return actions

    def _may_pause(self) -> bool:
        return self.pause_s > 0 and (self._last_pause is None
                                     or time.monotonic() - self._last_pause >= self.pause_interval_s)

    def _still_emergency(self, device: Optional[MemorySnapshot], ram: RamReading) -> bool:
        device_used = device.used_fraction if device is not None else 0.0
        return max(device_used, ram.used_fraction) >= self.emergency


def trim_heap() -> bool:
    """Give freed heap pages back to the system (glibc ``malloc_trim``); False where unavailable."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.malloc_trim(0)
        return True
    except (OSError, AttributeError):
        return False


def format_ram_report(before: RamReading, after: RamReading) -> str:
    """``RAM before: 1.20 GB of 3.00 GB budget. After: 0.90 GB.``"""
    return (f"RAM before: {format_bytes(before.anon)} of {format_bytes(before.budget)} budget. "
            f"After: {format_bytes(after.anon)}.")


def _report(title: str, device_before: Optional[MemorySnapshot], device_after: Optional[MemorySnapshot],
            ram_before: RamReading, ram_after: RamReading, device_acted: bool) -> str:
    parts = [title + "."]
    if device_acted and device_before is not None and device_after is not None:
        parts.append(format_cleanup_report(device_before, device_after))
    parts.append(format_ram_report(ram_before, ram_after))
    return " ".join(parts)
