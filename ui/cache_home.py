"""Which flow cache the tab uses — the one piece the extraction, export and cache panels share.

Its own module so that the panels import it and not each other: ``extract_panel`` shows the cache
panel's statistics after a run, and the cache panel needs the same cache; with the choice here the
imports point one way (``extract_panel`` → ``cache_panel`` → ``cache_home``).
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from . import host_bridge
from .deps import TabDeps

if TYPE_CHECKING:
    from ..preprocessors.cache.flow_cache import FlowCache


def tab_cache(deps: TabDeps) -> "FlowCache":
    """The flow cache the tab uses: under the host's output folder when hosted, else the global one."""
    from ..preprocessors.cache.flow_cache import FlowCache

    return FlowCache(host_bridge.host_cache_dir(deps.plugin))
