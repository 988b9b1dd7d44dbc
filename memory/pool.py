"""The annotator pool: annotators built lazily by registered factories, reused across calls, and
torn down by policy when a scoped use ends — on success, on error and on cancel.

    pool.register(name, build_on_cpu)     # the pipeline's RAFT name is its backend identity
    with pool.use(name, device="cuda", teardown="unload") as lease:
        flows = run(lease.model)

Teardown policies: ``keep`` (stay on the device for the next call; reported to listeners as a GPU
resident), ``unload`` (weights back to RAM, cached blocks freed), ``release`` (destroyed). A
``release``/``unload_all`` asked for while an annotator is in use is deferred to the end of that use.
Every clean-up decides ("nobody uses it") and acts under the pool lock, in one step.
"""
from __future__ import annotations

import contextlib
import logging
import os
import threading
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, Optional

from ..options import TEARDOWNS
from .devices import as_device, is_torch_module
from .monitor import MemoryMonitor, report_cleanup
from .offload import (MmgpPlacement, OffloadOptions, PlainPlacement, drop_references, mmgp_available,
                      module_device_types)

logger = logging.getLogger(__name__)

OFFLOAD_MODES = ("auto", "mmgp", "plain")
#: Environment override of the offload mode (``plain`` disables mmgp).
OFFLOAD_ENV = "WAN2GP_STRUCTURE_VIDEO_OFFLOAD"

Factory = Callable[[], Any]
ResidentListener = Callable[[str, bool], None]


@dataclass
class _Entry:
    name: str
    factory: Factory
    placement: Any = None
    constructed: int = 0
    users: int = 0
    pending: Optional[str] = None  # "unload" or "release", applied when the last user leaves
    device: Optional[Any] = None  # torch.device, or DeviceName while torch is not loaded
    lock: threading.RLock = field(default_factory=threading.RLock)

    @property
    def module(self) -> Any:
        return None if self.placement is None else self.placement.module


class Lease:
    """What a scoped use yields: the annotator, the device it runs on, and a way to move it."""

    def __init__(self, pool: "AnnotatorPool", entry: _Entry, device: Any) -> None:
        self._pool = pool
        self._entry = entry
        self.device = device

    @property
    def model(self) -> Any:
        return self._entry.module

    def move_to(self, device: Any) -> Any:
        """Move the annotator (e.g. to the CPU after an OOM at batch size 1); returns the model."""
        self.device = as_device(device)
        self._pool._place(self._entry, self.device)
        return self._entry.module


class AnnotatorPool:
    """Registry of annotator factories and their live instances."""

    def __init__(self, offload: str = "auto", offload_options: Optional[OffloadOptions] = None) -> None:
        offload = os.environ.get(OFFLOAD_ENV, offload) or "auto"
        if offload not in OFFLOAD_MODES:
            raise ValueError(f"offload must be one of {', '.join(OFFLOAD_MODES)}, not {offload!r}")
        self.offload = offload
        self.offload_options = offload_options or OffloadOptions()
        self._entries: dict[str, _Entry] = {}
        self._lock = threading.RLock()
        self._listeners: list[ResidentListener] = []
        self._event_listeners: list[Callable[[str, str], None]] = []
        self.last_report: Optional[str] = None

    # registry -----------------------------------------------------------------------------
    def register(self, name: str, factory: Factory, *, replace: bool = False) -> None:
        """Register ``factory`` (builds the annotator on the CPU) under ``name``."""
        with self._lock:
            if name in self._entries and not replace:
                raise ValueError(f"annotator {name!r} is already registered")
            if name in self._entries:
                self.release(name)
            self._entries[name] = _Entry(name, factory)

    def is_registered(self, name: str) -> bool:
        return name in self._entries

    def names(self) -> list[str]:
        return list(self._entries)

    def is_built(self, name: str) -> bool:
        entry = self._entries.get(name)
        return entry is not None and entry.placement is not None

    def construct_count(self, name: str) -> int:
        """How many times the factory of ``name`` ran."""
        entry = self._entries.get(name)
        return 0 if entry is None else entry.constructed

    def in_use(self, name: Optional[str] = None) -> bool:
        entries = [self._entries[name]] if name in self._entries else [] if name else list(self._entries.values())
        return any(entry.users for entry in entries)

    def is_on_gpu(self, name: Optional[str] = None) -> bool:
        """Whether ``name`` (or any annotator) has weights on a CUDA device."""
        entries = [self._entries[name]] if name in self._entries else [] if name else list(self._entries.values())
        return any(entry.placement is not None and entry.placement.on_gpu() for entry in entries)

    def add_resident_listener(self, listener: ResidentListener) -> None:
        """``listener(name, resident)`` is told when weights stay on / leave the GPU between calls."""
        if listener not in self._listeners:
            self._listeners.append(listener)

    def remove_resident_listener(self, listener: ResidentListener) -> None:
        with contextlib.suppress(ValueError):
            self._listeners.remove(listener)

    # scoped use -----------------------------------------------------------------------------
    @contextlib.contextmanager
    def use(self, name: str, device: Any = "cpu", teardown: str = "unload") -> Iterator[Lease]:
        """Build (once) and place annotator ``name`` on ``device``; apply ``teardown`` when the block ends."""
        if teardown not in TEARDOWNS:
            raise ValueError(f"teardown must be one of {', '.join(TEARDOWNS)}, not {teardown!r}")
        with self._lock:
            entry = self._entries.get(name)
            if entry is None:
                raise KeyError(f"no annotator registered as {name!r}")
            entry.users += 1
        try:
            with entry.lock:
                if entry.placement is None:
                    self._build(entry)
            device = as_device(device)  # after the build: a torch model has loaded torch by now
            self._place(entry, device)
            yield Lease(self, entry, device)
        finally:
            # Decide and act under the pool lock: a use starting meanwhile waits, then rebuilds if needed.
            with self._lock:
                entry.users -= 1
                notice = None
                if entry.users == 0:
                    action = entry.pending or teardown
                    entry.pending = None
                    notice = self._teardown(entry, action)
            self._notify_all([notice])

    def _build(self, entry: _Entry) -> None:
        logger.info("Building annotator %s", entry.name)
        module = entry.factory()
        if is_torch_module(module):
            module.eval()
            module.requires_grad_(False)
        entry.placement = PlainPlacement(module)
        entry.constructed += 1
        self._cleanup_event("load", entry.name)

    def _wants_mmgp(self, device: Any) -> bool:
        if device.type != "cuda" or self.offload == "plain":
            return False
        return self.offload == "mmgp" or mmgp_available()

    def _place(self, entry: _Entry, device: Any) -> None:
        with entry.lock:
            placement = entry.placement
            if placement is None:
                raise RuntimeError(f"annotator {entry.name} was released while in use")
            if device.type == "cuda" and placement.kind == "plain" and self._wants_mmgp(device) \
                    and is_torch_module(placement.module):
                candidate = MmgpPlacement(placement.module, entry.name.replace("-", "_"), self.offload_options)
                try:
                    candidate.place(device)
                    placement = entry.placement = candidate
                except Exception as error:  # mmgp refused (version, device): the plain path still works
                    logger.warning("mmgp offload unavailable for %s (%s); moving it with .to()", entry.name, error)
                    placement.place(device)
            elif device.type != "cuda" and placement.kind == "mmgp":
                # mmgp's hooks stay on the module: build a fresh, unhooked copy for the CPU.
                placement.release()
                entry.placement = None
                drop_references()
                self._build(entry)
                entry.placement.place(device)
            else:
                placement.place(device)
            entry.device = device

    def _teardown(self, entry: _Entry, action: str) -> Optional[tuple[str, bool]]:
        """Apply ``action`` to an idle entry (pool lock held); returns the listener notice to send."""
        if entry.placement is None:
            return None
        if action == "keep":
            on_gpu = entry.device is not None and entry.device.type == "cuda"
            return (entry.name, True) if on_gpu else None
        return self._unload(entry) if action == "unload" else self._release(entry)

    # cleanup --------------------------------------------------------------------------------
    # Every public clean-up checks ``users`` and acts while holding the pool lock, so no use can start
    # between the check and the act (a use increments ``users`` under the same lock). Listeners are
    # told afterwards, outside the lock.
    def _unload(self, entry: _Entry) -> tuple[str, bool]:
        with entry.lock:
            if entry.placement is not None:
                was_on_gpu = entry.device is not None and entry.device.type == "cuda"
                before = MemoryMonitor(entry.device).snapshot() if was_on_gpu else None
                entry.placement.unload()
                entry.device = as_device("cpu")
                if was_on_gpu:
                    self.last_report = report_cleanup(MemoryMonitor(before.device), f"unload {entry.name}", before)
                    self._cleanup_event("unload", entry.name)
        return entry.name, False

    def _release(self, entry: _Entry) -> tuple[str, bool]:
        with entry.lock:
            placement, entry.placement = entry.placement, None
            was_on_gpu = entry.device is not None and entry.device.type == "cuda"
            before = MemoryMonitor(entry.device).snapshot() if was_on_gpu else None
            entry.device = None
            if placement is not None:
                placement.release()
                del placement
                self._cleanup_event("release", entry.name)
            drop_references()
            if was_on_gpu:
                self.last_report = report_cleanup(MemoryMonitor(before.device), f"release {entry.name}", before)
        return entry.name, False

    def unload_all(self) -> None:
        """Move every annotator's weights off the GPU (kept in RAM); in-use ones when their use ends."""
        notices = []
        with self._lock:
            for entry in list(self._entries.values()):
                if entry.users:
                    entry.pending = entry.pending or "unload"
                elif entry.placement is not None:
                    notices.append(self._unload(entry))
        self._notify_all(notices)

    def release(self, name: Optional[str] = None) -> None:
        """Destroy annotator ``name`` (default: all); in-use ones are destroyed when their use ends."""
        notices = []
        with self._lock:
            entries = [self._entries[name]] if name is not None and name in self._entries else \
                [] if name is not None else list(self._entries.values())
            for entry in entries:
                if entry.users:
                    entry.pending = "release"
                elif entry.placement is not None:
                    notices.append(self._release(entry))
            drop_references()
        self._notify_all(notices)

    def release_idle(self) -> list[str]:
        """Release every annotator that is built and not in use; returns their names."""
        notices = []
        with self._lock:
            for entry in list(self._entries.values()):
                if entry.users == 0 and entry.placement is not None:
                    notices.append(self._release(entry))
        self._notify_all(notices)
        return [name for name, _ in notices]

    def unload_idle(self) -> list[str]:
        """Unload every annotator on the GPU that is not in use; returns their names."""
        notices = []
        with self._lock:
            for entry in list(self._entries.values()):
                if entry.users == 0 and entry.placement is not None and entry.device is not None \
                        and entry.device.type == "cuda":
                    notices.append(self._unload(entry))
        self._notify_all(notices)
        return [name for name, _ in notices]

    def add_event_listener(self, listener: Callable[[str, str], None]) -> None:
        """``listener(kind, name)`` is told of every load, unload and release (for the run's timeline)."""
        if listener not in self._event_listeners:
            self._event_listeners.append(listener)

    def remove_event_listener(self, listener: Callable[[str, str], None]) -> None:
        with contextlib.suppress(ValueError):
            self._event_listeners.remove(listener)

    def _cleanup_event(self, kind: str, name: str) -> None:
        for listener in list(self._event_listeners):
            try:
                listener(kind, name)
            except Exception:  # an observer must never break a clean-up
                logger.exception("pool event listener failed for %s %s", kind, name)

    def _notify_all(self, notices: list) -> None:
        for notice in notices:
            if notice is not None:
                self._notify(*notice)

    def _notify(self, name: str, resident: bool) -> None:
        for listener in list(self._listeners):
            try:
                listener(name, resident)
            except Exception:  # a listener must never break a teardown
                logger.exception("GPU resident listener failed for %s", name)

    def describe(self) -> dict[str, dict]:
        """Name → built, users, device, constructions (for the UI and logs)."""
        return {name: {"built": e.placement is not None, "users": e.users, "constructed": e.constructed,
                       "device": None if e.device is None else str(e.device),
                       "offload": None if e.placement is None else e.placement.kind,
                       "devices": sorted(module_device_types(e.module))}
                for name, e in self._entries.items()}


_DEFAULT_POOL: Optional[AnnotatorPool] = None
_DEFAULT_LOCK = threading.Lock()


def get_default_pool() -> AnnotatorPool:
    """The process-wide pool (shared by the CLI, the app and the plugin)."""
    global _DEFAULT_POOL
    with _DEFAULT_LOCK:
        if _DEFAULT_POOL is None:
            _DEFAULT_POOL = AnnotatorPool()
        return _DEFAULT_POOL
