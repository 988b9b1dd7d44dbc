"""The stored flows a flow guide reads: from the cache (any entry that covers the request) or
extracted now — into the cache, or, without one, only the part the request's window needs."""
from __future__ import annotations

import contextlib
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Optional

import numpy as np

from ..errors import CacheError
from ..options import FLOWS_FILE
from ..preprocessors.cache.cache_entries import CacheEntry
from ..preprocessors.cache.flow_store import FlowStoreWriter, open_flow_rows
from ..preprocessors.timeline.motion_resample import Interval, guide_intervals, interval_flow, nodes_needed
from ..preprocessors.annotators.shot_cuts import CutProbe
from .backend_choice import BackendChoice
from .context import RunContext
from .flow_extraction import ExtractionReport, extract_node_flows
from .flow_keys import NodeSpan, extract_first, flow_key_candidates, planned_span
from .prepare import PreparedGuide
from .recent_rows import RecentRows
from .shot_marks import cut_field, stored_marks

#: Bytes of composed guide motions one :class:`SourceFlows` keeps between the scale and the colouring
#: pass (float32, so both passes see the same numbers; 81 frames at 832×480 are about 260 MB).
COMPOSED_KEEP_BYTES = 320 << 20


@dataclass
class SourceFlows:
    """Mapped flows between source ``nodes`` and the interval of every guide frame of the timeline."""

    rows: np.ndarray
    nodes: tuple[int, ...]
    intervals: tuple[Interval, ...]
    shape: tuple[int, int]
    from_cache: bool
    key: Optional[str] = None
    stride: int = 1
    extraction: Optional[ExtractionReport] = None
    read_seconds: float = 0.0
    #: Rows that are hard cuts between shots (never drawn as motion); empty with ``cuts="off"``.
    cuts: frozenset[int] = frozenset()
    #: Whether the marks were recomputed (an entry written before cuts were marked).
    cuts_recomputed: bool = False

    def __post_init__(self) -> None:
        self._converted = RecentRows(self.rows)
        self._composed: dict[int, np.ndarray] = {}
        self._composed_bytes = 0

    def row(self, j: int) -> np.ndarray:
        """Flow from node ``j`` to ``j+1`` as float32 (never a view of the mapped file; treat as read-only).

        Neighbouring guide frames read the same rows, so the last few converted rows are kept."""
        return self._converted(j)

    def guide_flow(self, k: int, fresh: bool = True) -> np.ndarray:
        """The motion guide frame ``k`` of the timeline shows (H, W, 2) float32 (``fresh=False``: may be
        a stored row itself, to read only).

        A motion composed from several rows is kept (up to :data:`COMPOSED_KEEP_BYTES`): the scale
        pass and the colouring pass read every guide frame once each, and composing (warping rows
        onto each other) is most of a re-target's work."""
        flow = self._composed.get(k)
        if flow is None:
            flow = interval_flow(self.row, self.nodes, self.intervals, k, self.shape, fresh=False,
                                 cuts=self.cuts)
            if not self._converted.holds(flow) and self._composed_bytes + flow.nbytes <= COMPOSED_KEEP_BYTES:
                flow.flags.writeable = False  # shared by both passes
                self._composed[k] = flow
                self._composed_bytes += flow.nbytes
        return np.array(flow, copy=True) if fresh else flow


def _produce(prepared: PreparedGuide, choice: BackendChoice, nodes: tuple[int, ...], folder: Path,
             ctx: RunContext) -> tuple[dict[str, Any], ExtractionReport]:
    """Extract the flows between ``nodes`` into ``folder/flows.npy``; return manifest fields and report."""
    width, height = prepared.size
    writer = FlowStoreWriter(folder / FLOWS_FILE, len(nodes) - 1, height, width)
    probe = CutProbe()
    try:
        report = extract_node_flows(prepared.request, prepared.info, prepared.fitter, choice, nodes, writer, ctx,
                                    prepared.size, probe)
    finally:
        writer.close()
    fields = {"shape": [len(nodes) - 1, height, width, 2], "nodes": list(nodes), "backend": choice.name,
              "backend_reason": choice.reason, **cut_field(probe)}
    return fields, report


def planned_entry(prepared: PreparedGuide, choice: BackendChoice, ctx: RunContext,
                  candidates: Optional[list[tuple[NodeSpan, dict[str, Any], str]]] = None,
                  ) -> tuple[CacheEntry, bool, Optional[ExtractionReport]]:
    """The entry of the request's own span (its first candidate key), extracted unless present (see
    ``flow_keys.extract_first``). Returns (entry, hit, the extraction's report or None)."""
    return extract_first(ctx.cache, (candidates or flow_key_candidates(prepared, choice, ctx.cache))[0],
                         lambda span, folder: _produce(prepared, choice, span.nodes, folder, ctx))


def cached_cut_marks(prepared: PreparedGuide, choice: BackendChoice,
                     ctx: RunContext) -> Optional[tuple[tuple[int, ...], frozenset[int], bool]]:
    """The nodes and cut marks of the cached flows that serve ``prepared`` (for a guide copied from the
    render cache, whose flows are not opened), or ``None`` when no entry serves it any more."""
    if ctx.cache is None:
        return None
    for _span, _params, key in flow_key_candidates(prepared, choice, ctx.cache):
        entry = ctx.cache.lookup(key)
        if entry is not None:
            nodes = tuple(int(n) for n in entry.manifest["nodes"])
            return (nodes, *stored_marks(entry.manifest, prepared, nodes))
    return None


@contextlib.contextmanager
def open_source_flows(prepared: PreparedGuide, choice: BackendChoice, ctx: RunContext) -> Iterator[SourceFlows]:
    """The flows of ``prepared``; the mapping stays valid (and the cache entry in use) inside the block."""
    shape = (prepared.size[1], prepared.size[0])
    if ctx.cache is not None:
        started = time.perf_counter()
        entry, hit, stride = None, False, prepared.stride
        report: Optional[ExtractionReport] = None
        candidates = flow_key_candidates(prepared, choice, ctx.cache)
        for span, _params, key in candidates:
            entry = ctx.cache.lookup(key)
            if entry is not None:
                hit, stride = True, span.stride
                break
        if entry is None:
            entry, hit, report = planned_entry(prepared, choice, ctx, candidates)
        nodes = tuple(int(n) for n in entry.manifest["nodes"])
        with ctx.cache.use(entry):
            marks, recomputed = stored_marks(entry.manifest, prepared, nodes)
            yield SourceFlows(entry.rows(), nodes, guide_intervals(prepared.motion, nodes[0], nodes[-1]), shape,
                              from_cache=hit, key=entry.key, stride=stride,
                              extraction=report,
                              read_seconds=time.perf_counter() - started if hit else 0.0,
                              cuts=marks, cuts_recomputed=recomputed)
        return
    span = planned_span(prepared)
    nodes = span.nodes
    intervals = guide_intervals(prepared.motion, nodes[0], nodes[-1])
    j0, j1 = nodes_needed(nodes, intervals, *prepared.window)
    work_dir = ctx.scratch_dir("flows")
    rows = None
    try:
        try:
            fields, report = _produce(prepared, choice, nodes[j0:j1 + 1], work_dir, ctx)
        except OSError as exc:
            raise CacheError(f"Cannot write temporary flows in {work_dir.parent}: {exc.strerror or exc}; "
                             "free disk space.") from exc
        rows = open_flow_rows(work_dir / FLOWS_FILE)
        marks, _ = stored_marks(fields, prepared, nodes[j0:j1 + 1])
        yield SourceFlows(rows, nodes[j0:j1 + 1], intervals, shape, from_cache=False, stride=span.stride,
                          extraction=report, cuts=marks)
    finally:
        rows = None
        shutil.rmtree(work_dir, ignore_errors=True)
