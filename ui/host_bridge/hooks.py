"""Hooks into Wan2GP so that its own memory management also frees our annotators.

Each hook is applied only when the host offers it, is idempotent and can be undone:

* ``clear_gen_cache`` (replaced through the plugin's ``set_global``): our wrapper releases every
  annotator, then calls the host's original — even if our part fails; the original's exceptions
  still reach the host. The host calls it before loading another main model (e.g. VACE).
* the offload registry (``register_offloadobj``): the host's "unload models" tool releases the pool;
* GPU residents (``register_GPU_resident``): while weights stay on the GPU between calls the host
  knows how to release them before a generation takes the GPU;
* the GPU lock (``acquire_GPU_ressources`` / ``release_GPU_ressources``) around extraction: handed to
  the pipeline as ``RunContext.gpu_lock`` (see :meth:`HostHooks.gpu_lock_for`).
"""
from __future__ import annotations

import contextlib
import functools
import logging
import sys
from typing import Any, Callable, Iterator, Optional

from ...memory import PROCESS_GPU_LOCK, AnnotatorPool, PoolOffloadProxy, get_default_pool
from ._host import host_helper_module, host_module

logger = logging.getLogger(__name__)

PROCESS_ID = "structure_video"
PROCESS_NAME = "Structure Video"
_WRAPPER_MARK = "_structure_video_original"


class HostHooks:
    """The installed hooks of one plugin instance; :meth:`uninstall` undoes them."""

    def __init__(self, plugin: Any, pool: AnnotatorPool, host_modules: Optional[dict[str, Any]] = None) -> None:
        self.plugin = plugin
        self.pool = pool
        self._modules = host_modules
        self.original_clear_gen_cache: Optional[Callable[..., Any]] = None
        self.wrapper: Optional[Callable[..., Any]] = None
        self.state: Any = None
        self._proxy = PoolOffloadProxy(pool)
        self._resident_registered = False
        self.installed = False
        #: How often the host's ``clear_gen_cache`` ran through our wrapper, and what its calls released.
        self.host_clears = 0
        self.host_released: list[str] = []

    # install / uninstall ------------------------------------------------------------------
    def install(self) -> "HostHooks":
        if self.installed:
            return self
        self._hook_clear_gen_cache()
        self.register_offload()
        self.pool.add_resident_listener(self._on_resident)
        self.installed = True
        return self

    def uninstall(self) -> None:
        """Put back the host's original ``clear_gen_cache`` and drop our registrations."""
        if not self.installed:
            return
        self.pool.remove_resident_listener(self._on_resident)
        if self.wrapper is not None and self.original_clear_gen_cache is not None:
            if self._current_clear_gen_cache() is self.wrapper:
                self._set_global("clear_gen_cache", self.original_clear_gen_cache)
            self.wrapper = None
        registry = host_helper_module("offload_registry", self._modules)
        unregister = getattr(registry, "unregister_offloadobj", None)
        if callable(unregister):
            with _logged("unregister_offloadobj"):
                unregister(PROCESS_ID, self._proxy)
        self._unregister_resident()
        self.installed = False

    # clear_gen_cache ------------------------------------------------------------------------
    def _current_clear_gen_cache(self) -> Optional[Callable[..., Any]]:
        host = host_module()
        current = getattr(host, "clear_gen_cache", None) if host is not None else None
        return current if callable(current) else getattr(self.plugin, "clear_gen_cache", None)

    def _set_global(self, name: str, value: Any) -> bool:
        setter = getattr(self.plugin, "set_global", None)
        if not callable(setter):
            return False
        try:
            setter(name, value)
        except Exception as error:  # the host refuses unknown names; never break the host's UI setup
            logger.warning("Could not replace the host's %s (%s)", name, error)
            return False
        with contextlib.suppress(Exception):
            setattr(self.plugin, name, value)  # the injected snapshot follows the host's global
        return True

    def _hook_clear_gen_cache(self) -> None:
        current = self._current_clear_gen_cache()
        if not callable(current):
            logger.info("The host offers no clear_gen_cache; that hook is skipped.")
            return
        if hasattr(current, _WRAPPER_MARK):  # already ours (another install): never wrap twice
            self.original_clear_gen_cache = getattr(current, _WRAPPER_MARK)
            self.wrapper = current
            return
        original = current

        def clear_gen_cache(*args: Any, **kwargs: Any) -> Any:
            try:
                self._release_for_host()
            except Exception:  # our part must never stop the host's original from running
                logger.exception("Releasing the structure-video annotators failed")
            return original(*args, **kwargs)

        setattr(clear_gen_cache, _WRAPPER_MARK, original)
        clear_gen_cache.__wrapped__ = original  # type: ignore[attr-defined]
        if self._set_global("clear_gen_cache", clear_gen_cache):
            self.original_clear_gen_cache, self.wrapper = original, clear_gen_cache

    def _release_for_host(self) -> None:
        """Release every annotator (the host is about to load or has just used its own models)."""
        built = [name for name in self.pool.names() if self.pool.is_built(name)]
        self.pool.release()
        self.host_clears += 1
        released = [name for name in built if not self.pool.is_built(name)]
        self.host_released += released
        if released:
            logger.info("The host's clear_gen_cache released %s", ", ".join(released))

    def memory_state(self) -> dict:
        """What the pool holds and what the host's ``clear_gen_cache`` released (the plugin's
        ``structure_video_memory`` API endpoint: lets a user or a test see that the hook works)."""
        return {"annotators": self.pool.describe(), "hooked": self.wrapper is not None,
                "host_clears": self.host_clears, "host_released": list(self.host_released)}

    # offload registry and residents ---------------------------------------------------------
    def register_offload(self) -> None:
        """(Re-)register the pool with the host's offload registry (its "unload models" tool pops it)."""
        registry = host_helper_module("offload_registry", self._modules)
        register = getattr(registry, "register_offloadobj", None)
        if callable(register):
            with _logged("register_offloadobj"):
                register(PROCESS_ID, self._proxy, self.pool.release)

    def _on_resident(self, name: str, resident: bool) -> None:
        locks = host_helper_module("process_locks", self._modules)
        if locks is None or self.state is None:
            return
        if resident and not self._resident_registered:
            register = getattr(locks, "register_GPU_resident", None)
            if callable(register):
                with _logged("register_GPU_resident"):
                    register(self.state, PROCESS_ID, PROCESS_NAME, self.pool.release)
                    self._resident_registered = True
        elif not resident and not self.pool.is_on_gpu():
            self._unregister_resident()

    def _unregister_resident(self) -> None:
        if not self._resident_registered:
            return
        locks = host_helper_module("process_locks", self._modules)
        unregister = getattr(locks, "unregister_GPU_resident", None)
        if callable(unregister) and self.state is not None:
            with _logged("unregister_GPU_resident"):
                unregister(self.state, PROCESS_ID)
        self._resident_registered = False

    # GPU lock ------------------------------------------------------------------------------
    @contextlib.contextmanager
    def gpu_lock(self, state: Any = None) -> Iterator[None]:
        """Hold the host's GPU lock (when it has one and ``state`` is given) and the process lock."""
        if state is not None:
            self.state = state
        self.register_offload()
        locks = host_helper_module("process_locks", self._modules)
        acquire = getattr(locks, "acquire_GPU_ressources", None)
        release = getattr(locks, "release_GPU_ressources", None)
        if state is None or not callable(acquire) or not callable(release):
            with PROCESS_GPU_LOCK:
                yield
            return
        acquire(state, PROCESS_ID, PROCESS_NAME, gr=sys.modules.get("gradio"))
        self._resident_registered = False  # the host drops our resident entry when we acquire
        try:
            with PROCESS_GPU_LOCK:
                yield
        finally:
            keep = self.pool.is_on_gpu()
            release(state, PROCESS_ID, keep_resident=keep, process_name=PROCESS_NAME,
                    release_vram_callback=self.pool.release)
            self._resident_registered = keep

    def gpu_lock_for(self, state: Any) -> Callable[[], contextlib.AbstractContextManager]:
        """The ``RunContext.gpu_lock`` factory of one event (``state``: that session's host state)."""
        return functools.partial(self.gpu_lock, state)


@contextlib.contextmanager
def _logged(action: str) -> Iterator[None]:
    """Run a host call; a failure is logged, never raised into the host's or our flow."""
    try:
        yield
    except Exception:
        logger.exception("Host call %s failed", action)


def install_host_hooks(plugin: Any, pool: Optional[AnnotatorPool] = None,
                       host_modules: Optional[dict[str, Any]] = None) -> HostHooks:
    """Install (once per plugin instance) every hook the host offers; returns the :class:`HostHooks`."""
    existing = getattr(plugin, "_structure_video_hooks", None)
    if isinstance(existing, HostHooks) and existing.installed:
        return existing
    hooks = HostHooks(plugin, pool or get_default_pool(), host_modules).install()
    with contextlib.suppress(Exception):
        plugin._structure_video_hooks = hooks
    return hooks
