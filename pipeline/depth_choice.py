"""Which Depth Anything V2 weights a depth guide uses, and why — never another guide type instead.

Weights come from :func:`~..preprocessors.weights.depth_weights.require_depth_weights`: the request's
``depth_weights`` path, else Wan2GP's ``ckpts/depth/depth_anything_v2_<variant>.pth`` through the
host's file locator (the same ``weights_locator`` RAFT uses) or RAFT's ckpts folders, else a
transformers model in the local Hugging Face cache. Missing weights are a one-line
``WeightsNotFoundError`` (exit 2 on the command line): a depth request never falls back to flow.
The host adapter passes the host's ``depth_anything_v2_variant`` setting as ``depth_variant``.
"""
from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Optional

from ..memory import AnnotatorPool
from ..preprocessors.weights.depth_weights import DepthWeightsSource, require_depth_weights
from .backend_choice import WeightsLocator
from ..options import DEFAULT_DEPTH_VARIANT, RANDOM_WEIGHTS
from .request import GuideRequest

#: ``depth_weights="random"`` without a variant builds this one (small enough for CPU tests and benchmarks).
RANDOM_VARIANT = "vits"
_REGISTER_LOCK = threading.Lock()


@dataclass(frozen=True)
class DepthChoice:
    """The depth model picked for a request."""

    source: DepthWeightsSource
    reason: str

    @property
    def name(self) -> str:
        return f"depth-anything-v2-{self.source.variant}"

    @property
    def weights_label(self) -> str:
        """Human words for the weights in use."""
        return self.source.origin + (f": {self.source.path}" if self.source.path else "")

    def identity(self) -> str:
        """Everything about the model that changes the depth maps (for cache keys)."""
        return f"{self.name}|{self.source.identity()}"

    def annotator_name(self) -> str:
        """The name the model is registered under in the annotator pool."""
        return f"depth|{self.source.identity()}"


def choose_depth(request: GuideRequest, locator: Optional[WeightsLocator] = None) -> DepthChoice:
    """The weights of a depth request (read and checked now; nothing is loaded or downloaded)."""
    if request.depth_weights == RANDOM_WEIGHTS:
        source = DepthWeightsSource(request.depth_variant or RANDOM_VARIANT, None, "random", "random weights")
        return DepthChoice(source, "Depth Anything V2 with random weights (tests and benchmarks only)")
    source = require_depth_weights(request.depth_variant or DEFAULT_DEPTH_VARIANT, request.depth_weights,
                                   host_locator=locator)
    return DepthChoice(source, f"Depth Anything V2 {source.variant} with weights from {source.origin}")


def register_depth(pool: AnnotatorPool, choice: DepthChoice) -> str:
    """Register the factory that builds this depth model on the CPU; return its pool name."""
    from ..preprocessors.annotators.depth_model import load_depth_model  # needs transformers: only when depth runs

    name = choice.annotator_name()
    with _REGISTER_LOCK:
        if not pool.is_registered(name):
            source = choice.source
            pool.register(name, lambda: load_depth_model(source))
    return name
