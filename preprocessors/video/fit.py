"""Fitting source frames to the target size without distorting motion.

``crop`` (default) cuts the largest centred box of the target's aspect ratio out of the source and
resizes it; ``pad`` letterboxes the whole frame on black; ``stretch`` resizes without keeping the
aspect ratio (the old behaviour, which distorts motion). Box computations are pure functions.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

import cv2
import numpy as np

from ...errors import OptionError, TargetError
from ...options import FIT_MODES, GUIDE_MAX_SIDE, GUIDE_MIN_SIDE, GUIDE_SIZE_MULTIPLE



@dataclass(frozen=True)
class Box:
    """A rectangle in pixels: top-left corner and size."""

    x: int
    y: int
    width: int
    height: int


def parse_resolution(text: str) -> tuple[int, int]:
    """Parse ``"832x480"`` (also ``832*480`` or ``832X480``) into ``(width, height)``."""
    match = re.fullmatch(r"\s*(\d+)\s*[xX*×]\s*(\d+)\s*", str(text))
    if not match:
        raise TargetError(f"Resolution {text!r} is not WIDTHxHEIGHT: write it like 832x480.")
    return int(match.group(1)), int(match.group(2))


def snap_resolution(width: int, height: int) -> tuple[int, int]:
    """Snap a target size down to multiples of 16 as Wan2GP does, and check its bounds."""
    for label, value in (("width", width), ("height", height)):
        if not isinstance(value, (int, np.integer)) or value < GUIDE_MIN_SIDE or value > GUIDE_MAX_SIDE:
            raise TargetError(
                f"Target {label} {value} is outside {GUIDE_MIN_SIDE}..{GUIDE_MAX_SIDE}: choose a resolution "
                f"between {GUIDE_MIN_SIDE} and {GUIDE_MAX_SIDE} pixels on each side.")
    return int(width) - int(width) % GUIDE_SIZE_MULTIPLE, int(height) - int(height) % GUIDE_SIZE_MULTIPLE


def crop_box(src_width: int, src_height: int, dst_width: int, dst_height: int) -> Box:
    """The largest centred box of the target's aspect ratio inside the source."""
    if min(src_width, src_height, dst_width, dst_height) <= 0:
        raise TargetError("Frame sizes must be positive.")
    if src_width * dst_height > src_height * dst_width:  # source is wider than the target
        height = src_height
        width = min(src_width, max(1, round(src_height * dst_width / dst_height)))
    else:
        width = src_width
        height = min(src_height, max(1, round(src_width * dst_height / dst_width)))
    return Box((src_width - width) // 2, (src_height - height) // 2, width, height)


def pad_box(src_width: int, src_height: int, dst_width: int, dst_height: int) -> Box:
    """Where the whole source lands inside the target when letterboxed (centred)."""
    if min(src_width, src_height, dst_width, dst_height) <= 0:
        raise TargetError("Frame sizes must be positive.")
    scale = min(dst_width / src_width, dst_height / src_height)
    width = min(dst_width, max(1, round(src_width * scale)))
    height = min(dst_height, max(1, round(src_height * scale)))
    return Box((dst_width - width) // 2, (dst_height - height) // 2, width, height)


def _resize(image: np.ndarray, width: int, height: int) -> np.ndarray:
    """Resize with area averaging when shrinking and Lanczos when enlarging."""
    if image.shape[1] == width and image.shape[0] == height:
        return np.ascontiguousarray(image).copy()
    shrinking = width * height < image.shape[1] * image.shape[0]
    interpolation = cv2.INTER_AREA if shrinking else cv2.INTER_LANCZOS4
    return cv2.resize(np.ascontiguousarray(image), (width, height), interpolation=interpolation)


class FrameFitter:
    """Fits frames of one source size to one target size (boxes computed once)."""

    def __init__(self, src_width: int, src_height: int, dst_width: int, dst_height: int,
                 mode: str = "crop") -> None:
        if mode not in FIT_MODES:
            raise OptionError(f"Unknown fit {mode!r}: use one of {', '.join(FIT_MODES)}.")
        self.mode = mode
        self.src_size = (src_width, src_height)
        self.dst_size = (dst_width, dst_height)
        self.crop = crop_box(src_width, src_height, dst_width, dst_height) if mode == "crop" else None
        self.pad = pad_box(src_width, src_height, dst_width, dst_height) if mode == "pad" else None

    def __call__(self, frame: np.ndarray) -> np.ndarray:
        """Return a new (dst_height, dst_width, 3) uint8 array; the input is not kept."""
        if frame.shape[1] != self.src_size[0] or frame.shape[0] != self.src_size[1]:
            raise TargetError(
                f"Frame size {frame.shape[1]}x{frame.shape[0]} changed mid-video "
                f"(expected {self.src_size[0]}x{self.src_size[1]}): re-encode the video at one size.")
        dst_width, dst_height = self.dst_size
        if self.crop is not None:
            box = self.crop
            return _resize(frame[box.y:box.y + box.height, box.x:box.x + box.width], dst_width, dst_height)
        if self.pad is not None:
            box = self.pad
            canvas = np.zeros((dst_height, dst_width, frame.shape[2]), dtype=frame.dtype)
            canvas[box.y:box.y + box.height, box.x:box.x + box.width] = _resize(frame, box.width, box.height)
            return canvas
        return _resize(frame, dst_width, dst_height)
