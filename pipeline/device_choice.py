"""Which device a run's annotator uses: ``auto``, ``cpu``, ``cuda`` or ``cuda:N`` checked against the machine."""
from __future__ import annotations

from typing import Any, Callable, Optional

from ..errors import OptionError
from ..memory.devices import DeviceName, cuda_possible, loaded_torch

#: The host's file locator: a name under its ckpts folder → a path, or None.
WeightsLocator = Callable[[str], Optional[str]]


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
