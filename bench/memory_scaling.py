"""Memory does not grow with the length of the video: a 200- and a 2000-frame guide at 512×288.

Each run happens in a fresh subprocess; its anonymous resident memory (``RssAnon`` in
``/proc/self/status``, file-backed pages of memory-mapped flow files excluded) is sampled every 10 ms.
Prints peak RssAnon and frames/s per run and the ratio peak(2000) / peak(200) (target ≤ 1.15).

    python bench/memory_scaling.py                       # DIS and RAFT-small (random weights)
    python bench/memory_scaling.py --backends dis --short 200 --long 2000
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path


def rss_anon() -> int:
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("RssAnon:"):
                return int(line.split()[1]) * 1024
    return 0


def child(args: argparse.Namespace) -> None:
    """One run: build the guide while a thread samples RssAnon; print JSON."""
    from wan2gp_structure_video import GuideRequest, RunContext, build_guide
    from wan2gp_structure_video.preprocessors.cache.flow_cache import FlowCache
    from wan2gp_structure_video.progress import Progress

    peak = {"value": rss_anon(), "stop": False}

    def sample() -> None:
        while not peak["stop"]:
            peak["value"] = max(peak["value"], rss_anon())
            time.sleep(0.01)

    thread = threading.Thread(target=sample, daemon=True)
    baseline = rss_anon()
    thread.start()
    raft = args.backend == "raft-small"
    request = GuideRequest(args.input, args.output, resolution=(512, 288), frames=args.frames, fps=24,
                           backend="raft" if raft else "dis", raft_model="small",
                           raft_weights="random" if raft else None, iterations=args.iterations,
                           batch_size=2 if raft else None)
    started = time.perf_counter()
    result = build_guide(request, RunContext(cache=FlowCache(args.cache), progress=Progress()))
    seconds = time.perf_counter() - started
    peak["stop"] = True
    thread.join()
    print(json.dumps({"peak": peak["value"], "baseline": baseline, "seconds": seconds, "frames": result.frames}))


def run(backend: str, frames: int, source: Path, work: Path, iterations: int) -> dict:
    out = work / f"{backend}_{frames}.mp4"
    cmd = [sys.executable, __file__, "--child", "--backend", backend, "--frames", str(frames), "--input", str(source),
           "--output", str(out), "--cache", str(work / f"cache_{backend}_{frames}"), "--iterations", str(iterations)]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=True)
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backends", default="dis,raft-small")
    parser.add_argument("--short", type=int, default=200)
    parser.add_argument("--long", type=int, default=2000)
    parser.add_argument("--iterations", type=int, default=4, help="RAFT iterations (memory does not depend on it)")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--backend", help=argparse.SUPPRESS)
    parser.add_argument("--frames", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--input", help=argparse.SUPPRESS)
    parser.add_argument("--output", help=argparse.SUPPRESS)
    parser.add_argument("--cache", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args)
        return
    from wan2gp_structure_video.preprocessors.video.sample_video import write_sample_video

    with tempfile.TemporaryDirectory(prefix="sv-bench-") as folder:
        work = Path(folder)
        sources = {n: write_sample_video(work / f"src_{n}.mp4", 512, 288, frames=n, fps=24)
                   for n in (args.short, args.long)}
        print(f"guides at 512x288, sources of {args.short} and {args.long} frames (adjust: one source frame per guide frame)")
        for backend in args.backends.split(","):
            short = run(backend, args.short, sources[args.short], work, args.iterations)
            long = run(backend, args.long, sources[args.long], work, args.iterations)
            for label, data in ((args.short, short), (args.long, long)):
                print(f"{backend:10s} {label:5d} frames: peak RssAnon {data['peak'] / 2**20:7.1f} MiB "
                      f"(start {data['baseline'] / 2**20:6.1f}), {data['frames'] / data['seconds']:6.1f} frames/s")
            print(f"{backend:10s} peak({args.long}) / peak({args.short}) = {long['peak'] / short['peak']:.3f}"
                  f"   (target <= 1.15)")


if __name__ == "__main__":
    main()
