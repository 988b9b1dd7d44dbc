"""End to end vs the flow alone: a DIS flow guide through ``build_guide`` vs a bare decode + DIS loop.

Issue 16's target: making a guide (decode, flow, clip-wide scale, colouring, H.264) costs at most
1.35x a bare loop that only decodes the same frames and runs DIS on them. Measured side by side in
one run on the same source (161 frames at 832x480, rendered at its own size and frame rate, so the
guide needs exactly the bare loop's 160 flows), repeated and interleaved (A B A B ...), medians::

    python bench/end_to_end.py [--frames 161] [--repeat 3]

Rows:
* ``bare``: PyAV decode + DisFlowBackend (batches of 8, its threads), flows discarded;
* ``build_guide``: the public API as the pipeline runs it today (no cache);
* ``overlapped``: what the pipeline gets once it renders with the table lookup and encodes on
  a worker thread (:class:`BackgroundGuideWriter`): decoding on a thread beside DIS, the scale's
  histogram filled during extraction, then colour + encode overlapped. Built from this
  project's public pieces, so it is the reference for wiring the pipeline.
Wall and CPU time (all threads of the process) are printed: on a busy machine the CPU ratio is the
steadier figure. Also: colouring alone (exact per-pixel wheel vs table) and encoding alone (old vs new x264 settings).
"""
from __future__ import annotations

import argparse
import queue
import statistics
import tempfile
import threading
import time
from pathlib import Path
from typing import Callable, Iterator

import numpy as np

from wan2gp_structure_video import GuideRequest, RunContext, build_guide
from wan2gp_structure_video.preprocessors.flow_dis import DisFlowBackend
from wan2gp_structure_video.preprocessors.flow_viz import (MagnitudeHistogram, clip_scale, flow_to_rgb,
                                                           flow_to_rgb_exact)
from wan2gp_structure_video.preprocessors.sample_video import write_sample_video
from wan2gp_structure_video.preprocessors.video_io import BackgroundGuideWriter, GuideVideoWriter, iter_frames

WIDTH, HEIGHT, FPS, BATCH = 832, 480, 24.0, 8


def _batches(frames: Iterator[np.ndarray]) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Consecutive pairs in batches of BATCH: (firsts, seconds)."""
    previous = next(frames)
    firsts, seconds = [], []
    for frame in frames:
        firsts.append(previous)
        seconds.append(frame)
        previous = frame
        if len(firsts) == BATCH:
            yield np.stack(firsts), np.stack(seconds)
            firsts, seconds = [], []
    if firsts:
        yield np.stack(firsts), np.stack(seconds)


def bare(source: Path, work: Path) -> None:
    dis = DisFlowBackend()
    for firsts, seconds in _batches(iter_frames(source)):
        dis.compute(firsts, seconds)


def through_build_guide(source: Path, work: Path) -> None:
    build_guide(GuideRequest(source, work / "guide.mp4", resolution=(WIDTH, HEIGHT), frames=_FRAMES, fps=FPS,
                             backend="dis"), RunContext(use_cache=False))


def _threaded(iterator: Iterator, depth: int = 4) -> Iterator:
    """Run ``iterator`` on a thread, handing its items over through a bounded queue."""
    items: "queue.Queue" = queue.Queue(maxsize=depth)
    done = object()

    def pump() -> None:
        for item in iterator:
            items.put(item)
        items.put(done)

    threading.Thread(target=pump, daemon=True).start()
    while (item := items.get()) is not done:
        yield item


def overlapped(source: Path, work: Path) -> None:
    dis = DisFlowBackend()
    histogram = MagnitudeHistogram()
    flows = np.lib.format.open_memmap(work / "flows.npy", mode="w+", dtype=np.float16,
                                      shape=(_FRAMES - 1, HEIGHT, WIDTH, 2))
    row = 0
    for firsts, seconds in _threaded(_batches(iter_frames(source))):
        batch = dis.compute(firsts, seconds)
        for flow in batch:
            histogram.add(flow)  # the clip-wide scale is known when extraction ends
        flows[row:row + len(batch)] = batch
        row += len(batch)
    scale = clip_scale(histogram)
    with BackgroundGuideWriter(work / "guide.mp4", WIDTH, HEIGHT, FPS) as writer:
        writer.write(np.full((HEIGHT, WIDTH, 3), 255, np.uint8))  # frame 0: no motion before it
        for flow in flows:
            writer.write(flow_to_rgb(flow, scale))


def _time(run: Callable[[Path, Path], None], source: Path) -> tuple[float, float]:
    """(wall seconds, CPU seconds of every thread of this process)."""
    with tempfile.TemporaryDirectory() as folder:
        started, cpu = time.perf_counter(), time.process_time()
        run(source, Path(folder))
        return time.perf_counter() - started, time.process_time() - cpu


def _per_frame(function: Callable[[], object], count: int) -> float:
    started = time.perf_counter()
    for _ in range(count):
        function()
    return (time.perf_counter() - started) / count


def main() -> None:
    global _FRAMES
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=161)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    _FRAMES = args.frames
    runs = {"bare": bare, "build_guide": through_build_guide, "overlapped": overlapped}
    times: dict[str, list[float]] = {name: [] for name in runs}
    cpu: dict[str, list[float]] = {name: [] for name in runs}
    with tempfile.TemporaryDirectory() as folder:
        source = write_sample_video(Path(folder) / "source.mp4", WIDTH, HEIGHT, args.frames, FPS)
        for name, run in runs.items():  # warm-up: file cache, OpenCV/x264 initialisation, the colour table
            run(source, Path(folder)) if name == "bare" else None
        flow_to_rgb(np.zeros((2, 2, 2), np.float32), 1.0)
        for _ in range(args.repeat):
            for name, run in runs.items():
                wall, seconds = _time(run, source)
                times[name].append(wall)
                cpu[name].append(seconds)
        frames = list(iter_frames(source))[:17]
        flows = DisFlowBackend().compute(np.stack(frames[:-1]), np.stack(frames[1:]))
        guide = [flow_to_rgb(flow, 4.0) for flow in flows]
        exact = statistics.median(_per_frame(lambda: flow_to_rgb_exact(f, 4.0), 1) for f in flows)
        table = statistics.median(_per_frame(lambda: flow_to_rgb(f, 4.0), 1) for f in flows)
        levels = max(int(np.abs(flow_to_rgb(f, 4.0).astype(int) - flow_to_rgb_exact(f, 4.0).astype(int)).max())
                     for f in flows)
        encode = {}
        for label, crf, preset in (("before (crf 17 veryfast)", 17, "veryfast"), ("now", None, None)):
            options = {} if crf is None else {"crf": crf, "preset": preset}
            started = time.perf_counter()
            with GuideVideoWriter(Path(folder) / "e.mp4", WIDTH, HEIGHT, FPS, **options) as writer:
                for frame in guide * 4:
                    writer.write(frame)
            encode[label] = (time.perf_counter() - started) / (len(guide) * 4)
    median = {name: statistics.median(values) for name, values in times.items()}
    median_cpu = {name: statistics.median(values) for name, values in cpu.items()}
    pairs = args.frames - 1
    print(f"{args.frames} frames {WIDTH}x{HEIGHT}, DIS, {args.repeat} interleaved runs each (medians)")
    for name in runs:
        print(f"  {name:12} {median[name]:7.2f} s  {pairs / median[name]:6.1f} frames/s  "
              f"{median[name] / median['bare']:5.2f} x bare   CPU {median_cpu[name]:6.1f} s "
              f"{median_cpu[name] / median_cpu['bare']:5.2f} x bare   (wall runs: {', '.join(f'{t:.2f}' for t in times[name])})")
    print(f"  colouring per frame: exact wheel {exact * 1e3:.1f} ms, table lookup {table * 1e3:.1f} ms "
          f"({exact / table:.1f}x faster, max difference {levels} levels)")
    for label, seconds in encode.items():
        print(f"  encoding per frame, {label}: {seconds * 1e3:.1f} ms")
    print(f"target: build_guide <= 1.35 x bare (wall) -> today {median['build_guide'] / median['bare']:.2f}, "
          f"overlapped {median['overlapped'] / median['bare']:.2f}; on a shared machine the CPU ratios are the "
          "steadier figure")


_FRAMES = 161

if __name__ == "__main__":
    main()
