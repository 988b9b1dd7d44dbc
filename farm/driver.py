"""``run_farm``: plan on the driver, extract in Ray actors, render in Ray tasks, report every line.

Flow of a job: connect to Ray (the caller's instance, the cluster at ``address``, or a new local
one) → plan (:mod:`.plan`) → one actor per worker takes keys one at a time; as soon as a key is in
the shared cache, the requests reading it are rendered as CPU tasks; an actor with no key left is
closed (its teardown) and ended, which frees its CPU or GPU for rendering. Requests whose planning or
extraction failed are reported with their line; the others go on.
"""
from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any, Callable, Iterable, Optional, Union

from ..errors import StructureVideoError
from ..pipeline.request import GuideRequest
from .jobs import Job, as_jobs
from .plan import plan_jobs
from .report import ExtractionOutcome, FarmReport, RequestOutcome
from .shared_cache import open_shared_cache

logger = logging.getLogger(__name__)

#: Object store of a local Ray instance started here: guides and rows never travel through it.
LOCAL_OBJECT_STORE_BYTES = 256 * 2**20


def connect(address: Optional[str]) -> bool:
    """Join ``address`` (``auto``, ``ray://host:10001``) or start a local instance; True when this call
    started Ray (and so shuts it down). An instance already running in this process is used as it is."""
    import ray

    if ray.is_initialized():
        return False
    options: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False}
    if address:
        ray.init(address=address, **options)
    else:
        ray.init(object_store_memory=LOCAL_OBJECT_STORE_BYTES, **options)
    return True


def _cluster_gpus() -> float:
    import ray

    return float(ray.cluster_resources().get("GPU", 0.0))


def _worker_count(workers: Optional[int], gpus_per_worker: float) -> tuple[int, float]:
    """(actors, GPUs per actor): GPU actors when the cluster has GPUs, CPU actors otherwise."""
    import ray

    gpus = _cluster_gpus()
    per = gpus_per_worker if gpus > 0 else 0.0
    if workers is None:
        workers = int(gpus // per) if per else max(1, int(ray.cluster_resources().get("CPU", 1)))
    return max(1, workers), per


def _reason(exc: BaseException) -> str:
    """One line for a failure that came back through Ray."""
    from ray.exceptions import RayTaskError

    cause = (exc.cause or exc) if isinstance(exc, RayTaskError) else exc
    if isinstance(cause, StructureVideoError):
        return str(cause)
    text = str(cause).strip().splitlines()
    return f"{type(cause).__name__}: {text[-1] if text else ''}".rstrip(": ")


def run_farm(requests: Iterable[Union[GuideRequest, Job]], *, cache_dir: Union[str, Path, None] = None,
             address: Optional[str] = None, workers: Optional[int] = None, gpus_per_worker: float = 1.0,
             threads_per_worker: int = 1, teardown: str = "unload",
             on_progress: Optional[Callable[[str], None]] = None) -> FarmReport:
    """Write every request's guide; each annotator key is extracted at most once in the whole job.

    ``requests``: ``GuideRequest`` objects (numbered from 1 in the report) or jobs read from a jobs
    file (``read_jobs``). ``cache_dir`` must be on storage every machine mounts at the same path
    (see ``shared_cache``). ``on_progress`` receives one ``Processing (k/N)`` line per finished request.
    """
    import ray

    from .workers import Extractor, render_guide

    started = time.perf_counter()
    jobs = as_jobs(requests)
    say = on_progress or (lambda line: None)
    cache = open_shared_cache(cache_dir)
    root = str(cache.root)
    report = FarmReport()
    finished: dict[int, RequestOutcome] = {}

    def finish(outcome: RequestOutcome) -> None:
        finished[outcome.line] = outcome
        state = f"failed: {outcome.error}" if outcome.error else f"{outcome.output}"
        say(f"Processing ({len(finished)}/{len(jobs)}): line {outcome.line}: {state}")

    plan = plan_jobs(jobs, cache)
    logger.info("Planned %d requests in %.1fs: %d keys to extract, %d found in the cache, %d lines failed.",
                len(jobs), time.perf_counter() - started, len(plan.extract), len(plan.cached_keys), len(plan.failed))
    report.planned, report.cached = len(plan.extract), len(plan.cached_keys)
    for job in jobs:
        if job.line in plan.failed:
            finish(RequestOutcome(job.line, None, error=plan.failed[job.line]))
    if not plan.ready and not plan.extract:  # nothing to run: every line failed to plan
        report.requests = [finished[job.line] for job in jobs]
        report.seconds = time.perf_counter() - started
        return report
    started_ray = connect(address)
    logger.info("Ray ready after %.1fs.", time.perf_counter() - started)
    try:
        pending: dict[Any, tuple[str, Any]] = {}

        def render(job: Job) -> None:
            ref = render_guide.options(num_cpus=1).remote(job.line, job.request, root, plan.keys.get(job.line))
            pending[ref] = ("render", job)

        for job in plan.ready:
            render(job)
        queue = list(plan.extract.items())
        count, gpus = _worker_count(workers, gpus_per_worker)
        actors = [Extractor.options(num_cpus=threads_per_worker, num_gpus=gpus).remote(root, threads_per_worker)
                  for _ in range(min(count, len(queue)))]

        def feed(actor: Any) -> None:
            if queue:
                key, needing = queue.pop(0)
                ref = actor.extract.remote(needing[0].line, needing[0].request, key)
                pending[ref] = ("extract", (actor, key, needing))
            else:  # nothing left for it: tear down and free its CPU/GPU for the render tasks
                try:
                    ray.get(actor.close.remote(teardown))
                finally:
                    ray.kill(actor)

        for actor in actors:
            feed(actor)
        while pending:
            [ref], _ = ray.wait(list(pending), num_returns=1)
            kind, what = pending.pop(ref)
            if kind == "render":
                try:
                    finish(ray.get(ref))
                except Exception as exc:  # a task that kept failing (Ray retried it)
                    finish(RequestOutcome(what.line, None, error=_reason(exc)))
                continue
            actor, key, needing = what
            try:
                outcome: ExtractionOutcome = ray.get(ref)
            except ray.exceptions.RayActorError as exc:  # it died more often than Ray restarts it
                outcome = ExtractionOutcome(key, needing[0].line, extracted=False, error=_reason(exc))
                ray.kill(actor)
                actor = None
            except Exception as exc:  # an unexpected error in the extraction: the worker itself goes on
                outcome = ExtractionOutcome(key, needing[0].line, extracted=False, error=_reason(exc))
            report.extractions.append(outcome)
            for job in needing:
                if outcome.error:
                    finish(RequestOutcome(job.line, None, error=outcome.error, key=key))
                else:
                    render(job)
            if actor is not None:
                feed(actor)
            elif queue:  # replace a dead worker so the rest of the queue still runs
                feed(Extractor.options(num_cpus=threads_per_worker, num_gpus=gpus).remote(root, threads_per_worker))
    finally:
        if started_ray:
            ray.shutdown()
    report.requests = [finished[job.line] for job in jobs]
    report.seconds = time.perf_counter() - started
    return report

