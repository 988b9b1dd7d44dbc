"""Wan2GP's learned contour network, described once for its two guides: ``contour`` (the host's "Canny":
black lines on white) and ``scribble`` (the host's "Shapes": the grey map).

Rows: the network's grey map (H, W) uint8 of every ``stride``-th source frame of the range. Both guide
types store the same rows under the same key (the contour guide thresholds the map when drawing), so one
extraction serves both. Weights: Wan2GP's ``ckpts/scribble/netG_A_latest.pth``
(:mod:`~...preprocessors.weights.contour_weights`), never downloaded; missing weights are one line and the
request never falls back to another guide type. The host runs the network in fp32, so ``precision="auto"``
does too.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable, Iterator, Optional

import numpy as np

from ...options import RANDOM_WEIGHTS
from ...preprocessors.weights.contour_weights import ContourWeightsSource, require_contour_weights
from ..device_choice import WeightsLocator
from ..request import GuideRequest
from .base import Annotator, BatchFn, WeightsChoice, model_compute, model_precision

if TYPE_CHECKING:  # pragma: no cover - types only
    from ..context import RunContext
    from ..prepare import PreparedGuide

#: Bump when the stored maps change meaning.
CONTOUR_FORMAT = 1


class ContourChoice(WeightsChoice):
    """The contour network's weights picked for a request (``source``: a ``ContourWeightsSource``)."""

    pool_prefix = "contour"
    name = "wan2gp-contour"


def choose_contour(request: GuideRequest, locator: Optional[WeightsLocator] = None) -> ContourChoice:
    """The weights of a contour or scribble request (found now; nothing loaded or downloaded)."""
    if request.contour_weights == RANDOM_WEIGHTS:
        return ContourChoice(ContourWeightsSource(None, "random weights"),
                             "Wan2GP's contour network with random weights (tests and benchmarks only)")
    source = require_contour_weights(request.contour_weights, host_locator=locator)
    return ContourChoice(source, f"Wan2GP's contour network with weights from {source.origin}")


class ContourAnnotator(Annotator):
    """One of the two guides drawn from the contour network's maps (``mode``: contour or scribble)."""

    per_pair = False
    dtype = "uint8"
    key_kind = "source-contour"
    key_format = CONTOUR_FORMAT
    phase = "contour"
    scratch_name = "contour"

    def __init__(self, guide_type: str, mode: str, words: str) -> None:
        self.guide_type, self.mode, self.progress_words = guide_type, mode, words

    def choose(self, request: GuideRequest, locator: Optional[WeightsLocator]) -> ContourChoice:
        return choose_contour(request, locator)

    def precision(self, request: GuideRequest, choice: Any, device: Any) -> str:
        return "fp32" if request.precision == "auto" else model_precision(request, device)

    def factory(self, choice: Any) -> Optional[Callable[[], Any]]:
        from ...preprocessors.annotators.contour_model import load_contour_model  # torch: only when it runs

        source = choice.source
        return lambda: load_contour_model(source.path, seed=source.seed)

    def batch_fn(self, choice: Any, model: Any, device: Any, request: GuideRequest, precision: str) -> BatchFn:
        from ...preprocessors.annotators.contour_model import ContourBackend

        backend = ContourBackend(model, device, precision=precision)
        return lambda frames: list(backend.compute(np.stack(frames), "scribble"))

    def bytes_per_input(self, choice: Any, request: GuideRequest, height: int, width: int) -> int:
        from ...preprocessors.annotators.contour_model import ContourBackend

        return ContourBackend.bytes_per_frame(height, width)

    def row_shape(self, width: int, height: int) -> tuple[int, ...]:
        return (height, width)

    def key_fields(self, prepared: "PreparedGuide", choice: Any) -> dict[str, Any]:
        request = prepared.request
        compute = model_compute(request)
        if request.precision == "auto":
            compute["precision"] = "fp32"
        return {"model": choice.identity(), "compute": compute}

    def frames(self, stored: Any, prepared: "PreparedGuide", ctx: "RunContext") -> Iterator[np.ndarray]:
        from ...preprocessors.annotators.contour_guide import contour_maps_to_guide

        for k in range(*prepared.window):  # the nearer node's map: edges are not blended
            edges = contour_maps_to_guide(np.asarray(stored.rows[stored.nearest(prepared.plan.indices[k])]), self.mode)
            yield np.repeat(edges[..., None], 3, axis=-1)


CONTOUR = ContourAnnotator("contour", "contour", "edges (Wan2GP model)")
SCRIBBLE = ContourAnnotator("scribble", "scribble", "shapes (Wan2GP model)")
