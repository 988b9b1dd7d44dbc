"""Publishing a guide video: encode frames under a partial name, or copy a cached render; the
file appears at its final name only when complete (``atomic_files.publishing``)."""
from __future__ import annotations

import contextlib
import errno
import time
from pathlib import Path
from typing import Iterator, Optional

import numpy as np

from ..atomic_files import copy_atomic, sweep_stale_partials
from ..errors import OutputError
from ..memory import Timeline
from ..preprocessors.video.guide_writer import BackgroundGuideWriter
from ..progress import Progress


def write_guide_video(frames: Iterator[np.ndarray], output: Path, width: int, height: int, fps: float, total: int,
                      progress: Progress, timeline: Optional[Timeline] = None) -> float:
    """Encode exactly ``total`` frames to ``output``; returns the seconds spent rendering and encoding
    (from the first frame on). ``frames`` is closed in every case.

    Encoding runs on a worker thread behind a small bounded queue (``BackgroundGuideWriter``), so
    x264 encodes frame *k* while frame *k+1* is being resampled and coloured. With a ``timeline`` the
    rendering (from the second frame on) and the hand-over to the encoder (which waits when the encoder
    is behind) of each frame are marked as phases and memory is sampled a few times a second."""
    written = 0
    encode_started = None
    timeline = timeline if timeline is not None else Timeline()
    source = iter(frames)
    try:
        with BackgroundGuideWriter(output, width, height, fps) as writer:  # publishes atomically itself
            while True:
                # The first frame also opens the flows (extraction has its own phases): not "render".
                with timeline.phase("render") if written else contextlib.nullcontext():
                    frame = next(source, None)
                if frame is None:
                    break
                if encode_started is None:
                    encode_started = time.perf_counter()
                with timeline.phase("encode"):
                    writer.write(frame)
                timeline.sample_every(f"frame {written + 1}/{total}")
                written += 1
                progress.update("encode", written, total, f"writing guide frame {written}/{total}")
            if written != total:
                raise RuntimeError(f"produced {written} guide frames instead of {total}")
    finally:
        close = getattr(frames, "close", None)
        if close is not None:
            close()
    return 0.0 if encode_started is None else time.perf_counter() - encode_started


def publish_cached_guide(cached: Path, output: Path) -> None:
    """Copy a guide rendered earlier to ``output`` atomically (and sweep dead writers' partials of it)."""
    copy_atomic(cached, output)
    sweep_stale_partials(output.parent, output.name)


def output_error(output: Path, exc: OSError) -> OutputError:
    """The one-line error for a guide that could not be written, with advice that fits the cause."""
    reason = exc.strerror or str(exc)
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        advice = "free disk space or choose another output folder"
    elif exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        advice = "choose an output folder you can write to"
    elif exc.errno in (errno.ENOTDIR, errno.EISDIR, errno.ENOENT):
        advice = "choose an output path whose folder exists and is a folder"
    else:
        advice = "check the output folder, or choose another one"
    return OutputError(f"Cannot write the guide video {output}: {reason}; {advice}.")
