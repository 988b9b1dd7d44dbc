"""The flow-cache panel: statistics, prune to the size limit, clear. Handlers take the tab's
:class:`~.deps.TabDeps` first."""
from __future__ import annotations

from .deps import TabDeps


def stats_text(deps: TabDeps) -> str:
    from .extract_panel import tab_cache

    try:
        return f"Flow cache: {tab_cache(deps).stats()}"
    except Exception as exc:
        return f"Flow cache unavailable: {exc}"


def _run(deps: TabDeps, action: str) -> str:
    from .extract_panel import tab_cache

    cache = tab_cache(deps)
    removed, freed = cache.prune() if action == "prune" else cache.clear()
    return (f"{'Pruned' if action == 'prune' else 'Cleared'} {removed} items, freed {freed / 2**20:.1f} MiB."
            f"\n\n{stats_text(deps)}")


def prune(deps: TabDeps) -> str:
    return _run(deps, "prune")


def clear(deps: TabDeps) -> str:
    return _run(deps, "clear")
