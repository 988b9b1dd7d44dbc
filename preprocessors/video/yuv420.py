"""RGB → YUV 4:2:0 (I420) for the H.264 encoder, with OpenCV.

The same conversion the encoder's own scaler would do by default (ITU-R BT.601, limited range:
Y 16–235, chroma 16–240 around 128), at about a third of its cost: one colour transform of the
whole frame, and the chroma planes averaged over 2×2 blocks. Guide frames are smooth colour fields,
so the averaged chroma keeps them as well as the scaler does (measured in ``bench/end_to_end.py``).
"""
from __future__ import annotations

import cv2
import numpy as np

# Rows: Y, Cb, Cr; columns: R, G, B (0..255) and the offset.
_BT601_LIMITED = np.array([[65.481, 128.553, 24.966, 16.0 * 255.0],
                           [-37.797, -74.203, 112.0, 128.0 * 255.0],
                           [112.0, -93.786, -18.214, 128.0 * 255.0]], dtype=np.float32) / np.float32(255.0)


def rgb_to_i420(rgb: np.ndarray) -> np.ndarray:
    """(H, W, 3) uint8 RGB with even H and W → (H·3/2, W) uint8 planes Y, then U, then V."""
    height, width = rgb.shape[:2]
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8 or height % 2 or width % 2:
        raise ValueError(f"need an even-sized uint8 (H, W, 3) RGB frame, got {rgb.dtype} {rgb.shape}")
    yuv = cv2.transform(np.ascontiguousarray(rgb), _BT601_LIMITED)  # rounded, saturated to uint8
    planes = np.empty((height * 3 // 2, width), dtype=np.uint8)
    luma, cb, cr = cv2.split(yuv)
    planes[:height] = luma
    quarter = (width // 2, height // 2)
    chroma = planes[height:].reshape(2, height // 2, width // 2)  # U then V, each (H/2, W/2)
    chroma[0] = cv2.resize(cb, quarter, interpolation=cv2.INTER_AREA)
    chroma[1] = cv2.resize(cr, quarter, interpolation=cv2.INTER_AREA)
    return planes
