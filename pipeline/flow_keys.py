"""Cache keys: one for the flows of a source span, one for a rendered guide.

A flow entry is identified by what changes the flows — source content, the node span and stride,
fitted size and fit, backend and compute settings — and by nothing that only changes the guide
(frame count, fps, treatment, window, strength, colour scale). So one extraction serves every
target; :func:`flow_key_candidates` lists the entries that can serve a request, best first.
Hard-cut marks are stored in the entry's manifest (``shot_marks``), not in its key: an entry written
before cuts were marked is still found, and its marks are recomputed from the source frames.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Optional, Sequence

from ..preprocessors.cache.flow_cache import CacheEntry, FlowCache, make_key
from ..preprocessors.timeline.motion_resample import source_nodes
from .backend_choice import BackendChoice, resolve_device
from .prepare import PreparedGuide

#: Bump when the stored flows change meaning (v2: rows between source nodes).
FLOW_FORMAT = 2
#: Bump when rendering from flows changes (v2: motion resampled in time; v3: dead zone, table colouring,
#: x264 CRF 20 ultrafast; v4: hard cuts never drawn, bursts left out of the scale, variable frame rate
#: placed by time), so old renders are not reused.
RENDER_VERSION = 4
#: The coarsest cached stride looked for when re-targeting (finer ones are always looked for).
MAX_SERVING_STRIDE = 8


@dataclass(frozen=True)
class NodeSpan:
    """The source frames a flow entry covers: range ``[first, last]`` with its stride."""

    first: int
    last: int
    stride: int

    @property
    def nodes(self) -> tuple[int, ...]:
        return source_nodes(self.first, self.last, self.stride)

    @property
    def pairs(self) -> int:
        return len(self.nodes) - 1


def model_compute(request: Any) -> dict[str, str]:
    """Device class and precision a model annotator (RAFT, depth) runs at for ``request``: what, beside
    the weights, changes the numbers it returns (``auto`` is fp16 on CUDA, fp32 elsewhere)."""
    device = resolve_device(request.device)
    if device.type != "cuda":
        return {"device": device.type, "precision": "fp32"}
    return {"device": "cuda", "precision": request.precision if request.precision != "auto" else "fp16"}


def source_identity(prepared: PreparedGuide) -> dict[str, Any]:
    """What identifies the decoded source beside its content hash (frames, fps, rotation, size)."""
    info = prepared.info
    return {"frame_count": info.frame_count, "fps": round(info.fps, 6), "rotation": info.rotation,
            "size": [info.width, info.height]}


def compute_identity(prepared: PreparedGuide, choice: BackendChoice) -> dict[str, Any]:
    """Device class, precision and iterations: what changes the numbers a backend returns."""
    if choice.kind != "raft":
        return {"device": "cpu", "precision": "fp32"}
    return {**model_compute(prepared.request), "iterations": prepared.request.iterations}


def flow_key_params(prepared: PreparedGuide, choice: BackendChoice, content: str, span: NodeSpan) -> dict[str, Any]:
    """Everything that changes the flows of ``span`` (``content``: the source's content hash) — and
    nothing that only changes the guide."""
    return {
        "kind": "source-flow",
        "format": FLOW_FORMAT,
        "content": content,
        "source": source_identity(prepared),
        "span": {"first": span.first, "last": span.last, "stride": span.stride},
        "fit": prepared.request.fit,
        "size": list(prepared.size),
        "backend": choice.identity(),
        "compute": compute_identity(prepared, choice),
    }


def planned_span(prepared: PreparedGuide) -> NodeSpan:
    """The span this request extracts when nothing in the cache serves it: from the range's first frame
    to the last one the timeline reaches (``clip`` on a range longer than the guide stops early)."""
    reached = int(math.ceil(max(prepared.motion.positions) - 1e-9))
    return NodeSpan(prepared.plan.first, max(prepared.plan.first, min(prepared.plan.stop - 1, reached)),
                    prepared.stride)


def candidate_strides(planned: int, longest: int = MAX_SERVING_STRIDE) -> list[int]:
    """Strides whose flows may serve a plan, best first: its own (identical to a fresh extraction),
    then finer ones (composed over more rows), then coarser ones (spread inside each stored step)."""
    return [planned] + list(range(planned - 1, 0, -1)) + list(range(planned + 1, max(planned, longest) + 1))


def flow_key_candidates(prepared: PreparedGuide, choice: BackendChoice,
                        cache: FlowCache) -> list[tuple[NodeSpan, dict[str, Any], str]]:
    """Entries that can serve the request, best first: for every candidate stride, the request's own
    span, then the whole source (which covers any range)."""
    whole_last = prepared.info.frame_count - 1
    own = planned_span(prepared)
    range_last = prepared.plan.stop - 1
    content = cache.content_hash(prepared.info.path)
    spans = [span for stride in candidate_strides(own.stride)
             for span in (NodeSpan(own.first, own.last, stride), NodeSpan(own.first, range_last, stride),
                          NodeSpan(0, whole_last, stride))]
    return keyed_once(spans, lambda span: flow_key_params(prepared, choice, content, span))


def keyed_once(spans: Sequence[Any],
               params_for: Callable[[Any], dict[str, Any]]) -> list[tuple[Any, dict[str, Any], str]]:
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


def extract_first(cache: FlowCache, candidate: tuple[Any, dict[str, Any], str],
                  extract: Callable[[Any, Path], tuple[dict[str, Any], Any]]) -> tuple[CacheEntry, bool, Optional[Any]]:
    """The entry of a request's first candidate, made by ``extract(span, folder) -> (manifest fields,
    report)`` unless present: what a local run makes when nothing serves a request, and what the
    farm's workers make. Returns (entry, hit, the extraction's report or None)."""
    span, params, key = candidate
    reports: list[Any] = []

    def produce(folder: Path) -> dict[str, Any]:
        fields, report = extract(span, folder)
        reports.append(report)
        return fields

    entry, hit = cache.get_or_create(key, produce, params)
    return entry, hit, reports[0] if reports else None


def render_key(prepared: PreparedGuide, choice: BackendChoice, cache: FlowCache) -> str:
    """Key of a rendered flow guide: the request's flows plus every timing and rendering parameter."""
    req = prepared.request
    content = cache.content_hash(prepared.info.path)
    flows = make_key(flow_key_params(prepared, choice, content, planned_span(prepared)))
    return make_key({"kind": "render", "version": RENDER_VERSION, "flows": flows, "treatment": req.treatment,
                     "frames": req.frames, "fps": req.fps, "range": [prepared.plan.first, prepared.plan.stop],
                     "window": list(prepared.window), "strength": req.motion_strength,
                     "percentile": req.scale_percentile, "max_motion": req.max_motion, "cuts": req.cuts})
