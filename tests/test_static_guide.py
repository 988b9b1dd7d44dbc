"""Issue 12 item 4: a still shot gives a white flow guide, also when H.264 noise flickers in it.

Built through the public API (``build_guide``) and checked on the decoded guide video.
"""
from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
from skimage import data
from skimage.transform import resize

from wan2gp_structure_video import GuideRequest, RunContext, build_guide
from wan2gp_structure_video.preprocessors.video.video_io import iter_frames

WIDTH, HEIGHT, FRAMES = 320, 192, 12


def _photo() -> np.ndarray:
    image = resize(data.astronaut(), (HEIGHT, WIDTH), anti_aliasing=True)
    return (image * 255).round().astype(np.uint8)


def _write_static(path: Path, codec: str, options: dict[str, str], pix_fmt: str, noise: float) -> Path:
    """FRAMES copies of one photograph, each with fresh sensor-like noise of ``noise`` levels (σ)."""
    rng = np.random.default_rng(5)
    photo = _photo().astype(np.float32)
    container = "matroska" if path.suffix == ".mkv" else "mp4"
    with av.open(str(path), "w", format=container) as out:
        stream = out.add_stream(codec, rate=Fraction(24))
        stream.width, stream.height, stream.pix_fmt = WIDTH, HEIGHT, pix_fmt
        stream.options = options
        for index in range(FRAMES):
            pixels = np.clip(photo + rng.normal(0.0, noise, photo.shape), 0, 255).astype(np.uint8) if noise else \
                photo.astype(np.uint8)
            frame = av.VideoFrame.from_ndarray(pixels, format="rgb24").reformat(format=pix_fmt)
            frame.pts = index
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return path


def _white_share(guide: Path) -> float:
    frames = np.stack(list(iter_frames(guide))).astype(np.int16)
    return float((frames.min(axis=-1) >= 255 - 8).mean())


@pytest.mark.parametrize("kind", ["lossless", "h264", "h264_noisy"])
def test_static_source_gives_a_white_guide(tmp_path: Path, kind: str) -> None:
    if kind == "lossless":
        source = _write_static(tmp_path / "still.mkv", "ffv1", {}, "bgr0", noise=0.0)
    elif kind == "h264":
        source = _write_static(tmp_path / "still.mp4", "libx264", {"crf": "23"}, "yuv420p", noise=0.0)
    else:  # a tripod shot: sensor noise, then H.264 at its default quality
        source = _write_static(tmp_path / "still.mp4", "libx264", {"crf": "23"}, "yuv420p", noise=2.0)
    guide = tmp_path / "guide.mp4"
    request = GuideRequest(source, guide, resolution=(WIDTH, HEIGHT), frames=17, fps=16, backend="dis")
    build_guide(request, RunContext(use_cache=False))
    assert _white_share(guide) >= 0.99


def test_slow_pan_is_not_white(tmp_path: Path) -> None:
    """The dead zone must not swallow real motion: a 1 px/frame pan is clearly coloured."""
    photo = resize(data.astronaut(), (HEIGHT, WIDTH + FRAMES), anti_aliasing=True)
    photo = (photo * 255).round().astype(np.uint8)
    source = tmp_path / "pan.mp4"
    with av.open(str(source), "w", format="mp4") as out:
        stream = out.add_stream("libx264", rate=Fraction(24))
        stream.width, stream.height, stream.pix_fmt = WIDTH, HEIGHT, "yuv420p"
        stream.options = {"crf": "18"}
        for index in range(FRAMES):
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(photo[:, index:index + WIDTH]), format="rgb24")
            frame.pts = index
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    guide = tmp_path / "guide.mp4"
    build_guide(GuideRequest(source, guide, resolution=(WIDTH, HEIGHT), frames=FRAMES, fps=24, backend="dis",
                             treatment="clip"), RunContext(use_cache=False))
    assert _white_share(guide) < 0.5
