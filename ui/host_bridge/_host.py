"""Finding the running Wan2GP: its ``wgp`` module and the globals the plugin was given."""
from __future__ import annotations

import importlib
import logging
import sys
from typing import Any, Callable, Optional

logger = logging.getLogger(__name__)

#: The host's helper modules the adapter uses (imported only when a ``wgp`` module is running).
HOST_MODULES = {"process_locks": "shared.utils.process_locks", "offload_registry": "shared.utils.offload_registry"}


def host_module() -> Any:
    """The running ``wgp`` module, or None standalone."""
    return sys.modules.get("wgp")


def host_global(plugin: Any, name: str, accept: Callable[[Any], bool]) -> Any:
    """A host global: the live ``wgp`` attribute first (the host may have reassigned it), then the
    plugin's injected snapshot; the first value ``accept`` takes, else None."""
    host = host_module()
    for source in (host, plugin):
        value = getattr(source, name, None) if source is not None else None
        if accept(value):
            return value
    return None


def host_callable(plugin: Any, name: str) -> Optional[Callable[..., Any]]:
    """A host function (see :func:`host_global`)."""
    return host_global(plugin, name, callable)


def host_helper_module(name: str, overrides: Optional[dict[str, Any]] = None) -> Any:
    """The host's helper module ``name`` (``process_locks`` …), or None outside Wan2GP.

    ``overrides`` (tests, or a host that hands its modules over) wins when given."""
    if overrides is not None:
        return overrides.get(name)
    if host_module() is None:  # standalone: never import a foreign "shared" package
        return None
    try:
        return importlib.import_module(HOST_MODULES[name])
    except ImportError:
        return None
