"""Placement handles for one annotator module, with the host's offload semantics.

``unload()`` — the weights leave the GPU (kept in RAM for a fast next use) and cached blocks are freed;
``release()`` — the module is dropped and nothing of ours references it any more.

:class:`PlainPlacement` moves the module with ``.to(device)``, or lets a :class:`~.devices.DevicePlaced`
object (an ONNX session holder) place, unload and release itself. :class:`MmgpPlacement` puts it under
mmgp's offload (``offload.all`` / ``offload.profile`` on ``{name: module}``), like the host's own
models; mmgp needs CUDA, so it is only used for CUDA devices.
"""
from __future__ import annotations

import gc
import importlib
import logging
from dataclasses import dataclass
from typing import Any, Optional

from .devices import is_device_placed, is_torch_module, loaded_torch
from .monitor import empty_device_cache

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class OffloadOptions:
    """Options passed to mmgp: ``profile`` (a profile number; None uses ``offload.all``), pinned RAM, VRAM budget."""

    profile: Optional[int] = None
    pinned_memory: bool = False
    budget_mb: int = 0
    async_transfers: bool = False


def module_device_types(module: Any) -> set[str]:
    """Device types of the parameters and buffers of ``module`` (empty for non-modules)."""
    if not is_torch_module(module):
        return set()
    types = {p.device.type for p in module.parameters()}
    types.update(b.device.type for b in module.buffers())
    return types


class PlainPlacement:
    """Moves the module between devices with ``.to()``; a ``DevicePlaced`` object does it itself."""

    kind = "plain"

    def __init__(self, module: Any) -> None:
        self.module = module
        self._placed_on: Optional[str] = None  # device type of a DevicePlaced object, None when unloaded

    def place(self, device: Any) -> Any:
        if is_device_placed(self.module):
            self.module.place(device)
            self._placed_on = getattr(device, "type", str(device))
        elif is_torch_module(self.module):
            self.module.to(str(device))
        return self.module

    def unload(self) -> None:
        if is_device_placed(self.module):
            self.module.unload()
            self._placed_on = None
        elif is_torch_module(self.module):
            self.module.to("cpu")
        empty_device_cache(collect=False)

    def release(self) -> None:
        if is_device_placed(self.module):
            self.module.release()
            self._placed_on = None
        elif is_torch_module(self.module):
            self.module.to("cpu")
        self.module = None

    def on_gpu(self) -> bool:
        if is_device_placed(self.module):
            return self._placed_on == "cuda"
        return "cuda" in module_device_types(self.module)


class MmgpPlacement:
    """Under mmgp's offload: weights stay in RAM and are moved to the GPU by mmgp's hooks when the
    module runs; ``unload()`` is the offload object's ``unload_all()``."""

    kind = "mmgp"

    def __init__(self, module: Any, name: str, options: OffloadOptions, offload_module: Any = None) -> None:
        self.module = module
        self.name = name
        self.options = options
        self._offload_api = offload_module
        self.offloadobj: Any = None

    def _api(self) -> Any:
        if self._offload_api is None:
            self._offload_api = importlib.import_module("mmgp.offload")
        return self._offload_api

    def place(self, device: Any) -> Any:
        if device.type != "cuda":
            raise ValueError("mmgp placement is for CUDA devices only")
        if self.offloadobj is None:
            api = self._api()
            torch = loaded_torch()  # CUDA placement: the model, hence torch, is loaded
            previous = torch.get_default_device()
            try:
                modules = {self.name: self.module}
                common = dict(quantizeTransformer=False, convertWeightsFloatTo=None, verboseLevel=-1)
                if self.options.profile is not None:
                    self.offloadobj = api.profile(modules, self.options.profile, **common)
                else:
                    self.offloadobj = api.all(modules, pinnedMemory=self.options.pinned_memory,
                                              budgets=self.options.budget_mb,
                                              asyncTransfers=self.options.async_transfers, **common)
            finally:
                # offload.all leaves torch's default device set to CUDA for the whole process.
                torch.set_default_device(previous)
        return self.module

    def unload(self) -> None:
        if self.offloadobj is not None:
            self.offloadobj.unload_all()
        empty_device_cache(collect=False)

    def release(self) -> None:
        obj, self.offloadobj = self.offloadobj, None
        if obj is not None:
            try:
                obj.release()
            finally:
                del obj
        if is_torch_module(self.module) and "cuda" in module_device_types(self.module):
            self.module.to("cpu")
        self.module = None

    def on_gpu(self) -> bool:
        return "cuda" in module_device_types(self.module)


def mmgp_available() -> bool:
    """Whether mmgp can be imported (it is optional)."""
    try:
        importlib.import_module("mmgp.offload")
        return True
    except Exception:  # ImportError, or mmgp failing on import without CUDA
        return False


def drop_references() -> None:
    """Collect garbage and give cached device memory back (the end of every ``release``)."""
    gc.collect()
    empty_device_cache(collect=False)
