"""Memory lifecycle of annotators: pool with offload handles, monitor and timeline, pressure policy,
OOM back-off, batch-size history, the per-run bookkeeping (:class:`RunMemory`), host-agnostic release callbacks.
Never imports torch itself (it asks torch only once a model has loaded it: :mod:`.devices`), nor
gradio, host modules or the preprocessors; mmgp only when a CUDA placement asks for it."""
from .batch_history import BatchOutcome, BatchSizeHistory, Recommendation, default_history
from .gpu_sharing import PROCESS_GPU_LOCK, PoolOffloadProxy
from .monitor import (MemoryMonitor, MemorySnapshot, RamReading, empty_device_cache, format_bytes,
                      format_cleanup_report, process_anon, process_rss, read_ram)
from .offload import OffloadOptions
from .oom import is_out_of_memory, next_batch_size, run_with_backoff
from .pool import AnnotatorPool, Lease, get_default_pool
from .pressure import PressureDecision, PressurePolicy
from .run_memory import RunMemory
from .timeline import Timeline, TimelineEvent, TimelinePhase, TimelineSample

__all__ = [
    "AnnotatorPool", "BatchOutcome", "BatchSizeHistory", "Lease", "MemoryMonitor", "MemorySnapshot",
    "OffloadOptions", "PROCESS_GPU_LOCK", "PoolOffloadProxy", "PressureDecision", "PressurePolicy", "RamReading",
    "Recommendation", "RunMemory", "Timeline", "TimelineEvent", "TimelinePhase", "TimelineSample",
    "default_history", "empty_device_cache", "format_bytes", "format_cleanup_report", "get_default_pool",
    "is_out_of_memory", "next_batch_size", "process_anon", "process_rss", "read_ram", "run_with_backoff",
]
