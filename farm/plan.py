"""Plan a farm job on the driver: which annotator keys must be extracted, once each.

Each request is prepared (validated, probed, framed) and its candidate keys are listed by the
pipeline's own key functions (``flow_key_candidates``, ``depth_key_candidates``), in the order a
local run looks for them. A request is *served* when its rendered guide or any candidate entry is
already in the shared cache; otherwise it needs its first candidate — exactly the entry a local run
would extract — and requests needing the same key share one extraction. Canny and raw guides need
no annotator. A request that cannot be prepared is a failure of its line; the others go on.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

from ..errors import StructureVideoError
from ..pipeline.build import backend_for
from ..pipeline.context import RunContext
from ..pipeline.flow_keys import flow_key_candidates, render_key
from ..pipeline.prepare import prepare
from ..pipeline.source_depth import depth_choice_for, depth_key_candidates
from ..preprocessors.cache.flow_cache import FlowCache
from .jobs import Job

ANNOTATED = ("flow", "depth")


@dataclass
class Plan:
    """``extract``: key → the jobs needing it (the first one's request is extracted); ``ready``: jobs
    that can render now; ``failed``: line → why it could not be planned."""

    extract: dict[str, list[Job]] = field(default_factory=dict)
    ready: list[Job] = field(default_factory=list)
    failed: dict[int, str] = field(default_factory=dict)
    #: The key each annotated job reads (planned or found in the cache).
    keys: dict[int, str] = field(default_factory=dict)
    cached_keys: set[str] = field(default_factory=set)


def needed_key(job: Job, cache: FlowCache) -> tuple[Optional[str], bool]:
    """(the key ``job`` reads, whether the shared cache already serves it); (None, True) without an annotator."""
    prepared = prepare(job.request)
    kind = prepared.request.guide_type
    if kind not in ANNOTATED:
        return None, True
    ctx = RunContext(cache=cache)
    if kind == "flow":
        choice = backend_for(prepared, ctx)
        if cache.lookup_render(render_key(prepared, choice, cache)) is not None:
            return None, True
        candidates = flow_key_candidates(prepared, choice, cache)
    else:
        candidates = depth_key_candidates(prepared, depth_choice_for(prepared, ctx), cache)
    for _span, _params, key in candidates:
        if cache.lookup(key) is not None:
            return key, True
    return candidates[0][2], False


def plan_jobs(jobs: list[Job], cache: FlowCache) -> Plan:
    """Key every job, de-duplicate across the job, drop what the cache holds."""
    plan = Plan()
    for job in jobs:
        try:
            key, served = needed_key(job, cache)
        except (StructureVideoError, OSError) as exc:
            plan.failed[job.line] = str(exc)
            continue
        if key is not None:
            plan.keys[job.line] = key
        if served:
            plan.ready.append(job)
            if key is not None:
                plan.cached_keys.add(key)
        else:
            plan.extract.setdefault(key, []).append(job)  # type: ignore[arg-type]
    return plan
