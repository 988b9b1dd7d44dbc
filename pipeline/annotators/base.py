"""The annotator contract: what one annotator describes, and nothing the shared machinery does.

An :class:`Annotator` is a description — its guide type and row format, how its model is chosen (and
why), the factory the annotator pool builds, how a batch of fitted source frames (or frame pairs)
becomes rows, what enters its cache key, and how stored rows become guide frames and export files.
Everything else is shared and never changes when an annotator is added: the batch loop with the pool,
GPU lock, pressure checks, OOM back-off and batch-size history (``pipeline.extraction``), the row store
and cache entry (``preprocessors.cache``), "rows from the cache or computed" (``pipeline.source_rows``),
temporal placement, encoding, segments and the farm.

Adding one: a module with a subclass, registered in ``pipeline/annotators/__init__.py``.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterator, Optional, Protocol, Sequence

import numpy as np

from ..device_choice import WeightsLocator, resolve_device
from ..request import GuideRequest

if TYPE_CHECKING:  # pragma: no cover - types only
    from ...preprocessors.cache.flow_cache import FlowCache
    from ..context import RunContext
    from ..prepare import PreparedGuide

#: A batch of inputs (fitted frames, or (frame, next frame) pairs) → one row per input.
BatchFn = Callable[[list[Any]], Sequence[np.ndarray]]


class ModelChoice(Protocol):
    """What an annotator picked for a request (a backend, weights), told to the user every time."""

    name: str
    reason: str

    @property
    def weights_label(self) -> str: ...

    def identity(self) -> str: ...

    def annotator_name(self) -> str: ...


@dataclass(frozen=True)
class WeightsChoice:
    """A model chosen by its weights (``source``: where they were found, with ``origin``, ``path`` and
    ``identity()``) and why; a subclass names the model and its pool entry."""

    source: Any
    reason: str
    #: The first part of its pool name (``<prefix>|<weights identity>``).
    pool_prefix = "model"

    @property
    def name(self) -> str:
        raise NotImplementedError

    @property
    def weights_label(self) -> str:
        """Human words for the weights in use."""
        path = getattr(self.source, "path", None)
        return self.source.origin + (f": {path}" if path else "")

    def identity(self) -> str:
        """Everything about the model that changes its rows (for cache keys)."""
        return f"{self.name}|{self.source.identity()}"

    def annotator_name(self) -> str:
        """The name the model is registered under in the annotator pool."""
        return f"{self.pool_prefix}|{self.source.identity()}"


@dataclass
class ExportPart:
    """What an annotator wrote into an export folder."""

    npy: Path
    shape: tuple[int, ...]
    #: The kind of the per-row files beside the ``.npy`` (``flo``, ``png``) and the files written.
    extra_kind: str = ""
    extra_files: list[Path] = field(default_factory=list)
    #: Sidecar fields of its own (e.g. how PNG values map back to the rows).
    fields: dict[str, Any] = field(default_factory=dict)


def model_precision(request: GuideRequest, device: Any) -> str:
    """The precision a torch model runs at: fp32 off CUDA; on CUDA the request's (``auto``: fp16)."""
    if device.type != "cuda":
        return "fp32"
    return "fp16" if request.precision == "auto" else request.precision


def model_compute(request: Any) -> dict[str, str]:
    """Device class and precision a model annotator runs at for ``request``: what, beside the weights,
    changes the numbers it returns (``auto`` is fp16 on CUDA, fp32 elsewhere)."""
    device = resolve_device(request.device)
    return {"device": device.type, "precision": model_precision(request, device)}


class Annotator:
    """One annotator's description (subclass it; the attributes are its row format and words)."""

    #: The guide type it serves (``GuideRequest.guide_type``).
    guide_type: str = ""
    #: Rows between consecutive source nodes (flow) or one per node (depth).
    per_pair: bool = False
    #: The stored rows' dtype (float16, float32, uint8 or uint16).
    dtype: str = "float16"
    #: ``kind`` and ``format`` of its cache keys (bump ``key_format`` when stored rows change meaning).
    key_kind: str = ""
    key_format: int = 1
    #: Whether its span stops at the last source frame the timeline reaches (``clip`` on a long range).
    trims_to_timeline: bool = False
    #: Progress words ("optical flow 3/40") and the timeline phase its batches are marked as.
    progress_words: str = ""
    phase: str = ""
    #: Name of its scratch folders (rows computed without a cache).
    scratch_name: str = "rows"
    #: Inputs decoded ahead of the model.
    prefetch: int = 4
    #: What a stored row means, and the dtype of its export's ``.npy``.
    export_units: str = ""
    export_dtype: str = "float16"

    # ---------------------------------------------------------------- the model
    def choose(self, request: GuideRequest, locator: Optional[WeightsLocator]) -> ModelChoice:
        """The model/backend for ``request`` (found and checked now; nothing loaded or downloaded)."""
        raise NotImplementedError

    def device_for(self, request: GuideRequest, choice: ModelChoice) -> Any:
        """The device its batches run on."""
        return resolve_device(request.device)

    def precision(self, request: GuideRequest, choice: ModelChoice, device: Any) -> str:
        return model_precision(request, device)

    def cpu_batch_size(self, choice: ModelChoice) -> int:
        """The batch size off CUDA (and for an annotator without a model)."""
        return 2

    def factory(self, choice: ModelChoice) -> Optional[Callable[[], Any]]:
        """What the annotator pool builds on the CPU (an ``nn.Module``, a device-placed object), or None
        for an annotator that holds no model (it then runs on the CPU, outside the pool and GPU lock)."""
        return None

    def batch_fn(self, choice: ModelChoice, model: Any, device: Any, request: GuideRequest,
                 precision: str) -> BatchFn:
        """Inputs → rows with ``model`` (the pool's lease, or None) on ``device``."""
        raise NotImplementedError

    def bytes_per_input(self, choice: ModelChoice, request: GuideRequest, height: int, width: int) -> int:
        """Device memory one input of a batch needs on CUDA (sets the automatic batch size)."""
        raise NotImplementedError

    # ---------------------------------------------------------------- rows and keys
    def row_shape(self, width: int, height: int) -> tuple[int, ...]:
        raise NotImplementedError

    def span_nodes(self, first: int, last: int, stride: int) -> tuple[int, ...]:
        """The source frames of a span its rows are computed at: every ``stride``-th, ending on ``last``."""
        if stride < 1 or last < first or first < 0:
            raise ValueError(f"bad node span {first}..{last} stride {stride}")
        return (*range(first, last, stride), last)

    def needed_nodes(self, prepared: "PreparedGuide", nodes: Sequence[int]) -> tuple[int, int]:
        """Nodes ``[j0, j1]`` a request's window needs when nothing is cached (default: all of them)."""
        return 0, len(nodes) - 1

    def key_fields(self, prepared: "PreparedGuide", choice: ModelChoice) -> dict[str, Any]:
        """What, beside the source, span and fitted size, changes its rows (weights identity, variant,
        input size, precision, device class) — never what only changes the guide."""
        raise NotImplementedError

    def cache_note(self) -> str:
        """What the summary says when its rows came from the cache."""
        return (f"{self.guide_type.capitalize()} rows read from the cache: nothing was extracted, no {self.guide_type} "
                "model loaded.")

    def manifest_fields(self, choice: ModelChoice) -> dict[str, Any]:
        """Facts kept beside the rows in a cache entry (model name, weights)."""
        return {"model": choice.name, "weights": choice.weights_label}

    # ---------------------------------------------------------------- guide frames and export
    def render_key(self, prepared: "PreparedGuide", choice: ModelChoice, cache: "FlowCache") -> Optional[str]:
        """Key of a rendered guide kept in the cache, or None when its guides are not kept."""
        return None

    def frames(self, stored: Any, prepared: "PreparedGuide", ctx: "RunContext") -> Iterator[np.ndarray]:
        """The guide's frames ``prepared.window`` from the stored rows (what drawing learns goes into
        ``prepared.result``)."""
        raise NotImplementedError

    def export(self, stored: Any, j0: int, j1: int, folder: Path, *, flo: bool, png: bool) -> ExportPart:
        """Write stored rows of nodes ``j0..j1`` (inclusive) into ``folder``."""
        raise NotImplementedError

    def export_options(self, request: GuideRequest, choice: ModelChoice) -> dict[str, Any]:
        """Options that changed the rows, for the export sidecar (beside the model's name and weights)."""
        return {}
