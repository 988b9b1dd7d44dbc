"""H.264 guide videos with PyAV: encode frames (optionally on a background thread) into a file that
appears only when complete (written under a partial name and renamed).

Guide videos are yuv420p, which browsers and Wan2GP play.
"""
from __future__ import annotations

import contextlib
import logging
import math
import queue
import threading
from fractions import Fraction
from pathlib import Path
from typing import Iterable, Optional

import av
import numpy as np

from ...atomic_files import partial_target, publishing, sweep_stale_partials
from .video_io import SOURCE_MAX_FPS, PathLike
from .yuv420 import rgb_to_i420

logger = logging.getLogger(__name__)

#: x264 settings of guide videos (see ``bench/encode_settings.py`` and ``docs/benchmarks.md`` for the measurements).
#: CRF 20 with the ultrafast preset encodes about 2x faster than CRF 17 veryfast (the earlier choice)
#: with a slightly higher PSNR; the colour error left is that of yuv420p chroma subsampling, which
#: any H.264 guide has. Files are about 2x larger (~9 KiB per 832x480 frame), which does not matter.
GUIDE_CRF = 20
GUIDE_PRESET = "ultrafast"


class GuideVideoWriter:
    """H.264 yuv420p encoder; the file appears at ``path`` only when the ``with`` block succeeds."""

    def __init__(self, path: PathLike, width: int, height: int, fps: float, crf: int = GUIDE_CRF,
                 preset: str = GUIDE_PRESET) -> None:
        if width % 2 or height % 2 or width < 2 or height < 2:
            raise ValueError(f"guide size {width}x{height} must be even (H.264 yuv420p)")
        if not (math.isfinite(fps) and 0 < fps <= SOURCE_MAX_FPS):
            raise ValueError(f"fps must be in (0, {SOURCE_MAX_FPS:g}], not {fps!r}")
        self.path = Path(path)
        self.width, self.height, self.fps = int(width), int(height), float(fps)
        self.crf, self.preset = crf, preset
        self.tmp: Optional[Path] = None  # the partial file (atomic_files) while the with block runs
        self._publish: Optional[contextlib.AbstractContextManager[Path]] = None
        self.frames_written = 0
        self._container = None
        self._stream = None

    def __enter__(self) -> "GuideVideoWriter":
        self._publish = publishing(self.path)
        self.tmp = self._publish.__enter__()
        rate = Fraction(self.fps).limit_denominator(1001)
        self._container = av.open(str(self.tmp), mode="w", format="mp4")
        stream = self._container.add_stream("libx264", rate=rate)
        stream.width, stream.height, stream.pix_fmt = self.width, self.height, "yuv420p"
        stream.options = {"crf": str(self.crf), "preset": self.preset}
        self._stream = stream
        return self

    def write(self, frame: np.ndarray) -> None:
        """Encode one RGB uint8 (H, W, 3) frame of the writer's size."""
        if self._stream is None:
            raise RuntimeError("GuideVideoWriter.write() outside its with block")
        if frame.shape != (self.height, self.width, 3) or frame.dtype != np.uint8:
            raise ValueError(f"guide frame must be uint8 ({self.height}, {self.width}, 3), "
                             f"not {frame.dtype} {tuple(frame.shape)}")
        # Converted here (rgb_to_i420) rather than by the encoder's scaler: a third of the cost.
        video_frame = av.VideoFrame.from_ndarray(rgb_to_i420(frame), format="yuv420p")
        video_frame.pts = self.frames_written
        for packet in self._stream.encode(video_frame):
            self._container.mux(packet)
        self.frames_written += 1

    def __exit__(self, kind, value, traceback) -> None:
        container, self._container = self._container, None
        publish, self._publish = self._publish, None
        try:
            if kind is None:
                if self.frames_written == 0:
                    raise ValueError("no frames were written to the guide video")
                for packet in self._stream.encode():
                    container.mux(packet)
            container.close()
            container = None
        except BaseException as exc:
            kind, value, traceback = type(exc), exc, exc.__traceback__
            raise
        finally:
            if container is not None:
                try:
                    container.close()
                except Exception:  # the original error matters more than a failed close
                    pass
            if publish is not None:  # renames the partial file over the output, or removes it on error
                publish.__exit__(kind, value, traceback)
        # partials of killed earlier writers of the same final file (this path may itself be a partial name)
        sweep_stale_partials(self.path.parent, partial_target(self.path.name) or self.path.name)



_STOP = object()


class BackgroundGuideWriter:
    """A :class:`GuideVideoWriter` whose encoding runs on a worker thread behind a bounded queue.

    The producer (flow rendering) hands frames to :meth:`write` and goes on while x264 encodes the
    previous ones (PyAV releases the GIL while converting and encoding). The contract is that of
    :class:`GuideVideoWriter`: use it as a context manager; the file appears at ``path`` only when
    the ``with`` block succeeds, and nothing is left behind otherwise (an error in the block, an
    encoder error, ``KeyboardInterrupt``). An encoder error (disk full, ...) is raised, as the
    original exception, by the next :meth:`write` or by the end of the ``with`` block.

    At most ``queue_frames`` frames wait in the queue, so memory stays bounded; the writer keeps a
    reference to each frame until it is encoded: do not modify a frame after writing it.
    """

    def __init__(self, path: PathLike, width: int, height: int, fps: float, crf: int = GUIDE_CRF,
                 preset: str = GUIDE_PRESET, *, queue_frames: int = 8) -> None:
        if queue_frames < 1:
            raise ValueError(f"queue_frames must be at least 1, not {queue_frames!r}")
        self._writer = GuideVideoWriter(path, width, height, fps, crf=crf, preset=preset)
        self.path, self.width, self.height = self._writer.path, self._writer.width, self._writer.height
        self._queue: "queue.Queue[object]" = queue.Queue(maxsize=queue_frames)
        self._thread: Optional[threading.Thread] = None
        self._error: Optional[BaseException] = None
        self.frames_submitted = 0

    @property
    def frames_written(self) -> int:
        """Frames encoded so far (all submitted frames once the ``with`` block has ended)."""
        return self._writer.frames_written

    def __enter__(self) -> "BackgroundGuideWriter":
        self._writer.__enter__()
        self._thread = threading.Thread(target=self._encode_loop, name="guide-encoder", daemon=True)
        self._thread.start()
        return self

    def _encode_loop(self) -> None:
        while True:
            frame = self._queue.get()
            if frame is _STOP:
                return
            if self._error is None:  # after an error, keep draining so that the producer never blocks
                try:
                    self._writer.write(frame)  # type: ignore[arg-type]
                except BaseException as error:  # handed to the producer thread
                    self._error = error

    def _raise_encoder_error(self) -> None:
        if self._error is not None:
            raise self._error

    def write(self, frame: np.ndarray) -> None:
        """Queue one RGB uint8 (H, W, 3) frame of the writer's size (blocks while the queue is full)."""
        if self._thread is None:
            raise RuntimeError("BackgroundGuideWriter.write() outside its with block")
        if frame.shape != (self.height, self.width, 3) or frame.dtype != np.uint8:
            raise ValueError(f"guide frame must be uint8 ({self.height}, {self.width}, 3), "
                             f"not {frame.dtype} {tuple(frame.shape)}")
        self._raise_encoder_error()
        while True:
            try:
                self._queue.put(frame, timeout=0.1)
                break
            except queue.Full:
                self._raise_encoder_error()
                if not self._thread.is_alive():
                    raise RuntimeError("the guide encoder thread stopped")
        self.frames_submitted += 1

    def _stop_worker(self, discard: bool) -> None:
        if self._thread is None:
            return
        if discard:  # the block failed: what is still queued will not be encoded
            with contextlib.suppress(queue.Empty):
                while True:
                    self._queue.get_nowait()
        self._queue.put(_STOP)
        self._thread.join()
        self._thread = None

    def __exit__(self, kind, value, traceback) -> None:
        try:
            self._stop_worker(discard=kind is not None)
        except BaseException as error:  # e.g. Ctrl-C while joining: still remove the partial file
            self._writer.__exit__(type(error), error, error.__traceback__)
            raise
        if kind is None and self._error is not None:
            error = self._error
            self._writer.__exit__(type(error), error, error.__traceback__)
            raise error
        self._writer.__exit__(kind, value, traceback)


def write_frames(path: PathLike, frames: Iterable[np.ndarray], fps: float, *, crf: int = GUIDE_CRF,
                 preset: str = GUIDE_PRESET) -> int:
    """Encode ``frames`` (their size taken from the first) to an H.264 file; returns the count.

    The defaults are the guide's settings; a *source* video (the sample, test clips) is better
    written at a higher quality (e.g. ``crf=17, preset="veryfast"``), as a camera would."""
    iterator = iter(frames)
    first = next(iterator, None)
    if first is None:
        raise ValueError("no frames to write")
    height, width = first.shape[:2]
    with GuideVideoWriter(path, width, height, fps, crf=crf, preset=preset) as writer:
        writer.write(first)
        for frame in iterator:
            writer.write(frame)
        return writer.frames_written
