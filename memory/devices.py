"""Devices and CUDA questions without importing torch where no torch model runs.

DIS, canny, raw, cache hits and re-targets never load torch; their memory bookkeeping still names a
device. A CPU device is a :class:`DeviceName` until torch is loaded (then a ``torch.device``); any
other device needs torch anyway, so asking for one imports it. CUDA is asked about only when torch
is already in ``sys.modules``: a process that never loaded torch has nothing on a GPU.
"""
from __future__ import annotations

import sys
from dataclasses import dataclass
from types import ModuleType
from typing import Any, Optional, Protocol, runtime_checkable

from ..cli_args import _gpu_driver_present


@dataclass(frozen=True)
class DeviceName:
    """A device as torch spells it (``type``, ``index``), for processes that have not loaded torch."""

    type: str
    index: Optional[int] = None

    def __str__(self) -> str:
        return self.type if self.index is None else f"{self.type}:{self.index}"


def loaded_torch() -> Optional[ModuleType]:
    """``torch`` when this process has already imported it, else ``None`` (never imports it)."""
    return sys.modules.get("torch")


def as_device(device: Any) -> Any:
    """``device`` (a string or a device) as a ``torch.device``, or as a :class:`DeviceName` for the CPU
    while torch is not loaded."""
    torch = loaded_torch()
    if torch is None and str(device) == "cpu":
        return DeviceName("cpu")
    if torch is None:
        import torch
    return torch.device(str(device)) if isinstance(device, DeviceName) else torch.device(device)


def cuda_ready() -> bool:
    """Whether torch is loaded and sees a CUDA device (``False`` without importing torch)."""
    torch = loaded_torch()
    return torch is not None and bool(torch.cuda.is_available())


def is_torch_module(value: Any) -> bool:
    """Whether ``value`` is a ``torch.nn.Module`` (never true while torch is not loaded)."""
    torch = loaded_torch()
    return torch is not None and isinstance(value, torch.nn.Module)


@runtime_checkable
class DevicePlaced(Protocol):
    """An annotator that places itself (an ONNX session holder, not a torch module).

    ``place(device)`` builds or moves it for ``device`` (a ``torch.device`` or :class:`DeviceName`);
    ``unload()`` frees its device memory (it may destroy and later rebuild what it holds);
    ``release()`` drops everything it holds.
    """

    def place(self, device: Any) -> Any: ...

    def unload(self) -> None: ...

    def release(self) -> None: ...


def is_device_placed(value: Any) -> bool:
    """Whether ``value`` places itself (:class:`DevicePlaced`) rather than being moved with ``.to()``."""
    return not is_torch_module(value) and isinstance(value, DevicePlaced)


def cuda_possible() -> bool:
    """Whether torch could see a GPU here, answered without importing it: ``False`` only on Linux
    without NVIDIA's or ROCm's driver files (the same check the CLI's ``--device`` uses)."""
    return _gpu_driver_present()
