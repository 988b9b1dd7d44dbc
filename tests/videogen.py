"""Generated test videos (PyAV), with content that tells which source frame was decoded.

Frame ``i`` of a ``marked`` video has a uniform value ``mark(i)`` in its top-left 10×10 block (in the
stored orientation) over a textured, moving background, so tests can read the index back.
"""
from __future__ import annotations

from fractions import Fraction
from pathlib import Path
from typing import Optional

import av
import numpy as np


def mark(index: int) -> int:
    return (20 + 7 * index) % 240


def read_mark(frame: np.ndarray) -> int:
    """The index whose mark is closest to the frame's top-left block (compression-tolerant)."""
    value = float(frame[3:6, 3:6].mean())
    return min(range(34), key=lambda i: abs(mark(i) - value))


def frame_content(index: int, width: int, height: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    texture = rng.integers(0, 256, (height // 4 + 2, width // 4 + 8, 3), dtype=np.uint8)
    texture = np.kron(texture, np.ones((4, 4, 1), dtype=np.uint8))
    frame = np.ascontiguousarray(np.roll(texture, index * 2, axis=1)[:height, :width])
    frame[:10, :10] = mark(index)
    return frame


def make_video(path: Path, width: int = 64, height: int = 48, frames: int = 10, fps: float = 24.0, *,
               codec: str = "libx264", pix_fmt: Optional[str] = None, container: Optional[str] = None,
               rotation: Optional[int] = None, pts: Optional[list[int]] = None,
               time_base: Optional[Fraction] = None, gop: Optional[int] = None,
               faststart: bool = False) -> Path:
    """Encode a marked video. Odd sizes need ``pix_fmt="yuv444p"`` (chosen automatically: libx264
    refuses odd sizes in yuv420p; yuv444p has no chroma subsampling, so any size works).
    ``rotation`` writes display-matrix metadata (clockwise degrees for display); ``pts`` gives
    explicit timestamps (variable frame rate) in ``time_base``; ``gop=1`` makes every frame a key
    frame (a truncated file then still decodes up to the cut); ``faststart`` puts the MP4 index
    first (so a truncated MP4 still opens)."""
    path = Path(path)
    if pix_fmt is None:
        pix_fmt = "yuv420p" if width % 2 == 0 and height % 2 == 0 and codec == "libx264" else \
            "yuv444p" if codec == "libx264" else "bgr0" if codec == "ffv1" else "rgb24"
    fmt = container or {".mp4": "mp4", ".mov": "mov", ".mkv": "matroska", ".webm": "webm"}[path.suffix]
    rate = Fraction(fps).limit_denominator(1001)
    options = {"movflags": "+faststart"} if faststart else {}
    with av.open(str(path), "w", format=fmt, options=options) as out:
        stream = out.add_stream(codec, rate=rate)
        stream.width, stream.height, stream.pix_fmt = width, height, pix_fmt
        if codec == "libx264":
            stream.options = {"crf": "8"}
        if gop is not None:
            stream.codec_context.gop_size = gop
        if time_base is not None:
            stream.time_base = time_base
            stream.codec_context.time_base = time_base
        if rotation:
            stream.set_display_rotation(-rotation)  # PyAV: counter-clockwise degrees
        images = (frame_content(index, width, height) for index in range(frames))
        _mux(out, stream, images, pts, time_base, pix_fmt)
    return path


def _mux(out, stream, images, pts: Optional[list[int]], time_base: Optional[Fraction], pix_fmt: str) -> None:
    """Encode RGB ``images`` into ``stream`` (frame ``i`` at ``pts[i]``, else ``i``) and flush it."""
    for index, image in enumerate(images):
        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="rgb24").reformat(format=pix_fmt)
        frame.pts = pts[index] if pts is not None else index
        if time_base is not None:
            frame.time_base = time_base
        for packet in stream.encode(frame):
            out.mux(packet)
    for packet in stream.encode():
        out.mux(packet)


def make_audio_only(path: Path) -> Path:
    with av.open(str(path), "w", format="mp4") as out:
        stream = out.add_stream("aac", rate=16000)
        stream.layout = "mono"
        samples = (np.sin(np.arange(16000) / 10.0) * 0.3).astype(np.float32)[None, :]
        frame = av.AudioFrame.from_ndarray(samples, format="fltp", layout="mono")
        frame.sample_rate = 16000
        for packet in stream.encode(frame):
            out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return path


def make_png(path: Path, width: int = 32, height: int = 24) -> Path:
    import cv2
    cv2.imwrite(str(path), np.full((height, width, 3), 128, np.uint8))
    return path


def make_jpeg(path: Path, width: int = 32, height: int = 24) -> Path:
    import cv2
    cv2.imwrite(str(path), np.full((height, width, 3), 90, np.uint8))
    return path


def make_truncated(source: Path, target: Path, fraction: float = 0.5) -> Path:
    data = Path(source).read_bytes()
    Path(target).write_bytes(data[: int(len(data) * fraction)])
    return Path(target)


def make_vfr_video(path: Path, pts: list[int], time_base: Fraction = Fraction(1, 10), width: int = 64,
                   height: int = 48) -> Path:
    """Variable frame rate (lossless FFV1 in Matroska): one frame per entry of ``pts``."""
    return make_video(path, width, height, frames=len(pts), fps=float(1 / time_base), codec="ffv1",
                      pts=pts, time_base=time_base)


def make_gray_video(path: Path, width: int = 40, height: int = 30, frames: int = 3) -> Path:
    """Single-channel (``gray``) FFV1 video; use a ``.mkv`` path."""
    return make_video(path, width, height, frames=frames, codec="ffv1", pix_fmt="gray")


def make_alpha_video(path: Path, width: int = 40, height: int = 30, frames: int = 3) -> Path:
    """RGBA PNG-codec video (with alpha); use a ``.mov`` path (PyAV refuses PNG in Matroska)."""
    return make_video(path, width, height, frames=frames, codec="png", pix_fmt="rgba")


def make_fps_metadata_video(path: Path, fps: float, frames: int = 4) -> Path:
    """A lossless video whose header claims ``fps`` (e.g. 1000, or absurd values); ``.mkv``/``.mp4``."""
    if Path(path).suffix == ".mkv":  # Matroska stores timestamps in ms: it cannot claim more than 1000 fps
        return make_video(path, frames=frames, fps=fps, codec="ffv1")
    # gop=1 (no B-frames): libx264 with B-frames at thousands of fps writes broken MP4 timestamps.
    return make_video(path, frames=frames, fps=fps, codec="libx264", gop=1)


def make_one_frame(path: Path, width: int = 64, height: int = 48) -> Path:
    return make_video(path, width, height, frames=1)


def make_text_mp4(path: Path) -> Path:
    """A text file with a video name."""
    Path(path).write_text("this is not a video\n" * 10)
    return Path(path)


# --- realistic sources: pans over scikit-image's sample photographs -------------------------------

PHOTOS = ("astronaut", "coffee", "chelsea", "rocket")


def photo(name: str, scale: float = 2.0) -> np.ndarray:
    """A scikit-image sample photograph (RGB uint8), enlarged so that a long pan fits inside it."""
    import cv2
    import skimage.data

    image = getattr(skimage.data, name)()
    if image.ndim == 2:
        image = np.stack([image] * 3, axis=-1)
    image = np.ascontiguousarray(image[..., :3])
    return cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_CUBIC)


def pan_frames(image: np.ndarray, offsets: "list[float]", width: int = 160, height: int = 96,
               y: int = 40) -> list[np.ndarray]:
    """Views of ``width``×``height`` over ``image`` whose left edge is at each of ``offsets`` (pixels,
    sub-pixel shifts interpolated), i.e. a horizontal camera pan; the content moves left as x grows."""
    import cv2

    frames = []
    for x in offsets:
        shift = np.float32([[1, 0, -x], [0, 1, -y]])
        frames.append(cv2.warpAffine(image, shift, (width, height), flags=cv2.INTER_LINEAR,
                                     borderMode=cv2.BORDER_REFLECT))
    return frames


def steady_offsets(count: int, speed: float, start: float = 0.0) -> list[float]:
    return [start + speed * i for i in range(count)]


def whip_offsets(count: int, speed: float, burst: "range", burst_speed: float) -> list[float]:
    """A steady pan whose steps inside ``burst`` (pair indices) are ``burst_speed`` pixels instead."""
    offsets, x = [], 0.0
    for i in range(count):
        offsets.append(x)
        x += burst_speed if i in burst else speed
    return offsets


def cut_frames(first: str, second: str, count: int, cut: int, speed: float = 2.0, **size) -> list[np.ndarray]:
    """A pan over photo ``first``, hard cut at frame ``cut`` to a pan over photo ``second``."""
    offsets = steady_offsets(count, speed)
    return pan_frames(photo(first), offsets[:cut], **size) + pan_frames(photo(second), offsets[cut:], **size)


def fade_frames(first: str, second: str, count: int, fade: "range", speed: float = 2.0, **size) -> list[np.ndarray]:
    """Pans over two photos with a cross fade over the frames in ``fade`` (not a cut)."""
    offsets = steady_offsets(count, speed)
    a, b = pan_frames(photo(first), offsets, **size), pan_frames(photo(second), offsets, **size)
    frames = []
    for i in range(count):
        t = 0.0 if i < fade.start else 1.0 if i >= fade.stop else (i - fade.start + 1) / (len(fade) + 1)
        frames.append(np.clip((1 - t) * a[i] + t * b[i] + 0.5, 0, 255).astype(np.uint8))
    return frames


def write_rgb_video(path: Path, frames: "list[np.ndarray]", fps: float = 24.0, *,
                    pts: Optional[list[int]] = None, time_base: Optional[Fraction] = None) -> Path:
    """Encode RGB frames as a high-quality H.264 MP4 (``pts`` in ``time_base``: variable frame rate)."""
    height, width = frames[0].shape[:2]
    with av.open(str(path), "w", format="mp4") as out:
        stream = out.add_stream("libx264", rate=Fraction(fps).limit_denominator(1001))
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.options = {"crf": "12", "preset": "veryfast"}
        if time_base is not None:
            stream.time_base = time_base
            stream.codec_context.time_base = time_base
        _mux(out, stream, frames, pts, time_base, "yuv420p")
    return Path(path)
