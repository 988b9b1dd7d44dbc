"""Optical flow, described once: RAFT (torchvision, Wan2GP's or torchvision's weights) or OpenCV DIS.

Rows: the flow (H, W, 2) float16 from source node ``j`` to node ``j+1`` (pixels of the fitted size;
``preprocessors/timeline/motion_resample``), the node before the range included as an anchor. The
backend is chosen per request and told to the user every time (``auto``: RAFT when weights are found
locally, else DIS, which needs none). Guide frames are the motion of every guide frame's interval,
composed from the rows, coloured with one clip-wide scale (bursts left out); rendered guides are cached.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterator, Optional

import numpy as np

from ...errors import WeightsNotFoundError
from ...memory.devices import as_device
from ...options import RANDOM_WEIGHTS
from ...preprocessors.cache.cache_hashing import make_key
from ...preprocessors.render.flow_bursts import burst_note
from ...preprocessors.render.row_export import write_flo, write_npy_rows
from ...preprocessors.timeline.motion_resample import guide_intervals, nodes_needed, source_nodes
from ...preprocessors.weights.raft_weights import WeightsSource, default_search_dirs, find_raft_weights, load_raft
from ..device_choice import WeightsLocator, resolve_device
from ..guide_render import flow_histogram, guide_scale, iter_flow_guide
from ..request import GuideRequest
from ..source_flows import SourceFlows
from .base import Annotator, BatchFn, ExportPart, model_compute, model_precision

if TYPE_CHECKING:  # pragma: no cover - types only
    from ...preprocessors.cache.flow_cache import FlowCache
    from ..context import RunContext
    from ..prepare import PreparedGuide

logger = logging.getLogger(__name__)

#: Bump when the stored flows change meaning (v2: rows between source nodes).
FLOW_FORMAT = 2
#: Bump when rendering from flows changes (v2: motion resampled in time; v3: dead zone, table colouring,
#: x264 CRF 20 ultrafast; v4: hard cuts never drawn, bursts left out of the scale, variable frame rate
#: placed by time; v5: the clip scale measured on a quarter of the pixels of frames from 128×128 up), so old
#: renders are not reused.
RENDER_VERSION = 5
CPU_RAFT_BATCH = 2
DIS_BATCH = 8
#: Frame pairs decoded ahead of the flow model (a batch of DIS; a few MB at 832×480).
PREFETCH_PAIRS = 8


@dataclass(frozen=True)
class BackendChoice:
    """The flow backend picked for a request."""

    kind: str                       # "raft" | "dis"
    name: str                       # "raft-large" | "raft-small" | "dis"
    weights: Optional[WeightsSource]
    reason: str

    @property
    def weights_label(self) -> str:
        """Human words for the weights in use."""
        if self.weights is None:
            return "none (OpenCV DIS needs no weights)"
        return f"{self.weights.origin}" + (f": {self.weights.path}" if self.weights.path else "")

    def identity(self) -> str:
        """Everything about the backend that changes the flows (for cache keys)."""
        weights = self.weights.identity() if self.weights is not None else "none"
        return f"{self.name}|{weights}"

    def annotator_name(self) -> str:
        """The name this backend's model is registered under in the annotator pool."""
        return self.identity()


def choose_backend(request: GuideRequest, locator: Optional[WeightsLocator] = None) -> BackendChoice:
    """Pick the backend for ``request`` (``auto``: RAFT when weights are found, else DIS)."""
    if request.backend == "dis":
        return BackendChoice("dis", "dis", None, "OpenCV DIS, as asked")
    name = f"raft-{request.raft_model}"
    if request.raft_weights == RANDOM_WEIGHTS:
        source = WeightsSource(request.raft_model, None, "random", "random weights")
        return BackendChoice("raft", name, source, "RAFT with random weights (tests and benchmarks only)")
    source = find_raft_weights(request.raft_model, request.raft_weights, host_locator=locator)
    if source is not None:
        return BackendChoice("raft", name, source, f"RAFT-{request.raft_model} with weights from {source.origin}")
    looked = ", ".join(str(d / "flow" / "raft-things.pth") for d in default_search_dirs())
    where = f"looked for Wan2GP's flow/raft-things.pth ({looked}) and torchvision's files in the torch hub cache"
    if request.backend == "raft":
        raise WeightsNotFoundError(
            f"No RAFT-{request.raft_model} weights found ({where}): pass --raft-weights PATH, "
            "put raft-things.pth in Wan2GP's ckpts/flow/, or use --backend dis.")
    reason = f"OpenCV DIS, because no RAFT weights were found locally ({where})"
    logger.info("Flow backend: %s", reason)
    return BackendChoice("dis", "dis", None, reason)


def _pairs_to_rows(compute: Callable[[np.ndarray, np.ndarray], np.ndarray]) -> BatchFn:
    """Adapt a backend's ``compute(first_batch, second_batch)`` to a list of frame pairs."""
    def run(batch: list[Any]) -> list[np.ndarray]:
        flows = compute(np.stack([pair[0] for pair in batch]), np.stack([pair[1] for pair in batch]))
        return [np.asarray(flow, dtype=np.float32) for flow in flows]
    return run


def timeline_scale(flows: SourceFlows, prepared: "PreparedGuide", lo: int, hi: int) -> float:
    """The colour scale of guide frames ``[lo, hi)`` (bursts left out; noted in the result)."""
    req = prepared.request
    histogram, bursts = flow_histogram(flows, lo, hi, req.scale_percentile, prepared.motion.step)
    note = burst_note(bursts, hi - lo) if req.max_motion is None else None
    if note and note not in prepared.result.warnings:
        prepared.result.warnings.append(note)
    return guide_scale(histogram, req.scale_percentile, req.max_motion, prepared.motion.step)


def flows_of(stored: Any, prepared: "PreparedGuide") -> SourceFlows:
    """The flow view of stored rows: every guide frame's interval placed on the rows' nodes."""
    return SourceFlows(stored.rows, stored.nodes, guide_intervals(prepared.motion, *stored.span_ends),
                       (prepared.size[1], prepared.size[0]), from_cache=stored.from_cache, key=stored.key,
                       stride=stored.stride, extraction=stored.extraction, read_seconds=stored.read_seconds,
                       cuts=stored.cuts, cuts_recomputed=stored.cuts_recomputed)


class FlowAnnotator(Annotator):
    guide_type = "flow"
    per_pair = True
    key_kind = "source-flow"
    key_format = FLOW_FORMAT
    trims_to_timeline = True
    progress_words = "optical flow"
    phase = "flow"
    scratch_name = "flows"
    prefetch = PREFETCH_PAIRS
    export_units = ("pixels of the fitted size; row i is the motion (u: right, v: down) from source frame "
                    "frames[i] to frames[i+1]")

    def choose(self, request: GuideRequest, locator: Optional[WeightsLocator]) -> BackendChoice:
        choice = choose_backend(request, locator)
        if choice.kind == "raft" and request.raft_warm_updates is not None:
            updates = request.raft_warm_updates
            choice = replace(choice, reason=f"{choice.reason}; warm start: {updates} update{'s' * (updates != 1)} for "
                                            f"a pair that follows the previous one ({request.iterations} for the first)")
        return choice

    def device_for(self, request: GuideRequest, choice: Any) -> Any:
        return as_device("cpu") if choice.kind == "dis" else resolve_device(request.device)

    def precision(self, request: GuideRequest, choice: Any, device: Any) -> str:
        return "fp32" if choice.kind == "dis" else model_precision(request, device)

    def cpu_batch_size(self, choice: Any) -> int:
        return DIS_BATCH if choice.kind == "dis" else CPU_RAFT_BATCH

    def factory(self, choice: Any) -> Optional[Callable[[], Any]]:
        if choice.kind == "dis":
            return None
        source, model = choice.weights, choice.name.split("-", 1)[1]
        return lambda: load_raft(None if source is None or source.path is None else source, model)

    def batch_fn(self, choice: Any, model: Any, device: Any, request: GuideRequest, precision: str) -> BatchFn:
        if choice.kind == "dis":
            from ...preprocessors.annotators.flow_dis import DisFlowBackend

            return _pairs_to_rows(DisFlowBackend().compute)
        from ...preprocessors.annotators.flow_raft import RaftFlowBackend  # torch and torchvision: only when RAFT runs

        return _pairs_to_rows(RaftFlowBackend(model, device, iterations=request.iterations, precision=precision,
                                              name=choice.name, warm_iterations=request.raft_warm_updates).compute)

    def bytes_per_input(self, choice: Any, request: GuideRequest, height: int, width: int) -> int:
        from ...preprocessors.annotators.flow_raft import estimate_bytes_per_pair  # RAFT on CUDA: torch is loaded

        return estimate_bytes_per_pair(height, width)

    def row_shape(self, width: int, height: int) -> tuple[int, ...]:
        return (height, width, 2)

    def span_nodes(self, first: int, last: int, stride: int) -> tuple[int, ...]:
        return source_nodes(first, last, stride)

    def needed_nodes(self, prepared: "PreparedGuide", nodes: Any) -> tuple[int, int]:
        return nodes_needed(nodes, guide_intervals(prepared.motion, nodes[0], nodes[-1]), *prepared.window)

    def key_fields(self, prepared: "PreparedGuide", choice: Any) -> dict[str, Any]:
        req = prepared.request
        compute = ({"device": "cpu", "precision": "fp32"} if choice.kind != "raft"
                   else {**model_compute(req), "iterations": req.iterations})
        if choice.kind == "raft" and req.raft_warm_updates is not None:  # other flows; cold keys stay as they were
            compute["warm_updates"] = req.raft_warm_updates
        return {"backend": choice.identity(), "compute": compute}

    def cache_note(self) -> str:
        return "Flows read from the cache: nothing was extracted, no flow model loaded."

    def manifest_fields(self, choice: Any) -> dict[str, Any]:
        return {"backend": choice.name, "backend_reason": choice.reason}

    def render_key(self, prepared: "PreparedGuide", choice: Any, cache: "FlowCache") -> Optional[str]:
        """The request's flows plus every timing and rendering parameter."""
        from ..source_rows import planned_key

        req = prepared.request
        flows = planned_key(self, prepared, choice, cache)
        return make_key({"kind": "render", "version": RENDER_VERSION, "flows": flows,
                         "treatment": req.treatment, "frames": req.frames, "fps": req.fps,
                         "range": [prepared.plan.first, prepared.plan.stop], "window": list(prepared.window),
                         "strength": req.motion_strength, "percentile": req.scale_percentile,
                         "max_motion": req.max_motion, "cuts": req.cuts})

    def frames(self, stored: Any, prepared: "PreparedGuide", ctx: "RunContext") -> Iterator[np.ndarray]:
        lo, hi = prepared.window
        flows = flows_of(stored, prepared)
        ctx.progress.update("scale", 0, 1, "measuring motion over the whole clip")
        scale = timeline_scale(flows, prepared, lo, hi)
        prepared.result.flow_scale = scale
        yield from iter_flow_guide(flows, lo, hi, scale, prepared.request.motion_strength, prepared.motion.step)

    def export(self, stored: Any, j0: int, j1: int, folder: Path, *, flo: bool, png: bool) -> ExportPart:
        rows = stored.rows
        part = ExportPart(folder / "flows.npy", (j1 - j0, *rows.shape[1:]), extra_kind="flo")
        write_npy_rows(part.npy, part.shape, lambda i: rows[j0 + i])
        if flo:
            for i in range(part.shape[0]):
                part.extra_files.append(folder / f"flow_{i:06d}.flo")
                write_flo(part.extra_files[-1], rows[j0 + i])
        return part

    def export_options(self, request: GuideRequest, choice: Any) -> dict[str, Any]:
        return {"raft_model": request.raft_model, "iterations": request.iterations} if choice.kind == "raft" else {}


FLOW = FlowAnnotator()
