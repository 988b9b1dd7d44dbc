"""What every optical-flow backend looks like, and the input checks they share.

A backend turns a batch of frame pairs into dense flow: ``first`` and ``second`` are
``(B, H, W, 3)`` uint8 RGB arrays and the result is ``(B, H, W, 2)`` float32, the motion in
pixels ``(dx, dy)`` that takes each pixel of ``first`` to its place in ``second``.
"""
from __future__ import annotations

import logging
from typing import Protocol, runtime_checkable

import numpy as np

logger = logging.getLogger(__name__)

#: Names a backend may carry (``FlowBackend.name``).
FLOW_BACKEND_NAMES = ("raft-large", "raft-small", "dis")


@runtime_checkable
class FlowBackend(Protocol):
    """A dense optical-flow estimator working on batches of RGB frame pairs."""

    name: str
    device: str

    def compute(self, first: np.ndarray, second: np.ndarray) -> np.ndarray:
        """Flow from ``first`` to ``second``: (B, H, W, 3) uint8 each → (B, H, W, 2) float32 pixels."""
        ...


def check_frame_batch(frames: np.ndarray, label: str = "frames") -> tuple[int, int, int]:
    """Validate one non-empty ``(B, H, W, 3)`` uint8 batch and return ``(batch, height, width)``.

    Raises ``ValueError`` (a programming error, not a user error) otherwise. Every annotator
    backend (flow, depth) takes its frames in this form.
    """
    if not isinstance(frames, np.ndarray):
        raise ValueError(f"{label} must be a numpy array, got {type(frames).__name__}")
    if frames.ndim != 4 or frames.shape[-1] != 3:
        raise ValueError(f"{label} must have shape (B, H, W, 3), got {frames.shape}")
    if frames.dtype != np.uint8:
        raise ValueError(f"{label} must be uint8 RGB, got {frames.dtype}")
    batch, height, width = frames.shape[:3]
    if batch == 0 or height == 0 or width == 0:
        raise ValueError(f"empty batch of frames: {frames.shape}")
    return batch, height, width


def check_pair_batch(first: np.ndarray, second: np.ndarray) -> tuple[int, int, int]:
    """Validate a batch of frame pairs and return ``(batch, height, width)``.

    Raises ``ValueError`` (a programming error, not a user error) when the arrays are not two
    equally shaped, non-empty ``(B, H, W, 3)`` uint8 arrays.
    """
    check_frame_batch(first, "first")
    check_frame_batch(second, "second")
    if first.shape != second.shape:
        raise ValueError(f"first and second differ in shape: {first.shape} vs {second.shape}")
    return first.shape[:3]
