"""Fast float32 ↔ float16 conversion of whole rows (flows, depth maps) for the on-disk stores.

NumPy converts half floats element by element (about 2 ms for one 832×480 flow); PyTorch's
vectorised kernels, called in single-threaded chunks, take about 0.2–0.3 ms. PyTorch is imported on first use only (the CLI's
``--help`` must stay light); without it, NumPy does the same conversion, bit for bit.
"""
from __future__ import annotations

import threading
from typing import Any, Optional

import numpy as np

_torch: Optional[Any] = None
#: Elements per conversion call: below PyTorch's parallel grain, so each call stays on this thread
#: (fanning out to its worker threads costs more than it saves when the cores are busy with flow).
_CHUNK = 32768
_lock = threading.Lock()


def _torch_module() -> Optional[Any]:
    """``torch`` if it can be imported, else ``None`` (decided once)."""
    global _torch
    if _torch is None:
        with _lock:
            if _torch is None:
                try:
                    import torch
                    _torch = torch
                except ImportError:  # pragma: no cover - torch is a dependency
                    _torch = False
    return _torch or None


def store_half(destination: np.ndarray, source: np.ndarray) -> None:
    """Write float32 ``source`` into the float16 array ``destination`` (same shape; round to nearest even)."""
    if destination.shape != source.shape:
        raise ValueError(f"shape {source.shape} does not match the destination's {destination.shape}")
    torch = _torch_module()
    if torch is None or not destination.flags.writeable or not destination.flags.c_contiguous:
        np.copyto(destination, source, casting="unsafe")
        return
    values = np.ascontiguousarray(source, dtype=np.float32)
    _copy(torch.from_numpy(destination), torch.from_numpy(values))


def load_float32(source: np.ndarray) -> np.ndarray:
    """A new float32 array with the values of the float16 array ``source`` (never a view of it)."""
    torch = _torch_module()
    if torch is None or source.dtype != np.float16:
        return np.array(source, dtype=np.float32, copy=True)
    half = np.empty(source.shape, dtype=np.float16)
    np.copyto(half, source)  # a plain copy out of a (possibly read-only) mapping
    out = np.empty(source.shape, dtype=np.float32)
    _copy(torch.from_numpy(out), torch.from_numpy(half))
    return out


def _copy(destination: Any, source: Any) -> None:
    """``destination.copy_(source)`` over flat chunks (both contiguous, same number of elements)."""
    flat_destination, flat_source = destination.reshape(-1), source.reshape(-1)
    for start in range(0, flat_source.numel(), _CHUNK):
        flat_destination[start:start + _CHUNK].copy_(flat_source[start:start + _CHUNK])
