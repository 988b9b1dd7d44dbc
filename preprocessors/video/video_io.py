"""Streaming video input with PyAV: probe, decode one frame at a time (guide videos are written by
``guide_writer``).

Nothing here holds more than one decoded frame. Frames are RGB ``uint8`` (H, W, 3) in display
orientation (rotation metadata applied).
"""
from __future__ import annotations

import logging
import math
import os
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Optional, Sequence, Union

import av
import numpy as np

from ...errors import InvalidVideoError
from ...paths import is_url
from ..cache.cache_hashing import FileStamp
from ..timeline.source_time import evenly_spaced

logger = logging.getLogger(__name__)

PathLike = Union[str, "os.PathLike[str]"]
MAX_PIXELS = 7680 * 4320
SOURCE_MIN_SIDE = 2
SOURCE_MAX_FPS = 1000.0
FALLBACK_FPS = 24.0
_IMAGE_CODECS = {"png", "mjpeg", "bmp", "gif", "webp", "tiff", "jpeg2000", "apng", "jpegls", "ppm", "pgm",
                 "pam", "pbm", "qoi", "targa", "sgi", "dpx", "exr", "hdr", "pgmyuv", "xbm", "xwd", "pcx"}
_ANIMATED_CODECS = {"gif", "apng", "webp"}
_IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".exr", ".tga", ".ppm",
                   ".pgm", ".qoi", ".jp2", ".avif", ".heic"}


def _image_error(file: Path) -> InvalidVideoError:
    return InvalidVideoError(f"{file.name} is an image, not a video: pass a video file "
                             "(or make a video from your images first).")


@dataclass(frozen=True)
class VideoInfo:
    """What a structure video holds; ``width``/``height`` are the display size (rotation applied)."""

    path: str
    width: int
    height: int
    fps: float
    frame_count: int
    duration: float
    rotation: int
    codec: str
    #: Presentation time (seconds from the first frame) of every frame, only for a variable frame rate
    #: source; ``None`` when frames are evenly spaced (then frame ``i`` is at ``i / fps``).
    timestamps: Optional[tuple[float, ...]] = None
    #: Frames the container announces (its header's count, else its stream duration × fps); 0 if unknown.
    announced_frames: int = 0
    #: Why reading stopped early (an FFmpeg error while demuxing), or "".
    read_error: str = ""
    #: The user accepts a stream that ends before it announced (``--allow-short``): decoding errors are
    #: then logged and the frames decoded so far used; otherwise they are an :class:`InvalidVideoError`.
    allow_short: bool = False

    @property
    def size(self) -> tuple[int, int]:
        return self.width, self.height


def _check_path(path: PathLike) -> Path:
    text = os.fspath(path)
    if is_url(text):
        raise InvalidVideoError(f"{text} is a URL: download the video first and pass the local file.")
    file = Path(text).expanduser()
    if not file.exists():
        raise InvalidVideoError(f"{file} does not exist: check the path of the structure video.")
    if file.is_dir():
        raise InvalidVideoError(f"{file} is a folder: pass a video file (e.g. .mp4, .mov, .webm).")
    if file.stat().st_size == 0:
        raise InvalidVideoError(f"{file.name} is empty (0 bytes): pass a complete video file.")
    return file


def _open(file: Path) -> "av.container.InputContainer":
    try:
        return av.open(str(file), mode="r", metadata_errors="ignore")
    except (av.error.FFmpegError, UnicodeDecodeError, ValueError, OSError) as error:
        raise InvalidVideoError(f"{file.name} is not a readable video, or it is incomplete: pass a complete MP4, "
                                "MOV, MKV or WebM video.") from None


def _rotation_from(value: object) -> int:
    """Clockwise rotation to apply for display, normalised to 0/90/180/270."""
    try:
        degrees = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return 0
    if not math.isfinite(degrees):
        return 0
    return int(round(degrees / 90.0)) * 90 % 360


def _stream_rotation(stream: "av.video.stream.VideoStream", first_frame: Optional["av.VideoFrame"]) -> int:
    rotate = stream.metadata.get("rotate") if stream.metadata else None
    if rotate is not None:
        return _rotation_from(rotate)
    # PyAV reports the display matrix as counter-clockwise degrees; the display needs the inverse.
    frame_rotation = getattr(first_frame, "rotation", None) if first_frame is not None else None
    if frame_rotation:
        return _rotation_from(-float(frame_rotation))
    return 0


def _rate(value: object) -> float:
    try:
        rate = float(value) if value is not None else 0.0  # type: ignore[arg-type]
    except (TypeError, ValueError, ZeroDivisionError):
        return 0.0
    return rate if math.isfinite(rate) and 0.0 < rate <= SOURCE_MAX_FPS else 0.0


#: Files probed in this process, newest last: the app, the API and farm workers make many guides
#: (segments, re-targets) from one source, and probing opens it twice and decodes a frame.
_PROBED: "OrderedDict[tuple[str, FileStamp], VideoInfo]" = OrderedDict()
_PROBED_KEEP = 32
_PROBED_LOCK = threading.Lock()


def probe_video(path: PathLike) -> VideoInfo:
    """Read size, fps, frame count, duration, rotation and codec; raises :class:`InvalidVideoError`.

    The frame count comes from counting the stream's packets (fast, no decoding), not the container's
    header, which is often missing or wrong. One frame is decoded to prove the stream is readable.
    A file probed before in this process, unchanged since (the cache's :class:`FileStamp` of the file
    a link points to: size, inode, modification and change times), is answered from memory; an
    edited or replaced file is probed again, and one changed too recently to tell is not remembered.
    """
    file = _check_path(path)
    resolved = file.resolve()
    stamp = FileStamp.of(resolved)
    identity = (str(resolved), stamp)
    with _PROBED_LOCK:
        known = _PROBED.get(identity)
        if known is not None:
            _PROBED.move_to_end(identity)
            return known
    info = _probe_file(file)
    if not stamp.racy(time.time_ns()):
        with _PROBED_LOCK:
            _PROBED[identity] = info
            while len(_PROBED) > _PROBED_KEEP:
                _PROBED.popitem(last=False)
    return info


def _probe_file(file: Path) -> VideoInfo:
    """:func:`probe_video` of a checked path, read from the file."""
    container = _open(file)
    try:
        if not container.streams.video:
            kind = "an audio file" if container.streams.audio else "not a video"
            raise InvalidVideoError(f"{file.name} has no video stream ({kind}): pass a video file.")
        stream = container.streams.video[0]
        codec = stream.codec_context.name if stream.codec_context is not None else "unknown"
        width, height = int(stream.codec_context.width or 0), int(stream.codec_context.height or 0)
        format_name = container.format.name if container.format is not None else ""
        # A still image opens as a one-frame "video" (png_pipe, jpeg_pipe, image2, ...); animated
        # GIF/APNG/WebP are judged after counting their frames below.
        is_image = codec in _IMAGE_CODECS and (format_name == "image2" or format_name.endswith("_pipe")
                                               or file.suffix.lower() in _IMAGE_SUFFIXES)
        if is_image and codec not in _ANIMATED_CODECS:
            raise _image_error(file)
        _check_size(file, width, height)
        first = None
        try:
            for frame in container.decode(stream):
                first = frame
                break
        except (av.error.FFmpegError, ValueError) as error:
            raise InvalidVideoError(f"{file.name}: its first video frame cannot be decoded; "
                                    "the file is damaged or incomplete: "
                                    "re-encode or re-download it (e.g. as H.264 MP4).") from None
        if first is None:
            raise InvalidVideoError(f"{file.name} holds no decodable video frame: pass a complete video file.")
        width, height = int(first.width), int(first.height)
        _check_size(file, width, height)
        rotation = _stream_rotation(stream, first)
        time_base = stream.time_base
        header_fps = _rate(stream.average_rate) or _rate(stream.guessed_rate) or _rate(stream.base_rate)
        header_frames = int(stream.frames or 0)
        stream_seconds = float(stream.duration * time_base) if stream.duration and time_base else 0.0
        if not stream_seconds and container.duration and len(container.streams) == 1:  # Matroska: segment duration
            stream_seconds = container.duration / 1_000_000
        del first
    finally:
        container.close()
    count, times, read_error = _count_packets(file)
    first_pts, last_pts = (times[0], times[-1]) if times else (None, None)
    if count == 0:
        raise InvalidVideoError(f"{file.name} holds no video frames: pass a complete video file.")
    if is_image and count <= 1:
        raise _image_error(file)
    fps = header_fps
    span = float((last_pts - first_pts) * time_base) if time_base and last_pts is not None else 0.0
    if not fps:
        fps = _rate((count - 1) / span) if span > 0 and count > 1 else 0.0
        if not fps:
            fps = FALLBACK_FPS
            logger.warning("%s has no usable frame rate; assuming %g fps.", file.name, FALLBACK_FPS)
    duration = count / fps
    if rotation in (90, 270):
        width, height = height, width
    seconds = [float((pts - times[0]) * time_base) for pts in times] if time_base and len(times) == count else []
    announced = header_frames or _frames_in(stream_seconds, seconds, count, fps)
    timestamps = tuple(seconds) if seconds and not evenly_spaced(seconds) else None
    return VideoInfo(str(file.resolve()), width, height, float(fps), count, duration, rotation, codec,
                     timestamps, announced, read_error)


def _frames_in(announced_seconds: float, seconds: Sequence[float], count: int, fps: float) -> int:
    """Frames a stream of ``announced_seconds`` holds: the ``count`` read plus the time missing after the
    last one read, in typical frame durations (so a variable frame rate does not count as missing frames)."""
    if announced_seconds <= 0:
        return 0
    steps = np.diff(np.asarray(seconds, dtype=np.float64))
    typical = float(np.median(steps[steps > 0])) if (steps > 0).any() else 1.0 / fps
    missing = announced_seconds - ((seconds[-1] if seconds else (count - 1) / fps) + typical)
    return count + max(0, int(round(missing / typical)))


def _check_size(file: Path, width: int, height: int) -> None:
    if width and height and (width < SOURCE_MIN_SIDE or height < SOURCE_MIN_SIDE):
        raise InvalidVideoError(f"{file.name} is {width}x{height}: frames must be at least {SOURCE_MIN_SIDE}x{SOURCE_MIN_SIDE} pixels.")
    if width * height > MAX_PIXELS:
        raise InvalidVideoError(f"{file.name} is {width}x{height}, larger than 8K (7680x4320): "
                                "re-encode it at a smaller size.")


def _count_packets(file: Path) -> tuple[int, list[int], str]:
    """Video packets with data (one per frame for video codecs), their sorted pts (presentation
    order; fewer than the count when some have none), and the error that stopped reading, or ""."""
    container = _open(file)
    count, times, error_text = 0, [], ""
    try:
        stream = container.streams.video[0]
        try:
            for packet in container.demux(stream):
                if packet.size == 0:
                    continue
                count += 1
                if packet.pts is not None:
                    times.append(int(packet.pts))
        except (av.error.FFmpegError, ValueError) as error:  # a truncated file: count what is there
            error_text = error.__class__.__name__
            logger.warning("%s is damaged after %d frames (%s).", file.name, count, error_text)
    finally:
        container.close()
    return count, sorted(times), error_text


def _to_rgb(frame: "av.VideoFrame", rotation: int) -> np.ndarray:
    rgb = frame.to_ndarray(format="rgb24")
    if rotation:
        rgb = np.rot90(rgb, k=-(rotation // 90))  # clockwise
    return np.ascontiguousarray(rgb)


def _decode(file: Path, rotation: int, allow_short: bool = False,
            expected: int = 0) -> Iterator[np.ndarray]:
    """Decoded frames; an FFmpeg error ends the stream (``allow_short``) or raises :class:`InvalidVideoError`."""
    container = _open(file)
    decoded = 0
    try:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        try:
            for frame in container.decode(stream):
                decoded += 1
                yield _to_rgb(frame, rotation)
        except (av.error.FFmpegError, ValueError) as error:
            if not allow_short:
                raise InvalidVideoError(
                    f"{file.name} is damaged: decoding stopped on an error ({error.__class__.__name__}) after "
                    f"{decoded} of {expected or 'its'} frames: re-encode it, or allow a short source "
                    "(--allow-short, allow_short=True) to use the frames before the damage.") from None
            logger.warning("%s: decoding stopped early (%s).", file.name, error.__class__.__name__)
    finally:
        container.close()


def iter_frames(path: PathLike, info: Optional[VideoInfo] = None) -> Iterator[np.ndarray]:
    """Every decodable frame, one at a time, as RGB uint8 in display orientation."""
    info = info or probe_video(path)
    yield from _decode(Path(info.path), info.rotation, info.allow_short, info.frame_count)


def iter_planned_frames(path: PathLike, indices: Sequence[int], info: VideoInfo) -> Iterator[np.ndarray]:
    """One frame per entry of ``indices`` (repeats yield the same array; a backwards jump restarts decoding).

    If the stream ends more than one frame before an index (a damaged file), that is an
    :class:`InvalidVideoError` naming both numbers unless ``info.allow_short``; otherwise (and for a
    stream one frame short of its packet count) the last decoded frame is repeated and a warning
    is logged once. Frames are shared between repeats: treat them as read-only.
    """
    file = Path(info.path if info is not None else os.fspath(path))
    decoder: Optional[Iterator[np.ndarray]] = None
    position = -1
    current: Optional[np.ndarray] = None
    warned = False
    try:
        for index in indices:
            if index < 0:
                raise ValueError(f"frame index {index} is negative")
            if decoder is None or index < position:
                if decoder is not None:
                    decoder.close()
                decoder, position, current = _decode(file, info.rotation, info.allow_short, info.frame_count), -1, None
            while position < index:
                frame = next(decoder, None)
                if frame is None:
                    break
                current, position = frame, position + 1
            if current is None:
                raise InvalidVideoError(f"{file.name} holds no decodable video frame: pass a complete video file.")
            if position < min(index, info.frame_count - 1) - 1 and not info.allow_short:
                raise InvalidVideoError(
                    f"{file.name} is damaged or incomplete: only {position + 1} of its {info.frame_count} frames "
                    "decode: re-encode it, or allow a short source (--allow-short, allow_short=True).")
            if position < index and not warned:
                logger.warning("%s ends at frame %d (asked for %d); repeating its last frame.", file.name,
                               position, index)
                warned = True
            yield current
    finally:
        if decoder is not None:
            decoder.close()
