"""What runs on the cluster: extraction actors (annotator built once, kept between keys) and render tasks.

An :class:`Extractor` actor is one worker process: its annotator pool lives as long as it does, so a
model is loaded once for all the keys it extracts (``teardown="keep"`` between keys; the job's
teardown when the driver closes it). Each key goes through the pipeline's own ``planned_entry``
(what a local run extracts when nothing serves it) — decoding the source itself (streamed from the shared path, never through Ray's
object store), the pool, OOM back-off, pressure tiers and batch-size history as in a local run — into
the shared cache, where the first writer's entry wins. A killed actor is restarted by Ray and its
call retried (``max_restarts`` / ``max_task_retries``): its half-written folder stays in the cache's
``tmp/`` (swept by ``cache prune``) and never becomes an entry.

A render task is ``build_guide`` with the shared cache: it reads the rows the actors published,
re-targets, encodes and publishes the guide atomically where the request says.
"""
from __future__ import annotations

import os
import sys
import socket
from dataclasses import replace
from pathlib import Path
from typing import Optional

import ray

from ..errors import StructureVideoError
from ..pipeline.annotators import ANNOTATORS
from ..pipeline.build import build_guide, model_for
from ..pipeline.context import RunContext
from ..pipeline.prepare import prepare
from ..pipeline.request import GuideRequest
from ..pipeline.source_rows import planned_entry
from .report import ExtractionOutcome, RequestOutcome
from .shared_cache import open_shared_cache

#: Ray restarts a killed worker this many times (and retries its call) before the key fails.
RESTARTS = 3


def limit_threads(threads: int) -> None:
    """One worker, ``threads`` CPU threads: OpenCV's and torch's pools sized to what Ray gave it. torch is
    not imported for this (a DIS, canny or raw worker never loads it): the environment sizes its pool when a
    model loads it later, and a torch already loaded is resized now."""
    import cv2

    cv2.setNumThreads(threads)
    for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[name] = str(threads)
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(threads)


@ray.remote(max_restarts=RESTARTS, max_task_retries=RESTARTS)
class Extractor:
    """One extraction worker; it keeps its annotator pool (and so its loaded model) between keys."""

    def __init__(self, cache_root: str, threads: int = 1) -> None:
        from ..memory import get_default_pool

        limit_threads(threads)
        self.pool = get_default_pool()
        self.cache = open_shared_cache(cache_root)

    def extract(self, line: int, request: GuideRequest, planned_key: str) -> ExtractionOutcome:
        """Make sure the shared cache holds ``planned_key``'s rows, computing them if it does not."""
        where = dict(key=planned_key, line=line, node=socket.gethostname(), pid=os.getpid())
        try:
            prepared = prepare(replace(request, teardown="keep"))
            ctx = RunContext(pool=self.pool, cache=self.cache).resolved()
            annotator = ANNOTATORS[prepared.request.guide_type]
            entry, _hit, report = planned_entry(annotator, prepared, model_for(annotator, prepared, ctx), ctx)
        except StructureVideoError as exc:
            return ExtractionOutcome(**where, extracted=False, error=str(exc))
        if entry.key != planned_key:
            return ExtractionOutcome(**where, extracted=report is not None, error=(
                f"this worker keyed the request {entry.key[:12]}, the driver {planned_key[:12]} (another backend "
                "or other weights were found here): give the backend and weights paths explicitly."))
        if report is None:
            return ExtractionOutcome(**where, extracted=False, device="cache")
        return ExtractionOutcome(**where, extracted=True, device=report.device, batch_size=report.batch_size,
                                 seconds=report.seconds)

    def close(self, teardown: str) -> None:
        """The job's teardown for this worker's annotators (then the driver ends the actor)."""
        if teardown == "release":
            self.pool.release()
        elif teardown == "unload":
            self.pool.unload_all()


@ray.remote(max_retries=RESTARTS)
def render_guide(line: int, request: GuideRequest, cache_root: str, key: Optional[str]) -> RequestOutcome:
    """Write one request's guide from the shared cache (atomically, where the request says)."""
    try:
        result = build_guide(request, RunContext(cache=open_shared_cache(cache_root)))
    except StructureVideoError as exc:
        return RequestOutcome(line, None, error=str(exc), key=key)
    annotated = result.guide_type in ANNOTATORS
    return RequestOutcome(line, Path(result.output), summary=result.summary(), key=result.cache_key or key,
                          extracted_while_rendering=annotated and not result.cache_hit,
                          warnings=tuple(result.warnings))
