"""File formats of a raw export: a float16 ``.npy`` streamed row by row, Middlebury ``.flo`` files,
16-bit PNG depth maps and a JSON sidecar.

Everything is written one row at a time (the ``.npy`` through a memory mapping of the output file),
so an export of any length holds a row or two in RAM. Files go into a folder the caller renames
into place when complete; nothing here needs to be atomic on its own.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable, Iterable, Union

import numpy as np

#: The Middlebury ``.flo`` tag: the bytes ``PIEH``, which read as the float32 202021.25.
FLO_TAG = b"PIEH"
FLO_TAG_FLOAT = 202021.25
#: The largest 16-bit PNG value: a depth PNG maps the export's [min, max] onto 0..PNG_MAX.
PNG_MAX = 65535


def write_npy_rows(path: Union[str, Path], shape: tuple[int, ...], row: Callable[[int], np.ndarray],
                   dtype: Union[str, np.dtype] = np.float16) -> None:
    """Write a ``.npy`` of ``shape`` (float16 unless told) whose row ``i`` is ``row(i)`` (streamed into a mapping)."""
    if shape[0] == 0:
        np.save(path, np.zeros(shape, dtype=dtype), allow_pickle=False)
        return
    out = np.lib.format.open_memmap(path, mode="w+", dtype=dtype, shape=shape)
    try:
        for i in range(shape[0]):
            out[i] = row(i)
        out.flush()
    finally:
        del out


def write_flo(path: Union[str, Path], flow: np.ndarray) -> None:
    """One flow (H, W, 2) as a Middlebury ``.flo``: tag, int32 width, int32 height, float32 (u, v) rows."""
    height, width = flow.shape[:2]
    with open(path, "wb") as handle:
        handle.write(FLO_TAG)
        np.array([width, height], dtype="<i4").tofile(handle)
        np.ascontiguousarray(flow, dtype="<f4").tofile(handle)


def read_flo(path: Union[str, Path]) -> np.ndarray:
    """A Middlebury ``.flo`` back as (H, W, 2) float32 (the tag and sizes checked)."""
    data = Path(path).read_bytes()
    if data[:4] != FLO_TAG:
        raise ValueError(f"{path} is not a .flo file (no PIEH tag)")
    width, height = (int(v) for v in np.frombuffer(data, dtype="<i4", count=2, offset=4))
    flow = np.frombuffer(data, dtype="<f4", offset=12)
    if flow.size != width * height * 2:
        raise ValueError(f"{path}: {flow.size} values for {width}x{height}x2")
    return flow.reshape(height, width, 2)


def value_range(rows: Iterable[np.ndarray]) -> tuple[float, float]:
    """The smallest and largest finite value over ``rows`` (one streaming pass)."""
    low, high = np.inf, -np.inf
    for row in rows:
        low, high = min(low, float(np.nanmin(row))), max(high, float(np.nanmax(row)))
    if not np.isfinite(low):
        return 0.0, 0.0
    return low, high


def to_png16(depth: np.ndarray, low: float, high: float) -> np.ndarray:
    """``round((depth - low) / (high - low) * 65535)`` as uint16 (all 0 when high == low)."""
    span = high - low
    if span <= 0:
        return np.zeros(depth.shape, dtype=np.uint16)
    scaled = (depth.astype(np.float64) - low) * (PNG_MAX / span)
    return np.clip(np.rint(scaled), 0, PNG_MAX).astype(np.uint16)


def from_png16(values: np.ndarray, low: float, high: float) -> np.ndarray:
    """The inverse of :func:`to_png16`: ``low + values / 65535 * (high - low)`` as float32."""
    return (low + values.astype(np.float64) * ((high - low) / PNG_MAX)).astype(np.float32)


def write_png16(path: Union[str, Path], values: np.ndarray) -> None:
    """A single-channel 16-bit PNG."""
    import cv2

    if not cv2.imwrite(str(path), values):
        raise OSError(f"cannot write {path}")


def write_sidecar(path: Union[str, Path], fields: dict[str, Any]) -> None:
    """The export's JSON description (sorted keys, readable)."""
    Path(path).write_text(json.dumps(fields, indent=2, sort_keys=True) + "\n", encoding="utf-8")
