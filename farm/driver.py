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
from .plan import Plan, plan_jobs
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


class _Dispatch:
    """The running part of a job: actors fed one key at a time, a render task per request as soon as
    its key is in the cache, every finished request reported once."""

    def __init__(self, plan: Plan, root: str, actors: tuple[int, float, int], teardown: str,
                 finish: Callable[[RequestOutcome], None], report: FarmReport) -> None:
        self.plan, self.root, self.teardown, self.finish, self.report = plan, root, teardown, finish, report
        self.count, self.gpus, self.threads = actors
        self.queue = list(plan.extract.items())
        self.pending: dict[Any, tuple[str, Any]] = {}

    def new_actor(self) -> Any:
        from .workers import Extractor

        return Extractor.options(num_cpus=self.threads, num_gpus=self.gpus).remote(self.root, self.threads)

    def render(self, job: Job) -> None:
        from .workers import render_guide

        ref = render_guide.options(num_cpus=1).remote(job.line, job.request, self.root, self.plan.keys.get(job.line))
        self.pending[ref] = ("render", job)

    def feed(self, actor: Any) -> None:
        """Give ``actor`` the next key; with none left, tear it down and free its CPU/GPU for rendering."""
        import ray

        if self.queue:
            key, needing = self.queue.pop(0)
            self.pending[actor.extract.remote(needing[0].line, needing[0].request, key)] = \
                ("extract", (actor, key, needing))
            return
        try:
            ray.get(actor.close.remote(self.teardown))
        finally:
            ray.kill(actor)

    def run(self) -> None:
        import ray

        for job in self.plan.ready:
            self.render(job)
        for _ in range(min(self.count, len(self.queue))):
            self.feed(self.new_actor())
        while self.pending:
            [ref], _ = ray.wait(list(self.pending), num_returns=1)
            kind, what = self.pending.pop(ref)
            if kind == "render":
                try:
                    self.finish(ray.get(ref))
                except Exception as exc:  # a task that kept failing (Ray retried it)
                    self.finish(RequestOutcome(what.line, None, error=_reason(exc)))
            else:
                self.extracted(ref, *what)

    def extracted(self, ref: Any, actor: Any, key: str, needing: list[Job]) -> None:
        """A key's extraction ended: render its requests (or fail them), then feed or replace the actor."""
        import ray

        try:
            outcome: ExtractionOutcome = ray.get(ref)
        except ray.exceptions.RayActorError as exc:  # it died more often than Ray restarts it
            outcome = ExtractionOutcome(key, needing[0].line, extracted=False, error=_reason(exc))
            ray.kill(actor)
            actor = self.new_actor() if self.queue else None  # the rest of the queue still runs
        except Exception as exc:  # an unexpected error in the extraction: the worker itself goes on
            outcome = ExtractionOutcome(key, needing[0].line, extracted=False, error=_reason(exc))
        self.report.extractions.append(outcome)
        for job in needing:
            if outcome.error:
                self.finish(RequestOutcome(job.line, None, error=outcome.error, key=key))
            else:
                self.render(job)
        if actor is not None:
            self.feed(actor)


def run_farm(requests: Iterable[Union[GuideRequest, Job]], *, cache_dir: Union[str, Path, None] = None,
             address: Optional[str] = None, workers: Optional[int] = None, gpus_per_worker: float = 1.0,
             threads_per_worker: int = 1, teardown: str = "unload",
             on_progress: Optional[Callable[[str], None]] = None) -> FarmReport:
    """Write every request's guide; each annotator key is extracted at most once in the whole job.

    ``requests``: ``GuideRequest`` objects (numbered from 1 in the report) or jobs read from a jobs
    file (``read_jobs``). ``cache_dir`` must be on storage every machine mounts at the same path
    (see ``shared_cache``). ``on_progress`` receives one ``Processing (k/N)`` line per finished request.
    """
    started = time.perf_counter()
    jobs = as_jobs(requests)
    say = on_progress or (lambda line: None)
    cache = open_shared_cache(cache_dir)
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
    if plan.ready or plan.extract:  # else every line failed to plan: nothing to run
        started_ray = connect(address)
        logger.info("Ray ready after %.1fs.", time.perf_counter() - started)
        try:
            count, gpus = _worker_count(workers, gpus_per_worker)
            _Dispatch(plan, str(cache.root), (count, gpus, threads_per_worker), teardown, finish, report).run()
        finally:
            if started_ray:
                import ray

                ray.shutdown()
    report.requests = [finished[job.line] for job in jobs]
    report.seconds = time.perf_counter() - started
    return report
