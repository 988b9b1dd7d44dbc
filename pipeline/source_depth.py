"""The depth maps a depth guide reads: from the cache (any entry that covers the request) or computed now.

Maps are computed for source *nodes* — every ``stride``-th frame of the source range, always
ending on its last frame (the flows' stride rule, ``motion_resample.choose_stride``: stride 1
while a guide frame steps through at most 2 source frames). Guide frame ``k`` shows the map of
its planned source frame (``FramePlan.indices[k]``, the frame a raw guide shows): a repeated frame
is a repeated map; a frame between two nodes (stride > 1 only, when the guide skips source frames
anyway) blends the two neighbouring maps linearly.

Cache: the same content-addressed :class:`~..preprocessors.cache.flow_cache.FlowCache` as flows, float16,
keyed on the source timeline only — source content, node span and stride, fitted size and fit,
model identity and variant, input size, device class and precision — never on contrast,
smoothing, frame count, fps or treatment, so re-rendering those never runs the model. An entry
stores ``(maps, H, W)`` in the flow file format as ``(maps, H, W/2, 2)`` (the same bytes; guide
widths are multiples of 16), so the cache needs no depth-specific code.
"""
from __future__ import annotations

import bisect
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
from ..preprocessors.cache.flow_cache import FlowCache
from ..preprocessors.cache.flow_store import FlowStoreWriter, open_flow_rows
from ..preprocessors.annotators.shot_cuts import CutProbe
from .context import RunContext
from .depth_choice import DepthChoice, choose_depth
from .depth_extraction import extract_depth_maps
from .flow_extraction import ExtractionReport
from .flow_keys import candidate_strides, extract_first, keyed_once, model_compute, source_identity
from .prepare import PreparedGuide
from .recent_rows import RecentRows
from .shot_marks import cut_field, stored_marks

#: Bump when stored depth maps change meaning.
DEPTH_FORMAT = 1


def depth_nodes(first: int, last: int, stride: int) -> tuple[int, ...]:
    """Every ``stride``-th source frame of ``[first, last]``, always ending on ``last``."""
    if stride < 1 or last < first or first < 0:
        raise ValueError(f"bad depth span {first}..{last} stride {stride}")
    nodes = list(range(first, last, stride))
    nodes.append(last)
    return tuple(nodes)


def depth_choice_for(prepared: PreparedGuide, ctx: RunContext) -> DepthChoice:
    """The depth weights of a prepared request (found once; recorded in its result)."""
    if prepared.depth is None:
        prepared.depth = choose_depth(prepared.request, ctx.weights_locator)
        prepared.record_model(prepared.depth)
    return prepared.depth


def depth_key_params(prepared: PreparedGuide, choice: DepthChoice, content: str,
                     span: tuple[int, int, int]) -> dict[str, Any]:
    """Everything that changes the depth maps of ``span`` (first, last, stride) — and nothing that
    only changes the guide."""
    req = prepared.request
    return {
        "kind": "source-depth",
        "format": DEPTH_FORMAT,
        "content": content,
        "source": source_identity(prepared),
        "span": {"first": span[0], "last": span[1], "stride": span[2]},
        "fit": req.fit,
        "size": list(prepared.size),
        "model": choice.identity(),
        "variant": choice.source.variant,
        "input_size": req.depth_input_size,
        "compute": model_compute(req),
    }


def planned_depth_span(prepared: PreparedGuide) -> tuple[int, int, int]:
    return prepared.plan.first, prepared.plan.stop - 1, prepared.stride


def depth_key_candidates(prepared: PreparedGuide, choice: DepthChoice,
                         cache: FlowCache) -> list[tuple[tuple[int, int, int], dict[str, Any], str]]:
    """Entries that can serve the request, best first: for every candidate stride (own, finer,
    coarser), the request's own span, then the whole source."""
    first, last, stride = planned_depth_span(prepared)
    content = cache.content_hash(prepared.info.path)
    whole_last = prepared.info.frame_count - 1
    spans = [span for s in candidate_strides(stride) for span in ((first, last, s), (0, whole_last, s))]
    return keyed_once(spans, lambda span: depth_key_params(prepared, choice, content, span))


@dataclass
class SourceDepth:
    """Mapped depth maps of source ``nodes``; :meth:`at` gives any source frame's map."""

    rows: np.ndarray            # (maps, H, W/2, 2) float16, the flow file format
    nodes: tuple[int, ...]
    shape: tuple[int, int]
    from_cache: bool
    key: Optional[str] = None
    extraction: Optional[ExtractionReport] = None
    read_seconds: float = 0.0
    #: Node pairs ``j`` (node j → j+1) that are hard cuts; empty with ``cuts="off"``.
    cuts: frozenset[int] = frozenset()
    cuts_recomputed: bool = False

    def __post_init__(self) -> None:
        self._converted = RecentRows(self.rows, self.shape)

    def shot_starts(self) -> list[int]:
        """The source frames that start a new shot (sorted)."""
        return sorted(self.nodes[j + 1] for j in self.cuts if j + 1 < len(self.nodes))

    def node_map(self, j: int) -> np.ndarray:
        """Map of node ``j`` as float32 (H, W); the last few are kept (treat as read-only)."""
        return self._converted(j)

    def at(self, index: int) -> np.ndarray:
        """Inverse depth of source frame ``index``: its node's map, or the two neighbours blended."""
        j = bisect.bisect_right(self.nodes, index) - 1
        j = min(max(j, 0), len(self.nodes) - 1)
        if self.nodes[j] >= index or j == len(self.nodes) - 1:
            return self.node_map(j)
        t = (index - self.nodes[j]) / (self.nodes[j + 1] - self.nodes[j])
        if j in self.cuts:  # never blend two shots: the nearer node's map
            return self.node_map(j if t < 0.5 else j + 1)
        return (1.0 - t) * self.node_map(j) + t * self.node_map(j + 1)


def _produce(prepared: PreparedGuide, choice: DepthChoice, nodes: tuple[int, ...], folder: Path,
             ctx: RunContext) -> tuple[dict[str, Any], ExtractionReport]:
    """Compute the maps of ``nodes`` into ``folder``; return manifest fields and the report."""
    width, height = prepared.size
    writer = FlowStoreWriter(folder / FLOWS_FILE, len(nodes), height, width // 2)
    probe = CutProbe()
    try:
        report = extract_depth_maps(prepared.request, prepared.info, prepared.fitter, choice, nodes,
                                    lambda j, depth: writer.put(j, depth.reshape(height, width // 2, 2)), ctx,
                                    prepared.size, probe)
    finally:
        writer.close()
    fields = {"shape": [len(nodes), height, width // 2, 2], "depth_shape": [len(nodes), height, width],
              "nodes": list(nodes), "model": choice.name, "weights": choice.weights_label, **cut_field(probe)}
    return fields, report


def planned_depth_entry(prepared: PreparedGuide, choice: DepthChoice, ctx: RunContext,
                        candidates: Optional[list[tuple[tuple[int, int, int], dict[str, Any], str]]] = None,
                        ) -> tuple[CacheEntry, bool, Optional[ExtractionReport]]:
    """The entry of the request's own span (its first candidate key), computed unless present (see
    ``flow_keys.extract_first``). Returns (entry, hit, the extraction's report or None)."""
    return extract_first(ctx.cache, (candidates or depth_key_candidates(prepared, choice, ctx.cache))[0],
                         lambda span, folder: _produce(prepared, choice, depth_nodes(*span), folder, ctx))


@contextlib.contextmanager
def open_source_depth(prepared: PreparedGuide, choice: DepthChoice, ctx: RunContext) -> Iterator[SourceDepth]:
    """The depth maps of ``prepared``; the mapping stays valid (the cache entry in use) inside the block."""
    width, height = prepared.size
    shape = (height, width)
    if ctx.cache is not None:
        started = time.perf_counter()
        entry, hit = None, False
        report: Optional[ExtractionReport] = None
        candidates = depth_key_candidates(prepared, choice, ctx.cache)
        for _span, _params, key in candidates:
            entry = ctx.cache.lookup(key)
            if entry is not None:
                hit = True
                break
        if entry is None:
            entry, hit, report = planned_depth_entry(prepared, choice, ctx, candidates)
        nodes = tuple(int(n) for n in entry.manifest["nodes"])
        with ctx.cache.use(entry):
            marks, recomputed = stored_marks(entry.manifest, prepared, nodes)
            yield SourceDepth(entry.rows(), nodes, shape, from_cache=hit, key=entry.key,
                              extraction=report,
                              read_seconds=time.perf_counter() - started if hit else 0.0,
                              cuts=marks, cuts_recomputed=recomputed)
        return
    nodes = depth_nodes(*planned_depth_span(prepared))
    work_dir = ctx.scratch_dir("depth")
    rows = None
    try:
        try:
            fields, report = _produce(prepared, choice, nodes, work_dir, ctx)
        except OSError as exc:
            raise CacheError(f"Cannot write temporary depth maps in {work_dir.parent}: {exc.strerror or exc}; "
                             "free disk space.") from exc
        rows = open_flow_rows(work_dir / FLOWS_FILE)
        marks, _ = stored_marks(fields, prepared, nodes)
        yield SourceDepth(rows, nodes, shape, from_cache=False, extraction=report, cuts=marks)
    finally:
        rows = None
        shutil.rmtree(work_dir, ignore_errors=True)
