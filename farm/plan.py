"""Plan a farm job on the driver: which annotator keys must be extracted, once each.

Each request is prepared (validated, probed, framed) and its candidate keys are listed by the
pipeline's own key function (``source_rows.key_candidates``), in the order a
local run looks for them. A request is *served* when its rendered guide or any candidate entry is
already in the shared cache; otherwise it needs its first candidate — exactly the entry a local run
would extract — and requests needing the same key share one extraction. Canny and raw guides need
no annotator. A request that cannot be prepared is a failure of its line; the others go on.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

from ..errors import StructureVideoError
from ..pipeline.annotators import annotator_for
from ..pipeline.build import model_for
from ..pipeline.context import RunContext
from ..pipeline.prepare import prepare
from ..pipeline.source_rows import key_candidates
from ..preprocessors.cache.flow_cache import FlowCache
from .jobs import Job


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
    annotator = annotator_for(prepared.request.guide_type)
    if annotator is None:
        return None, True
    choice = model_for(annotator, prepared, RunContext(cache=cache))
    rendered = annotator.render_key(prepared, choice, cache)
    if rendered is not None and cache.lookup_render(rendered) is not None:
        return None, True
    candidates = key_candidates(annotator, prepared, choice, cache)
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
