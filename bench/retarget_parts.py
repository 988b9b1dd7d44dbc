"""Where a re-target's time goes, stage by stage, in one process (issue 26 item 2).

The scenario of ``bench/whole_process.py``: a DIS guide of 81 frames at 16 fps from a 161-frame
832×480 source at 24 fps fills the cache, then the same source at 49 frames and 24 fps reads the
flows back and composes them anew. Each stage of that re-target is timed on its own, the stages
interleaved over ``--repeat`` rounds (medians), and printed as a share of the whole re-target
(``build_guide``) measured in the same rounds:

* ``rows``: reading every stored row (memory-mapped) and converting it from float16 to float32 (as
  u and v planes where warps run planar, see ``flow_warp``);
* ``compose``: every guide frame's motion (rows warped onto each other, ``interval_flow``), in the
  layout this OpenCV warps fastest, and for comparison as two-channel warps (interleaved);
* ``scale``: the burst-robust histogram of the magnitudes (``flow_histogram``), on the sampled
  pixels the build uses and, for comparison, on every pixel;
* ``colour``: ``planes_to_rgb`` of every composed motion;
* ``encode``: libx264 encoding of the 49 coloured frames (``write_frames``).

Usage::

    python bench/retarget_parts.py [--repeat 5]
"""
from __future__ import annotations

import argparse
import shutil
import statistics
import tempfile
import time
from pathlib import Path
from typing import Callable

from wan2gp_structure_video import GuideRequest, RunContext, build_guide
from wan2gp_structure_video.pipeline import guide_render
from wan2gp_structure_video.pipeline.build import open_flows
from wan2gp_structure_video.pipeline.prepare import prepare
from wan2gp_structure_video.pipeline.recent_rows import RecentRows
from wan2gp_structure_video.preprocessors.cache.flow_cache import FlowCache
from wan2gp_structure_video.preprocessors.render.flow_viz import planes_to_rgb
from wan2gp_structure_video.preprocessors.timeline import flow_warp
from wan2gp_structure_video.preprocessors.timeline.motion_resample import interval_flow
from wan2gp_structure_video.preprocessors.video.sample_video import write_sample_video
from wan2gp_structure_video.preprocessors.video.guide_writer import write_frames

SIZE = (832, 480)


def seconds(run: Callable[[], object]) -> float:
    started = time.perf_counter()
    run()
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="retarget-parts-"))
    try:
        source = write_sample_video(work / "source.mp4", *SIZE, frames=161, fps=24)
        cache = FlowCache(work / "cache")
        first = seconds(lambda: build_guide(GuideRequest(source, work / "first.mp4", resolution=SIZE, frames=81,
                                                         fps=16, backend="dis"), RunContext(cache=cache)))
        request = GuideRequest(source, work / "re.mp4", resolution=SIZE, frames=49, fps=24, backend="dis")
        times: dict[str, list[float]] = {}
        for _ in range(args.repeat):
            # A strength of its own each round: the same work, never served from the render cache.
            strength = 1.0 - 1e-3 * len(times.get("whole re-target", []))
            times.setdefault("whole re-target", []).append(seconds(lambda: build_guide(
                GuideRequest(source, work / f"re-{strength}.mp4", resolution=SIZE, frames=49, fps=24, backend="dis",
                             motion_strength=strength), RunContext(cache=FlowCache(work / "cache")))))
            prepared = prepare(request)
            with open_flows(prepared, RunContext(cache=cache).resolved()) as flows:
                n = len(flows.intervals)
                every_row = range(len(flows.nodes) - 1)
                # keeps 3 rows, as the build does (freed memory is reused)
                recent = RecentRows(flows.rows, planar=flow_warp.PLANAR_WARPS)
                times.setdefault("rows", []).append(seconds(
                    lambda: all(recent(j) is not None for j in every_row)))
                composed: list = []
                times.setdefault("compose", []).append(seconds(lambda: composed.extend(
                    interval_flow(flows.row, flows.nodes, flows.intervals, k, flows.shape, fresh=False,
                                  cuts=flows.cuts, planes=flows.planes, as_planes=True) for k in range(n))))
                planar, flow_warp.PLANAR_WARPS = flow_warp.PLANAR_WARPS, False
                try:
                    times.setdefault("compose (2-channel warps)", []).append(seconds(lambda: [
                        interval_flow(flows.row, flows.nodes, flows.intervals, k, flows.shape, fresh=False,
                                      cuts=flows.cuts) for k in range(n)]))
                finally:
                    flow_warp.PLANAR_WARPS = planar
                for k in range(n):  # kept by the flows, as in the build: the scale pass times the histogram
                    flows.guide_planes(k)
                times.setdefault("scale (sampled)", []).append(seconds(
                    lambda: guide_render.flow_histogram(flows, 0, n, 99.0, prepared.motion.step)))
                sample = guide_render.scale_sample
                guide_render.scale_sample = lambda planes: planes
                try:
                    times.setdefault("scale (every pixel)", []).append(seconds(
                        lambda: guide_render.flow_histogram(flows, 0, n, 99.0, prepared.motion.step)))
                finally:
                    guide_render.scale_sample = sample
                coloured: list = []
                times.setdefault("colour", []).append(seconds(lambda: coloured.extend(
                    planes_to_rgb(planes, 20.0) for planes in composed)))
            times.setdefault("encode", []).append(seconds(lambda: write_frames(work / "enc.mp4", coloured, 24)))
        whole = statistics.median(times["whole re-target"])
        print(f"first run 81@16 (cache empty): {first:.2f} s; medians of {args.repeat} rounds; shared machine")
        for name, values in times.items():
            value = statistics.median(values)
            print(f"  {name:<24} {value:6.3f} s  {value / whole:6.1%} of the re-target  {value / first:6.1%} of the first run")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
