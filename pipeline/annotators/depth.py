"""Depth, described once: Depth Anything V2 (transformers), never another guide type instead.

Weights come from :func:`~...preprocessors.weights.depth_weights.require_depth_weights`: the request's
``depth_weights`` path, else Wan2GP's ``ckpts/depth/depth_anything_v2_<variant>.pth`` through the host's
file locator or the ckpts folders, else a transformers model in the local Hugging Face cache. Missing
weights are a one-line ``WeightsNotFoundError`` (exit 2 on the command line). The host adapter passes the
host's ``depth_anything_v2_variant`` setting as ``depth_variant``.

Rows: the relative inverse depth (H, W) float16 of every ``stride``-th source frame of the range (always
ending on its last frame). Guide frame ``k`` shows the map of its planned source frame: a repeated frame
is a repeated map; a frame between two nodes (stride > 1 only) blends the two neighbouring maps, never
across a hard cut. Brightness: one range per timeline (or per shot), optionally smoothed.
"""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterator, Optional

import numpy as np

from ...options import DEFAULT_DEPTH_VARIANT, DEPTH_VARIANTS, RANDOM_WEIGHTS
from ...preprocessors.render.row_export import PNG_MAX, to_png16, value_range, write_npy_rows, write_png16
from ...preprocessors.weights.depth_weights import DepthWeightsSource, require_depth_weights
from ..depth_render import depth_brightness_note, depth_scale, iter_depth_guide
from ..device_choice import WeightsLocator
from ..request import GuideRequest
from ..source_depth import SourceDepth
from .base import Annotator, BatchFn, ExportPart, WeightsChoice, model_compute

if TYPE_CHECKING:  # pragma: no cover - types only
    from ..context import RunContext
    from ..prepare import PreparedGuide

#: Bump when stored depth maps change meaning.
DEPTH_FORMAT = 1
#: ``depth_weights="random"`` without a variant builds this one (small enough for CPU tests and benchmarks).
RANDOM_VARIANT = "vits"
#: Variant whose memory estimate stands in for a non-standard (custom) model: the largest.
ESTIMATE_FALLBACK_VARIANT = DEPTH_VARIANTS[-1]


class DepthChoice(WeightsChoice):
    """The depth model picked for a request (``source``: a ``DepthWeightsSource``)."""

    pool_prefix = "depth"

    @property
    def name(self) -> str:
        return f"depth-anything-v2-{self.source.variant}"


def choose_depth(request: GuideRequest, locator: Optional[WeightsLocator] = None) -> DepthChoice:
    """The weights of a depth request (read and checked now; nothing is loaded or downloaded)."""
    if request.depth_weights == RANDOM_WEIGHTS:
        source = DepthWeightsSource(request.depth_variant or RANDOM_VARIANT, None, "random", "random weights")
        return DepthChoice(source, "Depth Anything V2 with random weights (tests and benchmarks only)")
    source = require_depth_weights(request.depth_variant or DEFAULT_DEPTH_VARIANT, request.depth_weights,
                                   host_locator=locator)
    return DepthChoice(source, f"Depth Anything V2 {source.variant} with weights from {source.origin}")


def depth_of(stored: Any, prepared: "PreparedGuide") -> SourceDepth:
    """The depth view of stored rows: any source frame's map."""
    return SourceDepth(stored.rows, stored.nodes, (prepared.size[1], prepared.size[0]), from_cache=stored.from_cache,
                       key=stored.key, extraction=stored.extraction, read_seconds=stored.read_seconds,
                       cuts=stored.cuts, cuts_recomputed=stored.cuts_recomputed)


def depth_pngs(npy: Path, folder: Path) -> tuple[list[Path], dict[str, Any]]:
    """One 16-bit PNG per map, read back from the written ``.npy`` (two streaming passes: range, then PNGs)."""
    maps = np.load(npy, mmap_mode="r", allow_pickle=False)
    low, high = value_range(maps[i] for i in range(len(maps)))
    paths = []
    for i in range(len(maps)):
        paths.append(folder / f"depth_{i:06d}.png")
        write_png16(paths[-1], to_png16(maps[i], low, high))
    del maps
    mapping = {"min": low, "max": high, "max_value": PNG_MAX,
               "formula": f"depth = min + png / {PNG_MAX} * (max - min)  (one range for the whole export)"}
    return paths, mapping


class DepthAnnotator(Annotator):
    guide_type = "depth"
    per_pair = False
    key_kind = "source-depth"
    key_format = DEPTH_FORMAT
    progress_words = "depth"
    phase = "depth"
    scratch_name = "depth"
    prefetch = 4
    export_units = ("relative inverse depth as the model outputs it (larger = nearer), no unit; map i is "
                    "source frame frames[i]")

    def choose(self, request: GuideRequest, locator: Optional[WeightsLocator]) -> DepthChoice:
        return choose_depth(request, locator)

    def factory(self, choice: Any) -> Optional[Callable[[], Any]]:
        from ...preprocessors.annotators.depth_model import load_depth_model  # transformers: only when depth runs

        source = choice.source
        return lambda: load_depth_model(source)

    def batch_fn(self, choice: Any, model: Any, device: Any, request: GuideRequest, precision: str) -> BatchFn:
        from ...preprocessors.annotators.depth_model import DepthAnythingBackend

        backend = DepthAnythingBackend(model, device, precision=precision, input_size=request.depth_input_size,
                                       name=choice.name)
        return lambda frames: [np.asarray(d, dtype=np.float32) for d in backend.compute(np.stack(frames))]

    def bytes_per_input(self, choice: Any, request: GuideRequest, height: int, width: int) -> int:
        from ...preprocessors.annotators.depth_model import estimate_bytes_per_frame
        from ...preprocessors.weights.depth_weights import VARIANTS

        variant = choice.source.variant
        return estimate_bytes_per_frame(height, width, variant=variant if variant in VARIANTS
                                        else ESTIMATE_FALLBACK_VARIANT, input_size=request.depth_input_size)

    def row_shape(self, width: int, height: int) -> tuple[int, ...]:
        return (height, width)

    def key_fields(self, prepared: "PreparedGuide", choice: Any) -> dict[str, Any]:
        return {"model": choice.identity(), "variant": choice.source.variant,
                "input_size": prepared.request.depth_input_size, "compute": model_compute(prepared.request)}

    def frames(self, stored: Any, prepared: "PreparedGuide", ctx: "RunContext") -> Iterator[np.ndarray]:
        req, result = prepared.request, prepared.result
        lo, hi = prepared.window
        depth = depth_of(stored, prepared)
        ctx.progress.update("scale", 0, 1, "measuring depth over the whole timeline")
        scale = depth_scale(depth, prepared.plan.indices, req.depth_smoothing)
        result.depth_brightness = depth_brightness_note(req.depth_contrast, req.depth_smoothing, len(result.cuts) + 1)
        yield from iter_depth_guide(depth, prepared.plan.indices, lo, hi, scale, req.depth_contrast)

    def export(self, stored: Any, j0: int, j1: int, folder: Path, *, flo: bool, png: bool) -> ExportPart:
        rows = stored.rows
        part = ExportPart(folder / "depth.npy", (j1 - j0 + 1, *rows.shape[1:]), extra_kind="png")
        write_npy_rows(part.npy, part.shape, lambda i: rows[j0 + i])
        if png:
            part.extra_files, part.fields["png"] = depth_pngs(part.npy, folder)
        return part

    def export_options(self, request: GuideRequest, choice: Any) -> dict[str, Any]:
        return {"depth_input_size": request.depth_input_size}


DEPTH = DepthAnnotator()
