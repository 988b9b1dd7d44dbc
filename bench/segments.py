"""Extract once, reuse everywhere: a 3-segment and a 10-segment run on one structure video.

For each run (fresh cache): the flow backend is invoked exactly once (counted), the first segment
pays the extraction, and segments 2..k only read (and resample in time) their slice of the cached
flows and render it —
each must cost ≤ 2 % of the first extraction (the flow slice read from the cache). Then a second
process on the same video must hit the cache. Prints the ratios.

    python bench/segments.py                    # DIS; --backend raft uses RAFT-small random weights
"""
from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
import numpy as np
from pathlib import Path

from wan2gp_structure_video.memory import AnnotatorPool
from wan2gp_structure_video.pipeline import source_rows as source_flows_module
from wan2gp_structure_video.pipeline.build import RunContext, open_flows, prepare
from wan2gp_structure_video.pipeline.multi import build_segment_guides
from wan2gp_structure_video.pipeline.request import GuideRequest
from wan2gp_structure_video.preprocessors.cache.flow_cache import FlowCache
from wan2gp_structure_video.preprocessors.video.sample_video import write_sample_video
from wan2gp_structure_video.preprocessors.timeline.segments import sliding_windows
from wan2gp_structure_video.progress import Progress


def request_for(source: Path, frames: int, backend: str) -> GuideRequest:
    raft = backend == "raft"
    return GuideRequest(source, resolution=(512, 288), frames=frames, fps=16, backend="raft" if raft else "dis",
                        raft_model="small", raft_weights="random" if raft else None, iterations=6)


def one_run(source: Path, segments: int, length: int, backend: str, work: Path) -> None:
    overlap = 8
    frames = length + (segments - 1) * (length - overlap)
    windows = sliding_windows(frames, length, overlap)
    assert len(windows) == segments
    calls = []
    original = source_flows_module._produce

    def counting(*args, **kwargs):
        calls.append(time.perf_counter())
        started = time.perf_counter()
        try:
            return original(*args, **kwargs)
        finally:
            calls[-1] = time.perf_counter() - started

    source_flows_module._produce = counting
    try:
        cache = FlowCache(work / f"cache_{segments}")
        ctx = RunContext(cache=cache, pool=AnnotatorPool(offload="plain"), progress=Progress())
        request = request_for(source, frames, backend)
        run = build_segment_guides(request, windows, work / f"out_{segments}", ctx)
    finally:
        source_flows_module._produce = original
    extraction = calls[0]
    # The flow slice of segments 2..k read from the cache (what the segment adds on top of rendering).
    reads = []
    for window in windows[1:]:
        windowed = request.__class__(**{**request.__dict__, "window_start": window.start,
                                        "window_frames": window.length})
        prepared = prepare(windowed)
        started = time.perf_counter()
        with open_flows(prepared, ctx) as flows:
            lo, hi = prepared.window
            for k in range(lo, hi):
                flows.guide_flow(k).sum(dtype=np.float32)  # resample the slice
        reads.append(time.perf_counter() - started)
    totals = [segment.timings.get("total", 0.0) for segment in run.segments]
    worst_read = max(reads) / extraction
    worst_total = max(totals[1:]) / extraction
    print(f"{segments:2d} segments x {length} frames ({frames} in all), {backend}: backend invoked "
          f"{len(calls)}x, extraction {extraction:.2f}s")
    print(f"   segments 2..{segments}: flow slice from cache <= {worst_read:.2%} of the extraction (target <= 2%); "
          f"whole segment incl. render+encode <= {worst_total:.1%}")


def second_process(source: Path, work: Path, frames: int, backend: str) -> None:
    code = (
        "import sys, time\n"
        "from wan2gp_structure_video.pipeline.build import RunContext, open_flows, prepare\n"
        "from wan2gp_structure_video.preprocessors.cache.flow_cache import FlowCache\n"
        "sys.path.insert(0, %r)\n"
        "from segments import request_for\n"
        "from pathlib import Path\n"
        "p = prepare(request_for(Path(%r), %d, %r))\n"
        "ctx = RunContext(cache=FlowCache(%r)).resolved()\n"
        "t = time.perf_counter()\n"
        "with open_flows(p, ctx):\n"
        "    pass\n"
        "print(p.result.cache_hit, time.perf_counter() - t)\n"
    ) % (str(Path(__file__).parent), str(source), frames, backend, str(work / "cache_3"))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    print(f"second process on the same video: cache hit = {out[0]}, flows ready in {float(out[1]) * 1000:.0f} ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", choices=("dis", "raft"), default="dis")
    parser.add_argument("--length", type=int, default=33, help="frames per segment")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="sv-bench-") as folder:
        work = Path(folder)
        source = write_sample_video(work / "structure.mp4", 640, 360, frames=240, fps=24)
        one_run(source, 3, args.length, args.backend, work)
        one_run(source, 10, args.length, args.backend, work)
        second_process(source, work, args.length + 2 * (args.length - 8), args.backend)


if __name__ == "__main__":
    main()
