"""Memory lifecycle of annotators: pool with offload handles, monitor and timeline, pressure policy,
OOM back-off, batch-size history, host-agnostic release callbacks. Imports torch (and mmgp when present), never gradio or
the preprocessors."""
from .batch_history import BatchSizeHistory
from .host_hooks import PROCESS_GPU_LOCK, PoolOffloadProxy
from .monitor import (MemoryMonitor, MemorySnapshot, empty_device_cache, format_bytes, format_cleanup_report,
                      process_rss)
from .offload import OffloadOptions
from .oom import is_out_of_memory, next_batch_size, run_with_backoff
from .pool import AnnotatorPool, Lease, get_default_pool
from .pressure import PressureDecision, PressurePolicy
from .timeline import Timeline, TimelineSample

__all__ = [
    "AnnotatorPool", "BatchSizeHistory", "Lease", "MemoryMonitor", "MemorySnapshot", "OffloadOptions",
    "PROCESS_GPU_LOCK", "PoolOffloadProxy", "PressureDecision", "PressurePolicy", "Timeline", "TimelineSample",
    "empty_device_cache", "format_bytes", "format_cleanup_report", "get_default_pool",
    "is_out_of_memory", "next_batch_size", "process_rss", "run_with_backoff",
]
