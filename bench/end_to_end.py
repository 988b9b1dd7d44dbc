"""End to end vs the flow alone: a DIS flow guide through ``build_guide`` vs a bare decode + DIS loop.

Issue 16's target: making a guide (decode, flow, clip-wide scale, colouring, H.264) costs at most
1.35x a bare loop that only decodes the same frames and runs DIS on them. Measured side by side in
one run on the same source (161 frames at 832x480, rendered at its own size and frame rate, so the
guide needs exactly the bare loop's 160 flows), repeated and interleaved (A B C A B C ...), medians::

    python bench/end_to_end.py [--frames 161] [--repeat 5]

Rows:
* ``bare``: PyAV decode + DisFlowBackend (batches of 8, its threads), flows discarded;
* ``build_guide``: the public API as the pipeline runs it (no cache): decoding on a thread beside
  DIS, flows stored as float16 with positioned writes, the scale's histogram pass, colouring by a
  table remap, YUV conversion by OpenCV, x264 on a worker thread;
* ``decode inline``: the same, with decoding back in the main loop (what the read-ahead thread buys).
Wall and CPU time (all threads of the process) are printed: on a busy machine the CPU ratio is the
steadier figure. Then each step's cost per frame, old way vs new way, on the same frames.
"""
from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path
from typing import Callable, Iterator

import av
import numpy as np

from wan2gp_structure_video import GuideRequest, RunContext, build_guide
from wan2gp_structure_video.pipeline import extraction as flow_extraction
from wan2gp_structure_video.preprocessors.annotators.flow_dis import DisFlowBackend
from wan2gp_structure_video.preprocessors.render.flow_viz import MagnitudeHistogram, flow_to_rgb, flow_to_rgb_exact
from wan2gp_structure_video.preprocessors.cache.half_float import load_float32, store_half
from wan2gp_structure_video.preprocessors.video.sample_video import write_sample_video
from wan2gp_structure_video.preprocessors.video.video_io import iter_frames
from wan2gp_structure_video.preprocessors.video.yuv420 import rgb_to_i420

WIDTH, HEIGHT, FPS, BATCH = 832, 480, 24.0, 8
_FRAMES = 161


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


def decode_inline(source: Path, work: Path) -> None:
    real = flow_extraction.prefetched
    flow_extraction.prefetched = lambda items, *args: items  # bench only: the read-ahead thread switched off
    try:
        through_build_guide(source, work)
    finally:
        flow_extraction.prefetched = real


def _time(run: Callable[[Path, Path], None], source: Path) -> tuple[float, float]:
    """(wall seconds, CPU seconds of every thread of this process)."""
    with tempfile.TemporaryDirectory() as folder:
        started, cpu = time.perf_counter(), time.process_time()
        run(source, Path(folder))
        return time.perf_counter() - started, time.process_time() - cpu


def _per_item(function: Callable[[object], object], items: list) -> float:
    """Median milliseconds of ``function`` over ``items`` (after one warm-up call)."""
    function(items[0])
    times = []
    for item in items:
        started = time.perf_counter()
        function(item)
        times.append(time.perf_counter() - started)
    return statistics.median(times) * 1e3


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    error = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float(10 * np.log10(255.0 ** 2 / max(error, 1e-12)))


def _encode(path: Path, frames: list[np.ndarray], scaler: bool) -> float:
    """x264 at the guide's settings, fed RGB converted by the encoder's scaler (the old way) or
    YUV from :func:`rgb_to_i420` (the way ``GuideVideoWriter`` does now); milliseconds per frame."""
    started = time.perf_counter()
    container = av.open(str(path), mode="w", format="mp4")
    stream = container.add_stream("libx264", rate=int(FPS))
    stream.width, stream.height, stream.pix_fmt = WIDTH, HEIGHT, "yuv420p"
    stream.options = {"crf": "20", "preset": "ultrafast"}
    for index, frame in enumerate(frames):
        video_frame = (av.VideoFrame.from_ndarray(frame, format="rgb24") if scaler
                       else av.VideoFrame.from_ndarray(rgb_to_i420(frame), format="yuv420p"))
        video_frame.pts = index
        for packet in stream.encode(video_frame):
            container.mux(packet)
    for packet in stream.encode():
        container.mux(packet)
    container.close()
    return (time.perf_counter() - started) / len(frames) * 1e3


def _steps(folder: Path, source: Path) -> None:
    """Each step of the render side, old way vs new way, per 832x480 frame."""
    frames = list(iter_frames(source))[:17]
    flows = list(DisFlowBackend().compute(np.stack(frames[:-1]), np.stack(frames[1:])))
    guide = [flow_to_rgb(flow, 4.0) for flow in flows]
    half = np.empty(flows[0].shape, np.float16)
    rows = [flow.astype(np.float16) for flow in flows]
    levels = max(int(np.abs(flow_to_rgb(f, 4.0).astype(int) - flow_to_rgb_exact(f, 4.0).astype(int)).max())
                 for f in flows)
    histogram = MagnitudeHistogram()
    print("per frame (ms), old -> new:")
    print(f"  colouring        exact wheel {_per_item(lambda f: flow_to_rgb_exact(f, 4.0), flows):6.2f} -> "
          f"table remap {_per_item(lambda f: flow_to_rgb(f, 4.0), flows):5.2f}   (max difference {levels} levels)")
    print(f"  float16 store    numpy {_per_item(lambda f: np.copyto(half, f, casting='unsafe'), flows):6.2f} -> "
          f"OpenCV {_per_item(lambda f: store_half(half, f), flows):5.2f};  load: numpy "
          f"{_per_item(lambda r: r.astype(np.float32), rows):5.2f} -> OpenCV {_per_item(load_float32, rows):5.2f}")
    print(f"  histogram add    {_per_item(histogram.add, flows):6.2f}")
    scaler = _per_item(lambda g: av.VideoFrame.from_ndarray(g, format="rgb24").reformat(format="yuv420p"), guide)
    print(f"  RGB -> YUV 4:2:0 encoder's scaler {scaler:6.2f} -> OpenCV {_per_item(rgb_to_i420, guide):5.2f}")
    clip = guide * 4
    encode_ms: dict[str, list[float]] = {"scaler": [], "now": []}
    for _ in range(3):
        for name in encode_ms:
            encode_ms[name].append(_encode(folder / f"{name}.mp4", clip, scaler=name == "scaler"))
    scaler_ms, now_ms = (statistics.median(encode_ms[name]) for name in ("scaler", "now"))
    quality = {}
    for name in ("scaler", "now"):
        decoded = [f.to_ndarray(format="rgb24") for f in av.open(str(folder / f"{name}.mp4")).decode(video=0)]
        quality[name] = (statistics.mean(_psnr(a, b) for a, b in zip(clip, decoded)),
                         (folder / f"{name}.mp4").stat().st_size / len(clip) / 1024)
    print(f"  encode (x264 crf 20 ultrafast) via the scaler {scaler_ms:5.2f} ({quality['scaler'][0]:.2f} dB, "
          f"{quality['scaler'][1]:.1f} KiB/frame) -> via OpenCV {now_ms:5.2f} ({quality['now'][0]:.2f} dB, "
          f"{quality['now'][1]:.1f} KiB/frame)")


def main() -> None:
    global _FRAMES
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=161)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    _FRAMES = args.frames
    runs = {"bare": bare, "build_guide": through_build_guide, "decode inline": decode_inline}
    times: dict[str, list[float]] = {name: [] for name in runs}
    cpu: dict[str, list[float]] = {name: [] for name in runs}
    with tempfile.TemporaryDirectory() as folder:
        source = write_sample_video(Path(folder) / "source.mp4", WIDTH, HEIGHT, args.frames, FPS)
        bare(source, Path(folder))  # warm-up: file cache, OpenCV/x264 initialisation
        through_build_guide(source, Path(folder))
        for _ in range(args.repeat):
            for name, run in runs.items():
                wall, seconds = _time(run, source)
                times[name].append(wall)
                cpu[name].append(seconds)
        median = {name: statistics.median(values) for name, values in times.items()}
        median_cpu = {name: statistics.median(values) for name, values in cpu.items()}
        pairs = args.frames - 1
        print(f"{args.frames} frames {WIDTH}x{HEIGHT}, DIS, {args.repeat} interleaved runs each (medians)")
        for name in runs:
            print(f"  {name:13} {median[name]:6.2f} s  {pairs / median[name]:5.1f} frames/s  "
                  f"{median[name] / median['bare']:5.2f} x bare   CPU {median_cpu[name]:5.1f} s "
                  f"{median_cpu[name] / median_cpu['bare']:5.2f} x bare   "
                  f"(wall runs: {', '.join(f'{t:.2f}' for t in times[name])})")
        _steps(Path(folder), source)
        ratio = median["build_guide"] / median["bare"]
        print(f"target: build_guide <= 1.35 x bare (wall): {ratio:.2f} -> {'met' if ratio <= 1.35 else 'NOT met'}")


if __name__ == "__main__":
    main()
