"""The farm vs the CLI on one machine: 4 distinct DIS sources, each ≥ 10 s of 832×480.

Runs, side by side in one invocation, each with a fresh cache and as a user would (subprocesses):

* ``cli``      one ``wan2gp-structure-video guide`` process over the 4 sources, one after another
               (OpenCV with its default threads);
* ``farm N``   ``wan2gp-structure-video farm`` on a local Ray instance with N CPU workers (OpenCV limited to
               one thread per worker), for N = 1 and 2 — the measured part of the scaling curve.

Prints each wall time (Ray's start-up included) and farm/cli ratios (goal for 2 workers: ≤ 0.75), and
checks that every farm guide is byte-identical to the CLI's.

    python bench/farm.py                    # --seconds 10 --fps 24 by default
"""
from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from wan2gp_structure_video.preprocessors.sample_video import write_sample_video

CLI = [sys.executable, "-m", "wan2gp_structure_video.cli"]
GUIDE = ["--resolution", "832x480", "--frames", "81", "--fps", "16", "--backend", "dis"]


def sources(folder: Path, count: int, seconds: float, fps: float) -> list[Path]:
    """``count`` distinct sources (different seeds) of ``seconds`` at 832×480."""
    frames = int(round(seconds * fps))
    return [write_sample_video(folder / f"source{n}.mp4", 832, 480, frames, fps, seed=n) for n in range(count)]


def timed(args: list[str]) -> float:
    started = time.perf_counter()
    subprocess.run(args, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - started


def run_cli(inputs: list[Path], work: Path) -> tuple[float, dict[str, bytes]]:
    out = work / "cli"
    seconds = timed(CLI + ["guide", *map(str, inputs), "--out-dir", str(out), "--cache-dir", str(work / "cli-cache"),
                           "-q", *GUIDE])
    return seconds, {p.stem.split("_")[0]: p.read_bytes() for p in out.glob("*.mp4")}


def run_farm(inputs: list[Path], work: Path, workers: int) -> tuple[float, dict[str, bytes]]:
    jobs, out = work / f"jobs{workers}.jsonl", work / f"farm{workers}"
    jobs.write_text("".join(json.dumps({"input": str(p), "output": str(out / f"{p.stem}.mp4"), "resolution": "832x480",
                                        "frames": 81, "fps": 16, "backend": "dis"}) + "\n" for p in inputs))
    seconds = timed(CLI + ["farm", str(jobs), "--cache-dir", str(work / f"farm-cache{workers}"),
                           "--workers", str(workers), "-q"])
    return seconds, {p.stem: p.read_bytes() for p in out.glob("*.mp4")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sources", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--fps", type=float, default=24.0)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-farm-"))
    try:
        inputs = sources(work, args.sources, args.seconds, args.fps)
        print(f"{len(inputs)} sources, {args.seconds:g} s of 832x480 at {args.fps:g} fps each; guides 832x480, "
              "81 frames at 16 fps, DIS")
        cli_s, cli_out = run_cli(inputs, work)
        print(f"cli (sequential)   {cli_s:7.1f} s")
        curve = {}
        for workers in (1, 2):
            farm_s, farm_out = run_farm(inputs, work, workers)
            same = farm_out == cli_out and len(farm_out) == len(inputs)
            curve[workers] = farm_s
            print(f"farm, {workers} worker{'s' if workers > 1 else ' '}   {farm_s:7.1f} s   farm/cli {farm_s / cli_s:.2f}   "
                  f"guides byte-identical to the CLI's: {same}")
        print(f"scaling: 2 workers / 1 worker = {curve[2] / curve[1]:.2f} (ideal 0.50 plus Ray's fixed start-up)")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
