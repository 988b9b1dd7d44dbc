"""The flow-cache panel: statistics, prune to the size limit, clear (after a confirmation). Handlers
take the tab's :class:`~.deps.TabDeps` first; whatever fails, the panel's text says so (its buttons
never stay in a half-done state)."""
from __future__ import annotations

from typing import Callable

from . import cache_home
from .deps import TabDeps
from .failures import describe_failure


def _or_failure(action: str, work: Callable[[], str]) -> str:
    """``work()``'s text, or what went wrong while doing ``action`` (an unexpected error logged)."""
    try:
        return work()
    except Exception as exc:
        return f"**{action} failed.** {describe_failure(action, exc)}"


def stats_text(deps: TabDeps) -> str:
    return _or_failure("Reading the flow cache", lambda: f"Flow cache: {cache_home.tab_cache(deps).stats()}")


def _run(deps: TabDeps, action: str) -> str:
    def work() -> str:
        cache = cache_home.tab_cache(deps)
        removed, freed = cache.prune() if action == "prune" else cache.clear()
        return (f"{'Pruned' if action == 'prune' else 'Cleared'} {removed} items, freed {freed / 2**20:.1f} MiB."
                f"\n\n{stats_text(deps)}")

    return _or_failure("Pruning the flow cache" if action == "prune" else "Clearing the flow cache", work)


def prune(deps: TabDeps) -> str:
    return _run(deps, "prune")


def clear(deps: TabDeps) -> str:
    return _run(deps, "clear")


def ask_clear(deps: TabDeps) -> tuple:
    """Clear is two clicks: the first shows what would go and the confirm / keep buttons."""
    import gradio as gr

    return gr.update(visible=True), f"Delete every cached entry? {stats_text(deps)}"


def confirm_clear(deps: TabDeps) -> tuple:
    import gradio as gr

    return gr.update(visible=False), clear(deps)


def keep_cache(deps: TabDeps) -> tuple:
    import gradio as gr

    return gr.update(visible=False), stats_text(deps)
