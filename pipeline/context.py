"""The collaborators of one run (pool, progress, GPU lock, memory, cache), with standalone defaults."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, ContextManager, Optional

from ..errors import CacheError
from ..memory import (PROCESS_GPU_LOCK, AnnotatorPool, BatchSizeHistory, PressurePolicy, Timeline, default_history,
                      get_default_pool)
from ..preprocessors.cache.flow_cache import FlowCache
from ..progress import Progress, ensure_progress
from ..scratch_dirs import make_scratch_dir
from .device_choice import WeightsLocator

#: Serialises annotator work on the GPU when the host provides no lock of its own.
_PROCESS_GPU_LOCK = PROCESS_GPU_LOCK


@dataclass
class RunContext:
    """Collaborators of one run; every field has a sensible standalone default (the batch-size history
    in the user data folder and the default pressure policy included, so every run adapts and is guarded)."""

    pool: Optional[AnnotatorPool] = None
    progress: Optional[Progress] = None
    weights_locator: Optional[WeightsLocator] = None
    gpu_lock: Optional[Callable[[], ContextManager[object]]] = None
    timeline: Optional[Timeline] = None
    history: Optional[BatchSizeHistory] = None
    pressure: Optional[PressurePolicy] = None
    work_dir: Optional[Path] = None
    cache: Optional[FlowCache] = None
    use_cache: bool = True

    def resolved(self) -> "RunContext":
        """A copy with defaults filled in."""
        return RunContext(
            pool=self.pool or get_default_pool(),
            progress=ensure_progress(self.progress),
            weights_locator=self.weights_locator,
            gpu_lock=self.gpu_lock or (lambda: _PROCESS_GPU_LOCK),
            timeline=self.timeline if self.timeline is not None else Timeline(),
            history=self.history if self.history is not None else default_history(),
            pressure=self.pressure or PressurePolicy(),
            work_dir=self.work_dir,
            cache=(self.cache or FlowCache()) if self.use_cache else None,
            use_cache=self.use_cache,
        )

    def scratch_dir(self, kind: str) -> Path:
        """A new private folder under ``work_dir`` (default: the system temp folder) for uncached
        intermediate data; the caller removes it. Folders of killed earlier runs are swept first."""
        try:
            return make_scratch_dir(kind, self.work_dir)
        except OSError as exc:
            where = self.work_dir or "the temp folder"
            raise CacheError(f"Cannot create a temporary folder in {where}: {exc.strerror or exc}; free disk space "
                             "or point TMPDIR at a writable folder.") from exc
