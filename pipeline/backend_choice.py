"""Which flow backend runs, on which device, and why — told to the user every time."""
from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from typing import Any, Callable, Optional

from ..errors import OptionError, WeightsNotFoundError
from ..memory import AnnotatorPool
from ..memory.devices import DeviceName, cuda_possible, loaded_torch
from ..preprocessors.weights.raft_weights import WeightsSource, default_search_dirs, find_raft_weights, load_raft
from ..options import RANDOM_WEIGHTS
from .request import GuideRequest

logger = logging.getLogger(__name__)

WeightsLocator = Callable[[str], Optional[str]]
#: Makes "register unless registered" atomic when several requests start RAFT at once.
_REGISTER_LOCK = threading.Lock()


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


def resolve_device(text: str) -> Any:
    """``auto`` → the first CUDA device when there is one, else the CPU (a ``torch.device``; a
    :class:`DeviceName` for the CPU while torch is not loaded and no GPU driver is present)."""
    if loaded_torch() is None and (text == "cpu" or (text == "auto" and not cuda_possible())):
        return DeviceName("cpu")
    import torch

    if text == "auto":
        return torch.device("cuda", torch.cuda.current_device()) if torch.cuda.is_available() else torch.device("cpu")
    device = torch.device(text)
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise OptionError("Device cuda was asked for but CUDA is not available: use --device cpu or auto.")
        index = device.index if device.index is not None else torch.cuda.current_device()
        if index >= torch.cuda.device_count():
            raise OptionError(f"Device {text} does not exist ({torch.cuda.device_count()} GPU(s)): use cuda:0.")
        device = torch.device("cuda", index)
    return device


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


def register_raft(pool: AnnotatorPool, choice: BackendChoice) -> str:
    """Register the factory that builds this RAFT on the CPU; return its pool name."""
    name = choice.annotator_name()
    with _REGISTER_LOCK:
        if not pool.is_registered(name):
            source = choice.weights
            model = choice.name.split("-", 1)[1]
            pool.register(name, lambda: load_raft(None if source is None or source.path is None else source, model))
    return name
