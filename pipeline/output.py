"""Publishing a guide video: encode frames under a partial name, or copy a cached render; the
file appears at its final name only when complete (``atomic_files.publishing``)."""
from __future__ import annotations

import contextlib
import time
from pathlib import Path
from typing import Iterator, Optional

import numpy as np

from ..atomic_files import copy_atomic, publishing
from ..memory import Timeline
from ..preprocessors.video_io import GuideVideoWriter
from ..progress import Progress


def write_guide_video(frames: Iterator[np.ndarray], output: Path, width: int, height: int, fps: float, total: int,
                      progress: Progress, timeline: Optional[Timeline] = None) -> float:
    """Encode exactly ``total`` frames to ``output``; returns the seconds spent rendering and encoding
    (from the first frame on). ``frames`` is closed in every case. With a ``timeline`` the rendering
    (from the second frame on) and encoding of each frame are marked as phases and memory is sampled a few times a second."""
    written = 0
    encode_started = None
    timeline = timeline if timeline is not None else Timeline()
    source = iter(frames)
    try:
        with publishing(output) as partial:
            with GuideVideoWriter(partial, width, height, fps) as writer:
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
    """Copy a guide rendered earlier to ``output`` atomically."""
    copy_atomic(cached, output)
