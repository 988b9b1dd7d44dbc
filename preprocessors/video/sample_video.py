"""A deterministic synthetic structure video (no downloads, generated in about a second).

A camera pans right and slowly zooms in over a procedurally generated landscape — sky with clouds,
two mountain ridges, hills with trees, a textured meadow — while three objects move on their own:
a ball bouncing across the meadow, a bird flying the other way, a cart driving along the hills.
The default length (130 frames at 24 fps, 5.4 s) covers Wan2GP's default target (81 frames at
16 fps, 5.06 s) without stretching, so the first guide a user makes reads as motion.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Iterator, Union

import cv2
import numpy as np

from .guide_writer import GuideVideoWriter

PathLike = Union[str, Path]

#: Default length and rate: ≥ 5.1 s, enough for 81 frames at 16 fps.
SAMPLE_FRAMES = 130
SAMPLE_FPS = 24.0
#: The sample is a *source* video: encoded at a camera-like quality, not at the guide's fast settings.
SOURCE_CRF = 17
SOURCE_PRESET = "veryfast"
#: Camera: how far it pans (in frame widths over the whole clip) and how much it zooms in.
PAN_WIDTHS = 0.75
ZOOM = 1.35
#: The view at the start covers this many frame sizes of the world (room for the zoom).
VIEW = 1.25


def _fractal(height: int, width: int, rng: np.random.Generator, octaves: int = 5, base: int = 3) -> np.ndarray:
    """Smooth fractal noise in [0, 1], float32 (height, width): coarse shapes plus finer detail."""
    total = np.zeros((height, width), dtype=np.float32)
    weight_sum = 0.0
    for octave in range(octaves):
        cells = base * 2 ** octave
        grid = rng.random((max(2, cells * height // max(height, width) + 2), cells + 2)).astype(np.float32)
        layer = cv2.resize(grid, (width, height), interpolation=cv2.INTER_CUBIC)
        weight = 0.55 ** octave
        total += weight * layer
        weight_sum += weight
    total /= weight_sum
    low, high = float(total.min()), float(total.max())
    return (total - low) / max(high - low, 1e-6)


def _ridge(width: int, rng: np.random.Generator, base: int) -> np.ndarray:
    """A 1-D fractal profile in [0, 1] of length ``width`` (a mountain or hill line)."""
    return _fractal(1, width, rng, octaves=6, base=base)[0]


def _mix(a: np.ndarray, b: np.ndarray, t: np.ndarray) -> np.ndarray:
    return a * (1.0 - t[..., None]) + b * t[..., None]


def _world(height: int, width: int, rng: np.random.Generator) -> np.ndarray:
    """The landscape the camera moves over, RGB uint8 (height, width, 3)."""
    ys = np.linspace(0.0, 1.0, height, dtype=np.float32)[:, None] * np.ones((1, width), dtype=np.float32)
    horizon = 0.52
    # Sky: a vertical gradient with soft clouds.
    sky = _mix(np.array([70, 120, 200], np.float32), np.array([190, 215, 240], np.float32), ys / horizon)
    clouds = np.clip((_fractal(height, width, rng, octaves=5, base=4) - 0.5) * 2.4, 0, 1)
    image = _mix(sky, np.array([250, 250, 252], np.float32), clouds * 0.85)
    detail = _fractal(height, width, rng, octaves=6, base=24) - 0.5   # fine texture shared by the land
    # Far mountains: grey-blue rock with snowy tops.
    far = horizon - 0.08 - 0.26 * _ridge(width, rng, 5)
    rock = _mix(np.array([95, 105, 130], np.float32), np.array([140, 145, 160], np.float32),
                _fractal(height, width, rng, octaves=6, base=10))
    snow = np.clip((far[None, :] + 0.07 - ys) / 0.07, 0, 1) * 0.8
    rock = _mix(rock, np.array([235, 238, 245], np.float32), snow)
    image = np.where((ys >= far[None, :])[..., None], rock, image)
    # Near hills with trees, then the meadow.
    near = horizon - 0.02 - 0.12 * _ridge(width, rng, 8)
    hills = _mix(np.array([45, 95, 45], np.float32), np.array([95, 140, 60], np.float32),
                 _fractal(height, width, rng, octaves=6, base=14))
    image = np.where((ys >= near[None, :])[..., None], hills, image)
    meadow_top = horizon + 0.06
    meadow = _mix(np.array([110, 150, 55], np.float32), np.array([160, 175, 80], np.float32),
                  _fractal(height, width, rng, octaves=6, base=18))
    flowers = (_fractal(height, width, rng, octaves=3, base=60) > 0.82).astype(np.float32)
    meadow = _mix(meadow, np.array([230, 210, 90], np.float32), flowers * 0.6)
    shade = np.clip((ys - meadow_top) / (1.0 - meadow_top), 0, 1) * 0.25   # darker towards the camera
    meadow = meadow * (1.0 - shade[..., None])
    image = np.where((ys >= meadow_top)[..., None], meadow, image)
    image += detail[..., None] * np.where(ys >= far[None, :], 70.0, 12.0)[..., None]
    grain = cv2.GaussianBlur(rng.standard_normal((height, width)).astype(np.float32), (0, 0), 0.8)
    image += (grain * np.where(ys >= near[None, :], 45.0, 0.0))[..., None]   # grass and foliage grain
    world = np.clip(image, 0, 255).astype(np.uint8)
    # Trees along the hills: dark textured crowns on trunks.
    for _ in range(max(6, width // 40)):
        x = int(rng.integers(0, width))
        base_y = int((near[x] + 0.03) * height)
        radius = max(2, int(height * rng.uniform(0.018, 0.035)))
        cv2.line(world, (x, base_y), (x, base_y - 2 * radius), (70, 50, 30), max(1, radius // 3))
        green = tuple(int(c) for c in rng.integers([20, 60, 20], [50, 100, 45]))
        cv2.circle(world, (x, base_y - 2 * radius), radius, green, -1, cv2.LINE_AA)
    return world


def _ball(radius: int, rng: np.random.Generator) -> np.ndarray:
    """A beach ball: six coloured segments with a little grain, (2r, 2r, 3) uint8."""
    yy, xx = np.mgrid[-radius:radius, -radius:radius].astype(np.float32)
    segment = ((np.arctan2(yy, xx) + np.pi) / (2 * np.pi) * 6).astype(np.int64) % 6
    colours = np.array([[230, 40, 40], [250, 250, 245], [40, 90, 220], [250, 250, 245], [250, 200, 30],
                        [250, 250, 245]], np.float32)
    image = colours[segment] * (1.0 - 0.35 * np.clip(np.hypot(xx + radius / 3, yy + radius / 3) / radius, 0, 1))[..., None]
    image += rng.normal(0, 10, image.shape).astype(np.float32)
    return np.clip(image, 0, 255).astype(np.uint8)


def _cart(width: int, height: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """A wooden cart with two wheels: (image, mask)."""
    image = np.zeros((height, width, 3), np.uint8)
    mask = np.zeros((height, width), np.uint8)
    body = height * 2 // 3
    wood = np.array([130, 85, 45], np.float32) * (0.8 + 0.4 * rng.random((body, width, 1)).astype(np.float32))
    image[:body] = np.clip(wood, 0, 255).astype(np.uint8)
    for y in range(0, body, max(2, body // 3)):
        image[y] = (80, 50, 25)                                 # planks
    mask[:body] = 1
    wheel = max(2, (height - body) + 1)
    for cx in (width // 4, 3 * width // 4):
        cv2.circle(image, (cx, height - wheel), wheel, (30, 30, 30), -1)
        cv2.circle(mask, (cx, height - wheel), wheel, 1, -1)
    return image, mask > 0


def _paste(frame: np.ndarray, patch: np.ndarray, mask: np.ndarray, left: int, top: int) -> None:
    height, width = frame.shape[:2]
    x0, y0 = max(0, left), max(0, top)
    x1, y1 = min(width, left + patch.shape[1]), min(height, top + patch.shape[0])
    if x1 <= x0 or y1 <= y0:
        return
    sub = mask[y0 - top:y1 - top, x0 - left:x1 - left]
    frame[y0:y1, x0:x1][sub] = patch[y0 - top:y1 - top, x0 - left:x1 - left][sub]


def _camera(k: int, frames: int, width: int, height: int, world_w: int, world_h: int) -> np.ndarray:
    """The 2x3 map from frame pixels to world pixels at frame ``k`` (pan right, zoom in)."""
    t = k / max(1, frames - 1)
    scale = VIEW / (1.0 + (ZOOM - 1.0) * t)                       # world pixels per frame pixel
    cx = VIEW * width / 2 + 4 + PAN_WIDTHS * width * t
    cy = world_h * 0.5 + 0.04 * height * math.sin(math.pi * t)   # a slight tilt
    return np.float32([[scale, 0, cx - scale * width / 2], [0, scale, cy - scale * height / 2]])


def sample_frames(width: int = 640, height: int = 360, frames: int = SAMPLE_FRAMES,
                  seed: int = 0) -> Iterator[np.ndarray]:
    """The frames of the sample video, RGB uint8 (height, width, 3), one at a time."""
    if not (16 <= width <= 4096 and 16 <= height <= 4096):
        raise ValueError(f"sample size {width}x{height} must be between 16 and 4096 on each side")
    if not 1 <= frames <= 10_000:
        raise ValueError(f"sample frame count {frames} must be between 1 and 10000")
    rng = np.random.default_rng(seed)
    world_w = int(math.ceil(VIEW * width + PAN_WIDTHS * width + 8))
    world_h = int(math.ceil(VIEW * height * 1.1 + 8))
    world = _world(world_h, world_w, rng)
    radius = max(3, min(width, height) // 12)
    yy, xx = np.mgrid[-radius:radius, -radius:radius]
    disc = (xx ** 2 + yy ** 2) < radius ** 2
    ball = _ball(radius, rng)
    bird_w, bird_h = max(6, width // 14), max(3, height // 24)
    bird = np.zeros((bird_h * 2, bird_w, 3), np.uint8)
    bird_mask = np.zeros((bird_h * 2, bird_w), np.uint8)
    cart_w, cart_h = max(8, width // 9), max(4, height // 14)
    cart, cart_mask = _cart(cart_w, cart_h, rng)
    for k in range(frames):
        t = k / max(1, frames - 1)
        frame = cv2.warpAffine(world, _camera(k, frames, width, height, world_w, world_h), (width, height),
                               flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP, borderMode=cv2.BORDER_REFLECT)
        # Cart: drives right along the hills, against the scene's motion in the frame.
        _paste(frame, cart, cart_mask, int(width * (0.1 + 0.6 * t)) - cart_w // 2, int(height * 0.56))
        # Ball: rolls right across the meadow, bouncing (spins as it goes).
        bx = width * (0.1 + 0.75 * t)
        by = height * 0.9 - radius - abs(math.sin(math.pi * 3.5 * t)) * height * 0.35
        spun = cv2.warpAffine(ball, cv2.getRotationMatrix2D((radius, radius), -720 * t, 1.0),
                              (2 * radius, 2 * radius), borderMode=cv2.BORDER_REPLICATE)
        _paste(frame, spun, disc, int(round(bx)) - radius, int(round(by)) - radius)
        # Bird: flies left through the sky, flapping (wing tips up and down).
        bird[:] = 0
        bird_mask[:] = 0
        flap = int(bird_h * (0.5 + 0.5 * math.sin(2 * math.pi * 6 * t)))
        wing = np.array([[0, flap], [bird_w // 2, bird_h], [bird_w - 1, flap]], np.int32)
        cv2.polylines(bird_mask, [wing], False, 1, max(2, bird_h // 2))
        bird[bird_mask > 0] = (35, 30, 40)
        _paste(frame, bird, bird_mask > 0, int(width * (0.9 - 0.8 * t)),
               int(height * (0.18 + 0.05 * math.sin(2 * math.pi * 1.5 * t))))
        yield frame


def write_sample_video(path: PathLike, width: int = 640, height: int = 360, frames: int = SAMPLE_FRAMES,
                       fps: float = SAMPLE_FPS, seed: int = 0) -> Path:
    """Encode the sample video (H.264) at ``path``; returns the path."""
    if width % 2 or height % 2:
        raise ValueError(f"sample size {width}x{height} must be even (H.264)")
    path = Path(path)
    with GuideVideoWriter(path, width, height, fps, crf=SOURCE_CRF, preset=SOURCE_PRESET) as writer:
        for frame in sample_frames(width, height, frames, seed):
            writer.write(frame)
    return path
