"""Warping one flow field by another: the inner step of composing motion over several stored rows.

``total += fraction · flow(x + total(x))`` — the next row sampled where the motion so far carried
each pixel (bilinear, edges replicated). Two layouts:

* **interleaved** ``(H, W, 2)``: one two-channel remap per warp;
* **planar** ``(2, H, W)``: u and v warped as two one-channel images by the same maps.

Which is faster depends on OpenCV. OpenCV 5 interpolates one-channel float images with SIMD and
exact float weights, and two-channel ones on its generic path with 1/32-pixel fixed-point weights:
two one-channel warps take 0.6–0.8 of one two-channel warp there (832×480, 2 cores), and sample
closer to exact bilinear (1e-5 px instead of up to 0.02 px). OpenCV 4.x uses the fixed-point path
for every layout, and two one-channel warps are 1.04–1.3× one two-channel warp. So
:data:`PLANAR_WARPS` picks planar on OpenCV 5 and later only; ``bench/retarget_parts.py`` measures
the compose step either way.
"""
from __future__ import annotations

import threading

import cv2
import numpy as np

__all__ = ["PLANAR_WARPS", "FlowWarper", "WARPER", "to_planes", "from_planes"]

#: OpenCV 4.10+ samples at ``x + map(x)`` itself (``WARP_RELATIVE_MAP``): no pixel grid to add first.
RELATIVE_MAP = getattr(cv2, "WARP_RELATIVE_MAP", None)


def _major_version() -> int:
    try:
        return int(cv2.__version__.split(".")[0])
    except (AttributeError, ValueError):
        return 4


#: Whether composing warps u and v as planes (OpenCV 5+, see the module docstring).
PLANAR_WARPS = _major_version() >= 5


def to_planes(flow: np.ndarray) -> np.ndarray:
    """A new ``(2, H, W)`` float32 array with the u and v planes of the ``(H, W, 2)`` flow."""
    planes = np.empty((2,) + flow.shape[:2], dtype=np.float32)
    cv2.split(np.ascontiguousarray(flow, dtype=np.float32), [planes[0], planes[1]])
    return planes


def from_planes(planes: np.ndarray) -> np.ndarray:
    """A new ``(H, W, 2)`` float32 flow from ``(2, H, W)`` planes."""
    return cv2.merge([planes[0], planes[1]])


class FlowWarper:
    """``total += fraction · flow(x + total)``, in either layout.

    The warped result (and, on OpenCV without relative maps, the pixel grid and the sampling map)
    live in buffers kept per thread and reused from call to call: a re-target warps a few rows per
    guide frame, and allocating (and page-faulting) fresh frame-sized arrays per warp cost about a
    fifth of the warp itself."""

    def __init__(self) -> None:
        self._local = threading.local()

    def _buffers(self, kind: str, shape: tuple[int, ...]) -> tuple[np.ndarray, ...]:
        key = (kind, shape, RELATIVE_MAP is None)
        cached = getattr(self._local, "buffers", None)
        if cached is not None and cached[0] == key:
            return cached[1]
        warped = np.empty(shape, dtype=np.float32)
        if RELATIVE_MAP is not None:
            buffers: tuple[np.ndarray, ...] = (warped,)
        else:
            height, width = (shape[1], shape[2]) if kind == "planar" else shape[:2]
            ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
            grid = np.stack([xs, ys]) if kind == "planar" else np.dstack([xs, ys])
            buffers = (warped, grid, np.empty_like(grid))
        self._local.buffers = (key, buffers)
        return buffers

    def add_into(self, total: np.ndarray, flow: np.ndarray, fraction: np.float32) -> None:
        """Interleaved ``(H, W, 2)`` fields. With a relative map OpenCV adds the pixel position itself
        (one pass less over the frame, and the position is not rounded to float32 first)."""
        buffers = self._buffers("interleaved", flow.shape)
        if RELATIVE_MAP is not None:
            warped = cv2.remap(flow, total, None, cv2.INTER_LINEAR | RELATIVE_MAP, dst=buffers[0],
                               borderMode=cv2.BORDER_REPLICATE)
        else:
            warped, grid, sample_at = buffers
            np.add(grid, total, out=sample_at)
            warped = cv2.remap(flow, sample_at, None, cv2.INTER_LINEAR, dst=warped, borderMode=cv2.BORDER_REPLICATE)
        _accumulate(total, warped, fraction)

    def add_planes_into(self, total: np.ndarray, flow: np.ndarray, fraction: np.float32) -> None:
        """Planar ``(2, H, W)`` fields: u and v warped as two one-channel images by the same maps
        (both read from ``total`` before it changes)."""
        buffers = self._buffers("planar", flow.shape)
        warped = buffers[0]
        if RELATIVE_MAP is not None:
            map_x, map_y, flags = total[0], total[1], cv2.INTER_LINEAR | RELATIVE_MAP
        else:
            grid, sample_at = buffers[1], buffers[2]
            np.add(grid, total, out=sample_at)
            map_x, map_y, flags = sample_at[0], sample_at[1], cv2.INTER_LINEAR
        for plane in (0, 1):
            cv2.remap(flow[plane], map_x, map_y, flags, dst=warped[plane], borderMode=cv2.BORDER_REPLICATE)
        _accumulate(total.reshape(-1, total.shape[-1]), warped.reshape(-1, warped.shape[-1]), fraction)


def _accumulate(total: np.ndarray, warped: np.ndarray, fraction: np.float32) -> None:
    """``total += fraction · warped`` in place: one fused pass; a whole row adds as it is (the same
    sums as NumPy's ``+=``, on both cores)."""
    if fraction != 1.0:
        cv2.scaleAdd(warped, float(fraction), total, dst=total)
    else:
        cv2.add(total, warped, dst=total)


#: The warper the composition uses (buffers per thread).
WARPER = FlowWarper()
