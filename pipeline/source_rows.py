"""Rows from the cache or computed: the one step every annotator's guide and export reads its rows through.

Rows live on the *source* timeline: one per node (or per pair of consecutive nodes) of a span — a
source range with a stride — at the fitted size. A cache entry is keyed by what changes the rows
(source content and identity, span, fit, fitted size, and the annotator's own fields: weights, variant,
input size, device class, precision) and by nothing that only changes the guide (frame count, fps,
treatment, window, look), so one extraction serves every target. :func:`key_candidates` lists the
entries that can serve a request, best first: for every candidate stride (own, finer, coarser) the
request's own span, its whole range, then the whole source. Without a cache the rows are computed into
a scratch folder (only the nodes the request's window needs) and removed when the block ends.
Hard-cut marks are kept in the entry's manifest (``shot_marks``), not in its key.
"""
from __future__ import annotations

import bisect
import contextlib
import math
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, Optional, Sequence

import numpy as np

from ..errors import CacheError
from ..options import ROWS_FILE
from ..preprocessors.annotators.shot_cuts import CutProbe
from ..preprocessors.cache.cache_entries import CacheEntry
from ..preprocessors.cache.cache_hashing import make_key
from ..preprocessors.cache.flow_cache import FlowCache
from ..preprocessors.cache.row_store import RowStoreWriter, open_rows
from .annotators.base import Annotator, ModelChoice
from .context import RunContext
from .extraction import ExtractionReport, extract_rows
from .prepare import PreparedGuide
from .shot_marks import cut_field, stored_marks

#: The coarsest cached stride looked for when re-targeting (finer ones are always looked for).
MAX_SERVING_STRIDE = 8

Candidate = tuple["NodeSpan", dict[str, Any], str]


@dataclass(frozen=True)
class NodeSpan:
    """The source frames an entry covers: range ``[first, last]`` with its stride."""

    first: int
    last: int
    stride: int


@dataclass
class StoredRows:
    """An annotator's rows of source ``nodes`` (mapped read-only; valid inside the block that opened them)."""

    rows: np.ndarray
    nodes: tuple[int, ...]
    #: First and last node of the span the rows were planned on (the rows may cover a part of it).
    span_ends: tuple[int, int]
    from_cache: bool
    key: Optional[str] = None
    stride: int = 1
    extraction: Optional[ExtractionReport] = None
    read_seconds: float = 0.0
    #: Rows ``j`` (node j → j+1) that are hard cuts; empty with ``cuts="off"``.
    cuts: frozenset[int] = frozenset()
    #: Whether the marks were recomputed (an entry written before cuts were marked).
    cuts_recomputed: bool = False
    #: The fitted (width, height) the rows were computed at.
    size: tuple[int, int] = (0, 0)

    def nearest(self, index: int) -> int:
        """The row of the node nearest to source frame ``index`` (for rows that are not blended: edges,
        keypoints)."""
        nodes = self.nodes
        j = min(max(bisect.bisect_right(nodes, index) - 1, 0), len(nodes) - 1)
        return j + 1 if j + 1 < len(nodes) and nodes[j + 1] - index < index - nodes[j] else j


def source_identity(prepared: PreparedGuide) -> dict[str, Any]:
    """What identifies the decoded source beside its content hash (frames, fps, rotation, size)."""
    info = prepared.info
    return {"frame_count": info.frame_count, "fps": round(info.fps, 6), "rotation": info.rotation,
            "size": [info.width, info.height]}


def key_params(annotator: Annotator, prepared: PreparedGuide, choice: ModelChoice, content: str,
               span: NodeSpan) -> dict[str, Any]:
    """Everything that changes the rows of ``span`` (``content``: the source's content hash)."""
    return {
        "kind": annotator.key_kind,
        "format": annotator.key_format,
        "content": content,
        "source": source_identity(prepared),
        "span": {"first": span.first, "last": span.last, "stride": span.stride},
        "fit": prepared.request.fit,
        "size": list(prepared.size),
        **annotator.key_fields(prepared, choice),
    }


def planned_span(annotator: Annotator, prepared: PreparedGuide) -> NodeSpan:
    """The span a request computes when nothing in the cache serves it: its range, or (annotators that
    trim) from the range's first frame to the last one the timeline reaches (``clip`` stops early)."""
    first, last = prepared.plan.first, prepared.plan.stop - 1
    if annotator.trims_to_timeline:
        reached = int(math.ceil(max(prepared.motion.positions) - 1e-9))
        last = max(first, min(last, reached))
    return NodeSpan(first, last, prepared.stride)


def candidate_strides(planned: int, longest: int = MAX_SERVING_STRIDE) -> list[int]:
    """Strides whose rows may serve a plan, best first: its own (identical to a fresh extraction),
    then finer ones (composed over more rows), then coarser ones (spread inside each stored step)."""
    return [planned] + list(range(planned - 1, 0, -1)) + list(range(planned + 1, max(planned, longest) + 1))


def keyed_once(spans: Sequence[Any], params_for: Callable[[Any], dict[str, Any]]) -> list[Candidate]:
    """``(span, params, key)`` for each span in order, a key listed once (the first span that gives it)."""
    seen: set[str] = set()
    candidates = []
    for span in spans:
        params = params_for(span)
        key = make_key(params)
        if key not in seen:
            seen.add(key)
            candidates.append((span, params, key))
    return candidates


def key_candidates(annotator: Annotator, prepared: PreparedGuide, choice: ModelChoice,
                   cache: FlowCache) -> list[Candidate]:
    """Entries that can serve the request, best first: for every candidate stride, the request's own
    span, its whole range, then the whole source (which covers any range)."""
    whole_last = prepared.info.frame_count - 1
    own = planned_span(annotator, prepared)
    range_last = prepared.plan.stop - 1
    content = cache.content_hash(prepared.info.path)
    spans = [span for stride in candidate_strides(own.stride)
             for span in (NodeSpan(own.first, own.last, stride), NodeSpan(own.first, range_last, stride),
                          NodeSpan(0, whole_last, stride))]
    return keyed_once(spans, lambda span: key_params(annotator, prepared, choice, content, span))


def planned_key(annotator: Annotator, prepared: PreparedGuide, choice: ModelChoice, cache: FlowCache) -> str:
    """Key of the entry a request computes when nothing serves it (its planned span)."""
    content = cache.content_hash(prepared.info.path)
    return make_key(key_params(annotator, prepared, choice, content, planned_span(annotator, prepared)))


def _produce(annotator: Annotator, prepared: PreparedGuide, choice: ModelChoice, nodes: tuple[int, ...],
             folder: Path, ctx: RunContext) -> tuple[dict[str, Any], ExtractionReport]:
    """Compute the rows of ``nodes`` into ``folder``; return the manifest fields and the report."""
    width, height = prepared.size
    count = len(nodes) - 1 if annotator.per_pair else len(nodes)
    writer = RowStoreWriter(folder / ROWS_FILE, count, annotator.row_shape(width, height), annotator.dtype)
    probe = CutProbe()
    try:
        report = extract_rows(annotator, prepared, choice, nodes, writer.put, ctx, probe)
    finally:
        writer.close()
    fields = {"shape": list(writer.shape), "dtype": annotator.dtype, "annotator": annotator.guide_type,
              "nodes": list(nodes), **annotator.manifest_fields(choice), **cut_field(probe)}
    return fields, report


def extract_first(cache: FlowCache, candidate: Candidate,
                  extract: Callable[[Any, Path], tuple[dict[str, Any], Any]]) -> tuple[CacheEntry, bool, Optional[Any]]:
    """The entry of a request's first candidate, made by ``extract(span, folder) -> (manifest fields,
    report)`` unless present. Returns (entry, hit, the extraction's report or None)."""
    span, params, key = candidate
    reports: list[Any] = []

    def produce(folder: Path) -> dict[str, Any]:
        fields, report = extract(span, folder)
        reports.append(report)
        return fields

    entry, hit = cache.get_or_create(key, produce, params)
    return entry, hit, reports[0] if reports else None


def planned_entry(annotator: Annotator, prepared: PreparedGuide, choice: ModelChoice, ctx: RunContext,
                  candidates: Optional[list[Candidate]] = None) -> tuple[CacheEntry, bool, Optional[ExtractionReport]]:
    """The entry of the request's own span (its first candidate key), computed unless present: what a
    local run makes when nothing serves a request, and what the farm's workers make."""
    first = (candidates or key_candidates(annotator, prepared, choice, ctx.cache))[0]
    return extract_first(ctx.cache, first, lambda span, folder: _produce(
        annotator, prepared, choice, annotator.span_nodes(span.first, span.last, span.stride), folder, ctx))


def cached_entry(annotator: Annotator, prepared: PreparedGuide, choice: ModelChoice,
                 cache: FlowCache) -> tuple[Optional[CacheEntry], Optional[NodeSpan], list[Candidate]]:
    """The first entry that serves the request (with its span), or None; and the candidates looked at."""
    candidates = key_candidates(annotator, prepared, choice, cache)
    for span, _params, key in candidates:
        entry = cache.lookup(key)
        if entry is not None:
            return entry, span, candidates
    return None, None, candidates


def cached_cut_marks(annotator: Annotator, prepared: PreparedGuide, choice: ModelChoice,
                     ctx: RunContext) -> Optional[tuple[tuple[int, ...], frozenset[int], bool]]:
    """The nodes and cut marks of the cached rows that serve ``prepared`` (for a guide copied from the
    render cache, whose rows are not opened), or ``None`` when no entry serves it any more."""
    if ctx.cache is None:
        return None
    entry, _span, _candidates = cached_entry(annotator, prepared, choice, ctx.cache)
    if entry is None:
        return None
    nodes = tuple(int(n) for n in entry.manifest["nodes"])
    return (nodes, *stored_marks(entry.manifest, prepared, nodes))


@contextlib.contextmanager
def open_source_rows(annotator: Annotator, prepared: PreparedGuide, choice: ModelChoice,
                     ctx: RunContext) -> Iterator[StoredRows]:
    """The rows of ``prepared``; the mapping stays valid (the cache entry in use) inside the block."""
    if ctx.cache is not None:
        started = time.perf_counter()
        entry, span, candidates = cached_entry(annotator, prepared, choice, ctx.cache)
        hit, report = entry is not None, None
        stride = span.stride if span is not None else prepared.stride
        if entry is None:
            entry, hit, report = planned_entry(annotator, prepared, choice, ctx, candidates)
        nodes = tuple(int(n) for n in entry.manifest["nodes"])
        with ctx.cache.use(entry):
            marks, recomputed = stored_marks(entry.manifest, prepared, nodes)
            yield StoredRows(entry.rows(), nodes, (nodes[0], nodes[-1]), from_cache=hit, key=entry.key,
                             stride=stride, extraction=report,
                             read_seconds=time.perf_counter() - started if hit else 0.0,
                             cuts=marks, cuts_recomputed=recomputed, size=prepared.size)
        return
    span = planned_span(annotator, prepared)
    nodes = annotator.span_nodes(span.first, span.last, span.stride)
    j0, j1 = annotator.needed_nodes(prepared, nodes)
    work_dir = ctx.scratch_dir(annotator.scratch_name)
    rows = None
    try:
        try:
            fields, report = _produce(annotator, prepared, choice, nodes[j0:j1 + 1], work_dir, ctx)
        except OSError as exc:
            raise CacheError(f"Cannot write temporary {annotator.guide_type} rows in {work_dir.parent}: "
                             f"{exc.strerror or exc}; free disk space.") from exc
        rows = open_rows(work_dir / ROWS_FILE, annotator.dtype)
        marks, _ = stored_marks(fields, prepared, nodes[j0:j1 + 1])
        yield StoredRows(rows, nodes[j0:j1 + 1], (nodes[0], nodes[-1]), from_cache=False, stride=span.stride,
                         extraction=report, cuts=marks, size=prepared.size)
    finally:
        rows = None
        shutil.rmtree(work_dir, ignore_errors=True)
