"""Publishing a guide video: encode frames under a partial name, or copy a cached render; the
file appears at its final name only when complete (``atomic_files.publishing``)."""
from __future__ import annotations

import time
from pathlib import Path
from typing import Iterator

import numpy as np

from ..atomic_files import copy_atomic, publishing
from ..preprocessors.video_io import GuideVideoWriter
from ..progress import Progress


def write_guide_video(frames: Iterator[np.ndarray], output: Path, width: int, height: int, fps: float, total: int,
                      progress: Progress) -> float:
    """Encode exactly ``total`` frames to ``output``; returns the seconds spent rendering and encoding
    (from the first frame on). ``frames`` is closed in every case."""
    written = 0
    encode_started = None
    try:
        with publishing(output) as partial:
            with GuideVideoWriter(partial, width, height, fps) as writer:
                for frame in frames:
                    if encode_started is None:
                        encode_started = time.perf_counter()
                    writer.write(frame)
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
