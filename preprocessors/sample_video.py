"""A deterministic synthetic structure video with real motion (no downloads): a textured background
panning slowly and textured discs moving in different directions — enough for optical flow to find."""
from __future__ import annotations

import math
from pathlib import Path
from typing import Iterator, Union

import cv2
import numpy as np

from .video_io import GuideVideoWriter

PathLike = Union[str, Path]


def _texture(height: int, width: int, rng: np.random.Generator) -> np.ndarray:
    """Smooth coloured noise with some sharp detail (flow needs texture at several scales)."""
    coarse = rng.integers(0, 256, (max(2, height // 16), max(2, width // 16), 3), dtype=np.uint8)
    base = cv2.resize(coarse, (width, height), interpolation=cv2.INTER_CUBIC).astype(np.int16)
    detail = rng.integers(-40, 41, (height, width, 3), dtype=np.int16)
    detail = cv2.GaussianBlur(detail.astype(np.float32), (0, 0), 1.2).astype(np.int16)
    return np.clip(base + detail, 0, 255).astype(np.uint8)


def sample_frames(width: int = 640, height: int = 360, frames: int = 48, seed: int = 0) -> Iterator[np.ndarray]:
    """The frames of the sample video, RGB uint8 (height, width, 3), one at a time."""
    if not (16 <= width <= 4096 and 16 <= height <= 4096):
        raise ValueError(f"sample size {width}x{height} must be between 16 and 4096 on each side")
    if not 1 <= frames <= 10_000:
        raise ValueError(f"sample frame count {frames} must be between 1 and 10000")
    rng = np.random.default_rng(seed)
    pan = max(4, width // 80)  # background speed in pixels per frame
    margin = pan * frames + 8
    background = _texture(height + 8, width + margin, rng)
    radius = max(4, min(width, height) // 8)
    shapes = []
    for index in range(3):
        patch = _texture(2 * radius, 2 * radius, rng)
        angle = rng.uniform(0, 2 * math.pi)
        speed = rng.uniform(1.0, 2.5) * max(1.0, min(width, height) / 120)
        start = (rng.uniform(radius, width - radius), rng.uniform(radius, height - radius))
        shapes.append((patch, start, (math.cos(angle) * speed, math.sin(angle) * speed), (index + 1) * 0.6))
    yy, xx = np.mgrid[-radius:radius, -radius:radius]
    disc = (xx ** 2 + yy ** 2) < radius ** 2
    for k in range(frames):
        x0 = pan * k
        frame = np.ascontiguousarray(background[4:4 + height, x0:x0 + width])
        for patch, (sx, sy), (vx, vy), spin in shapes:
            cx = _bounce(sx + vx * k, radius, width - radius)
            cy = _bounce(sy + vy * k, radius, height - radius)
            rotated = cv2.warpAffine(patch, cv2.getRotationMatrix2D((radius, radius), spin * k, 1.0),
                                     (2 * radius, 2 * radius), borderMode=cv2.BORDER_REFLECT)
            _paste(frame, rotated, disc, int(round(cx)) - radius, int(round(cy)) - radius)
        yield frame


def _bounce(position: float, low: float, high: float) -> float:
    """Reflect a 1-D position into [low, high] (shapes bounce off the borders)."""
    span = high - low
    if span <= 0:
        return low
    offset = (position - low) % (2 * span)
    return low + (offset if offset <= span else 2 * span - offset)


def _paste(frame: np.ndarray, patch: np.ndarray, mask: np.ndarray, left: int, top: int) -> None:
    height, width = frame.shape[:2]
    x0, y0 = max(0, left), max(0, top)
    x1, y1 = min(width, left + patch.shape[1]), min(height, top + patch.shape[0])
    if x1 <= x0 or y1 <= y0:
        return
    sub = mask[y0 - top:y1 - top, x0 - left:x1 - left]
    frame[y0:y1, x0:x1][sub] = patch[y0 - top:y1 - top, x0 - left:x1 - left][sub]


def write_sample_video(path: PathLike, width: int = 640, height: int = 360, frames: int = 48, fps: float = 24.0,
                       seed: int = 0) -> Path:
    """Encode the sample video (H.264) at ``path``; returns the path."""
    if width % 2 or height % 2:
        raise ValueError(f"sample size {width}x{height} must be even (H.264)")
    path = Path(path)
    with GuideVideoWriter(path, width, height, fps) as writer:
        for frame in sample_frames(width, height, frames, seed):
            writer.write(frame)
    return path
