"""Sharing the GPU with a host: the process-wide GPU lock, and the pool's release face for the host.

Neither is a hook: the hooks that touch Wan2GP live in ``ui/host_bridge/hooks.py``, which hands the
host these two. A host that frees memory on its own schedule gets the pool as an object with
``unload_all()`` and ``release()``, the shape of an mmgp offload object; annotator work takes
``PROCESS_GPU_LOCK`` inside the host's own lock. This module knows nothing of any host and imports
none of its modules.
"""
from __future__ import annotations

import threading

from .pool import AnnotatorPool

#: Serialises annotator work on the GPU inside this process (taken inside the host's lock when there is one).
PROCESS_GPU_LOCK = threading.RLock()


class PoolOffloadProxy:
    """The pool seen as an offload object: ``unload_all()`` (weights off the GPU) and ``release()``."""

    def __init__(self, pool: AnnotatorPool) -> None:
        self._pool = pool

    def unload_all(self) -> None:
        self._pool.unload_all()

    def release(self) -> None:
        self._pool.release()
