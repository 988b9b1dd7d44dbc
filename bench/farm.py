"""The farm vs the CLI on one machine: 4 distinct DIS sources, each ≥ 10 s of 832×480.

Runs, side by side in one invocation, each with a fresh cache and as a user would (subprocesses):

* ``cli``      one ``wan2gp-structure-video guide`` process over the 4 sources, one after another
               (OpenCV with its default threads);
* ``farm N``   ``wan2gp-structure-video farm`` on a local Ray instance with N CPU workers (OpenCV limited to
               one thread per worker), for N = 1 and 2 — the measured part of the scaling curve.

Prints each wall time (Ray's start-up included) and farm/cli ratios (goal for 2 workers: ≤ 0.75), and
checks that every farm guide is byte-identical to the CLI's. With ``--repeat N`` the three runs alternate N
times and medians are compared, so a load change on a shared machine hits every configuration alike.

    python bench/farm.py                    # --seconds 10 --fps 24 --repeat 1 by default
"""
from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from wan2gp_structure_video.preprocessors.video.sample_video import write_sample_video

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
    out = work / "guides"
    seconds = timed(CLI + ["guide", *map(str, inputs), "--out-dir", str(out), "--cache-dir", str(work / "cache"),
                           "-q", *GUIDE])
    return seconds, {p.stem.split("_")[0]: p.read_bytes() for p in out.glob("*.mp4")}


def run_farm(inputs: list[Path], work: Path, workers: int) -> tuple[float, dict[str, bytes]]:
    work.mkdir(parents=True, exist_ok=True)
    jobs, out = work / "jobs.jsonl", work / "guides"
    jobs.write_text("".join(json.dumps({"input": str(p), "output": str(out / f"{p.stem}.mp4"), "resolution": "832x480",
                                        "frames": 81, "fps": 16, "backend": "dis"}) + "\n" for p in inputs))
    seconds = timed(CLI + ["farm", str(jobs), "--cache-dir", str(work / "cache"),
                           "--workers", str(workers), "-q"])
    return seconds, {p.stem: p.read_bytes() for p in out.glob("*.mp4")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sources", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--fps", type=float, default=24.0)
    parser.add_argument("--repeat", type=int, default=1, help="alternate the three runs this many times (medians)")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-farm-"))
    try:
        inputs = sources(work, args.sources, args.seconds, args.fps)
        print(f"{len(inputs)} sources, {args.seconds:g} s of 832x480 at {args.fps:g} fps each; guides 832x480, "
              f"81 frames at 16 fps, DIS; {args.repeat} alternating round(s)")
        times: dict[str, list[float]] = {"cli": [], "farm1": [], "farm2": []}
        for round_no in range(1, args.repeat + 1):
            for name in times:
                for folder in work.glob(f"{name}*"):  # fresh caches and outputs every round
                    shutil.rmtree(folder, ignore_errors=True)
                seconds, out = run_cli(inputs, work / name) if name == "cli" else \
                    run_farm(inputs, work / name, int(name[-1]))
                times[name].append(seconds)
                if name == "cli":
                    reference = out
                print(f"round {round_no}: {name:5s} {seconds:7.1f} s" + ("" if name == "cli" else
                      f"   guides byte-identical to the CLI's: {out == reference and len(out) == len(inputs)}"),
                      flush=True)
        cli_s, one, two = (statistics.median(times[name]) for name in ("cli", "farm1", "farm2"))
        print(f"median: cli (sequential) {cli_s:.1f} s; farm 1 worker {one:.1f} s (farm/cli {one / cli_s:.2f}); "
              f"farm 2 workers {two:.1f} s (farm/cli {two / cli_s:.2f}, goal <= 0.75)")
        print(f"scaling: 2 workers / 1 worker = {two / one:.2f} (ideal 0.50 plus Ray's fixed start-up)")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
