"""Farm mode: many guide requests on a Ray cluster, one shared cache, each annotator key extracted once.

The job is planned on the driver (``plan``: every request's cache key, de-duplicated, minus what the
shared cache already holds), extracted in Ray actors that keep their annotator (``workers``) and
rendered in Ray tasks; ``driver.run_farm`` runs it and ``command`` is the ``farm`` CLI command. Only
``cli.py`` imports this package, and importing it loads nothing heavy (Ray loads when a job runs).
"""
from __future__ import annotations

from typing import Any

_LAZY = {
    "run_farm": ".driver",
    "FarmReport": ".report",
    "Job": ".jobs",
    "read_jobs": ".jobs",
    "JobsFileError": ".jobs",
}

__all__ = list(_LAZY)


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name], __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
