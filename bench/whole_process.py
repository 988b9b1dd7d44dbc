"""What a user sees: DIS guides, cache hits and re-targets as whole processes (the command to the
finished MP4) and inside one process, each as a ratio against its anchor measured in the same run.

Anchors, timed in the same run, interleaved with the rows they anchor (A B A B ...), medians:

* ``bare loop``: a process that only decodes the source with PyAV and runs the project's DIS on
  every pair (no colouring, no encoding), against ``DIS guide`` — the CLI on the same 161 frames at
  832×480, rendered at the source's own frame rate (exactly the bare loop's 160 flows), no cache;
* ``import torch``: a process that only imports torch, against ``cache hit`` — the CLI asked again
  for a guide it made before (the render comes from the cache);
* ``first run``: the CLI making 81 frames at 16 fps into an empty cache, against ``re-target`` — the
  same source at 49 frames and 24 fps afterwards (flows from the cache, composed anew).

The in-process rows time ``build_guide`` (first run and re-target; DIS guide and the bare loop) in
this process, modules already loaded: the work alone. Usage::

    python bench/whole_process.py [--repeat 3] [--frames 161] [--size 832x480]

Goals (issue 26): re-target ≤ 25 % of the first run as a process and ≤ 10 % inside the build; a
cache hit ≤ 0.5× ``import torch`` as a process.
"""
from __future__ import annotations

import argparse
import resource
import runpy
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable

from wan2gp_structure_video import GuideRequest, RunContext, build_guide
from wan2gp_structure_video.preprocessors.cache.flow_cache import FlowCache
from wan2gp_structure_video.preprocessors.video.sample_video import write_sample_video

SOURCE_FPS = 24
#: The bare loop: decode every frame, DIS on every consecutive pair in batches of 8, flows dropped.
BARE_LOOP = """
import sys
import numpy as np
from wan2gp_structure_video.preprocessors.annotators.flow_dis import DisFlowBackend
from wan2gp_structure_video.preprocessors.video.video_io import iter_frames


def run(path):
    dis, batch, previous = DisFlowBackend(), [], None
    for frame in iter_frames(path):
        if previous is not None:
            batch.append((previous, frame))
        previous = frame
        if len(batch) == 8:
            dis.compute(np.stack([a for a, _ in batch]), np.stack([b for _, b in batch]))
            batch = []
    if batch:
        dis.compute(np.stack([a for a, _ in batch]), np.stack([b for _, b in batch]))


if __name__ == "__main__":
    run(sys.argv[1])
"""


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def process_seconds(argv: list[str]) -> tuple[float, float]:
    """(wall, CPU) seconds of one process running ``argv`` with this interpreter (it must succeed)."""
    started, cpu = time.perf_counter(), _children_cpu()
    proc = subprocess.run([sys.executable, *argv], capture_output=True, text=True)
    seconds = time.perf_counter() - started
    if proc.returncode != 0:
        raise SystemExit(f"{argv[:3]} failed: {proc.stderr.strip()[-600:]}")
    return seconds, _children_cpu() - cpu


def cli(source: Path, out: Path, size: str, frames: int, fps: float, cache: Path | None) -> list[str]:
    argv = ["-m", "wan2gp_structure_video.cli", "guide", str(source), "-o", str(out), "--backend", "dis",
            "--resolution", size, "--frames", str(frames), "--fps", str(fps), "-q"]
    return argv + (["--cache-dir", str(cache)] if cache is not None else ["--no-cache"])


def in_process(run: Callable[[], object]) -> tuple[float, float]:
    """(wall, CPU of every thread of this process) seconds of ``run()``."""
    started, cpu = time.perf_counter(), time.process_time()
    run()
    return time.perf_counter() - started, time.process_time() - cpu


def row(name: str, seconds: list[tuple[float, float]], anchor: list[tuple[float, float]], anchor_name: str,
        goal: str = "") -> str:
    """Wall and CPU medians, each as a ratio to the anchor's (CPU: the steadier one on a shared machine)."""
    wall, cpu = (statistics.median(t[i] for t in seconds) for i in (0, 1))
    base_wall, base_cpu = (statistics.median(t[i] for t in anchor) for i in (0, 1))
    return (f"  {name:<22} {wall:6.2f} s ({cpu:6.2f} s CPU)   {anchor_name:<13} {base_wall:6.2f} s "
            f"({base_cpu:6.2f} s CPU)   ratio {wall / base_wall:5.2f} wall, {cpu / base_cpu:5.2f} CPU"
            + (f"   (goal {goal})" if goal else ""))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--frames", type=int, default=161, help="source frames (24 fps)")
    parser.add_argument("--size", default="832x480")
    args = parser.parse_args()
    width, height = (int(v) for v in args.size.split("x"))
    work = Path(tempfile.mkdtemp(prefix="whole-process-"))
    try:
        source = write_sample_video(work / "source.mp4", width, height, frames=args.frames, fps=SOURCE_FPS)
        script = bare_loop_file(work)
        times: dict[str, list[tuple[float, float]]] = {}

        def add(name: str, seconds: tuple[float, float]) -> None:
            times.setdefault(name, []).append(seconds)

        for attempt in range(args.repeat):
            cache = work / f"cache-{attempt}"
            add("bare loop", process_seconds([str(script), str(source)]))
            add("dis guide", process_seconds(cli(source, work / "all.mp4", args.size, args.frames, SOURCE_FPS, None)))
            add("import torch", process_seconds(["-c", "import torch"]))
            add("first run", process_seconds(cli(source, work / "first.mp4", args.size, 81, 16, cache)))
            add("cache hit", process_seconds(cli(source, work / "hit.mp4", args.size, 81, 16, cache)))
            add("re-target", process_seconds(cli(source, work / "re.mp4", args.size, 49, 24, cache)))
            memory_cache = FlowCache(work / f"cache-in-{attempt}")
            size = (width, height)
            add("in: bare loop", in_process(lambda: bare_in_process(script, source)))
            add("in: dis guide", in_process(lambda: build_guide(
                GuideRequest(source, work / "in-all.mp4", resolution=size, frames=args.frames, fps=SOURCE_FPS,
                             backend="dis"), RunContext(use_cache=False))))
            add("in: first run", in_process(lambda: build_guide(
                GuideRequest(source, work / "in-first.mp4", resolution=size, frames=81, fps=16, backend="dis"),
                RunContext(cache=memory_cache))))
            add("in: re-target", in_process(lambda: build_guide(
                GuideRequest(source, work / "in-re.mp4", resolution=size, frames=49, fps=24, backend="dis"),
                RunContext(cache=memory_cache))))
            shutil.rmtree(cache, ignore_errors=True)
        print(f"Source: {args.frames} frames {args.size} @ {SOURCE_FPS} fps; medians of {args.repeat} "
              "interleaved runs")
        print("Whole process (python -m wan2gp_structure_video.cli ... / python bare_loop.py / python -c ...):")
        print(row("DIS guide (no cache)", times["dis guide"], times["bare loop"], "bare loop"))
        print(row("cache hit", times["cache hit"], times["import torch"], "import torch", "<= 0.5"))
        print(row("re-target 49@24", times["re-target"], times["first run"], "first 81@16", "<= 0.25"))
        print("In one process (modules loaded; the work alone):")
        print(row("DIS guide (no cache)", times["in: dis guide"], times["in: bare loop"], "bare loop"))
        print(row("re-target 49@24", times["in: re-target"], times["in: first run"], "first 81@16", "<= 0.10"))
    finally:
        shutil.rmtree(work, ignore_errors=True)


def bare_loop_file(folder: Path) -> Path:
    """The bare loop as a script (run as a process, and loaded in this process by ``runpy``)."""
    path = folder / "bare_loop.py"
    path.write_text(BARE_LOOP, encoding="utf-8")
    return path


def bare_in_process(script: Path, source: Path) -> None:
    """The bare loop's code, run in this process."""
    runpy.run_path(str(script), run_name="bare")["run"](str(source))


if __name__ == "__main__":
    main()
