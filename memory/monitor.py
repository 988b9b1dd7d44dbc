"""Snapshots of device memory and of this process's RAM, and before/after cleanup reports.

Device: asked of torch only when torch is already loaded (a DIS or canny run never imports it);
free memory counts PyTorch's cached-but-unused blocks as free (they are ours to reuse) and
respects a per-process memory fraction set with ``torch.cuda.set_per_process_memory_fraction``.

RAM: the figure that matters is the process's *anonymous* memory (``RssAnon``: heap, tensors, arrays),
not its RSS, which also counts file pages mapped in — the memory-mapped flow file would otherwise look
like a leak. It is compared with what the system still has available (``MemAvailable``).

One definition of each quantity, used everywhere (pressure policy, charts, reports):

* :attr:`MemorySnapshot.used_fraction` — share of the usable device memory this process can no
  longer get: ``1 − free / total`` (0 on the CPU);
* :attr:`RamReading.used_fraction` — the process's anonymous memory over its RAM budget, the budget
  being ``anonymous + available`` (what it could grow to), or less when a lower budget is set.
"""
from __future__ import annotations

import gc
import logging
import os
import time
from dataclasses import asdict, dataclass
from typing import Any, Optional

from .devices import as_device, cuda_ready, loaded_torch

logger = logging.getLogger(__name__)

GIB = 1024 ** 3


def _proc_kib_field(path: str, key: str) -> Optional[int]:
    """The ``<key>: N kB`` line of a ``/proc`` file, in bytes (``None`` where it cannot be read)."""
    try:
        with open(path, encoding="ascii") as handle:
            for line in handle:
                if line.startswith(key + ":"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def process_anon() -> int:
    """Anonymous resident memory of this process in bytes (``RssAnon``; RSS where it cannot be read)."""
    anon = _proc_kib_field("/proc/self/status", "RssAnon")
    return process_rss() if anon is None else anon


def system_available() -> int:
    """RAM the system can still give processes without swapping, in bytes (0 when unknown)."""
    try:
        import psutil
        return int(psutil.virtual_memory().available)
    except Exception:  # pragma: no cover - psutil is a dependency; this is a last resort
        return _proc_kib_field("/proc/meminfo", "MemAvailable") or 0


@dataclass(frozen=True)
class RamReading:
    """This process's anonymous memory against its RAM budget, in bytes."""

    anon: int
    available: int
    budget: int

    @property
    def used_fraction(self) -> float:
        """``anon / budget`` (0 when the budget is unknown)."""
        return min(1.0, self.anon / self.budget) if self.budget > 0 else 0.0


def read_ram(budget: Optional[int] = None) -> RamReading:
    """The current :class:`RamReading`; ``budget`` (bytes) lowers the budget below ``anon + available``."""
    anon, available = process_anon(), system_available()
    natural = anon + available if available else 0
    limit = min(natural, int(budget)) if budget and natural else int(budget or natural)
    return RamReading(anon, available, limit)


def process_rss() -> int:
    """Resident set size of this process in bytes (0 when it cannot be read)."""
    try:
        import psutil
        return int(psutil.Process(os.getpid()).memory_info().rss)
    except Exception:  # pragma: no cover - psutil is a dependency; this is a last resort
        try:
            with open("/proc/self/statm", encoding="ascii") as handle:
                return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
        except (OSError, ValueError, IndexError):
            return 0


@dataclass(frozen=True)
class MemorySnapshot:
    """Memory figures at one moment, in bytes (device figures are 0 on the CPU).

    ``rss`` is the resident set (file-backed pages included), ``anon`` the anonymous part of it,
    ``available`` the system's available RAM.
    """

    time: float
    device: str
    allocated: int
    reserved: int
    free: int
    total: int
    peak: int
    rss: int
    anon: int = 0
    available: int = 0

    @property
    def used_fraction(self) -> float:
        """Share of the usable device memory this process can no longer get: ``1 − free/total`` (0 on the CPU)."""
        return min(1.0, max(0.0, 1.0 - self.free / self.total)) if self.total else 0.0

    def to_dict(self) -> dict:
        return asdict(self)


def _cuda_fraction(torch: Any, index: int) -> float:
    """The per-process memory fraction set for this device (1.0 when none is set)."""
    try:
        getter = getattr(torch.cuda, "get_per_process_memory_fraction", None)
        if getter is not None:
            return float(getter(index))
    except Exception:
        pass
    return 1.0


class MemoryMonitor:
    """Reads memory figures for one device (``"cpu"``, ``"cuda"``, ``"cuda:1"``)."""

    def __init__(self, device: Any = "cpu") -> None:
        self.device = as_device(device)
        if self.device.type == "cuda" and self.device.index is None:
            torch = loaded_torch()
            self.device = torch.device("cuda", torch.cuda.current_device() if torch.cuda.is_available() else 0)

    @property
    def on_cuda(self) -> bool:
        return self.device.type == "cuda" and cuda_ready()

    def snapshot(self) -> MemorySnapshot:
        """Current figures. On CUDA, ``total`` is the usable memory (fraction applied) and ``free`` is
        what this process could still allocate: driver-free memory plus PyTorch's cached-but-free blocks,
        capped by the fraction."""
        now = time.time()
        rss, anon, available = process_rss(), process_anon(), system_available()
        if not self.on_cuda:
            return MemorySnapshot(now, str(self.device), 0, 0, 0, 0, 0, rss, anon, available)
        index, torch = self.device.index or 0, loaded_torch()
        allocated = int(torch.cuda.memory_allocated(index))
        reserved = int(torch.cuda.memory_reserved(index))
        peak = int(torch.cuda.max_memory_allocated(index))
        driver_free, device_total = torch.cuda.mem_get_info(index)
        usable = int(device_total * min(1.0, max(0.0, _cuda_fraction(torch, index))))
        free = min(int(driver_free) + (reserved - allocated), max(0, usable - allocated))
        return MemorySnapshot(now, str(self.device), allocated, reserved, max(0, free), usable, peak, rss, anon,
                              available)


def format_bytes(count: float) -> str:
    """``2.34 GB`` style (GiB based, two decimals)."""
    return f"{count / GIB:.2f} GB"


def format_cleanup_report(before: MemorySnapshot, after: MemorySnapshot, action: str = "") -> str:
    """``Before: 2.34 GB allocated, 2.56 GB reserved. After: 0.12 GB allocated, 1.45 GB reserved.``"""
    prefix = f"{action}: " if action else ""
    if before.total == 0 and after.total == 0:
        return (f"{prefix}Before: {format_bytes(before.anon or before.rss)} process memory. "
                f"After: {format_bytes(after.anon or after.rss)} process memory.")
    return (f"{prefix}Before: {format_bytes(before.allocated)} allocated, {format_bytes(before.reserved)} reserved. "
            f"After: {format_bytes(after.allocated)} allocated, {format_bytes(after.reserved)} reserved.")


def empty_device_cache(collect: bool = True, device: Any = None) -> None:
    """Give PyTorch's cached device blocks back (after an optional ``gc.collect()``): the one device-cache
    clear, used by pressure clean-ups, offloading and the OOM back-off (``device``: only when it is CUDA)."""
    if collect:
        gc.collect()
    if device is not None and not str(device).startswith("cuda"):
        return
    torch = loaded_torch()
    if torch is not None and torch.cuda.is_available() and torch.cuda.is_initialized():
        torch.cuda.empty_cache()
        try:
            torch.cuda.ipc_collect()
        except Exception:  # not available on every platform
            pass


def report_cleanup(monitor: Optional[MemoryMonitor], action: str, before: Optional[MemorySnapshot]) -> Optional[str]:
    """Log (and return) the before/after report of a cleanup that started at ``before``."""
    if monitor is None or before is None:
        return None
    text = format_cleanup_report(before, monitor.snapshot(), action)
    logger.info(text)
    return text
