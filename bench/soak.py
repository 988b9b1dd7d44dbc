"""Soak: many sequential extractions in one process, as a long Wan2GP session does them.

Every run builds a RAFT-small guide (random weights, no cache: the annotator is used each time) and,
every other run, an OpenCV DIS guide through a shared flow cache. Prints, per run, the resident set
size (after ``gc.collect()``), open file descriptors and ``sv-*`` temporary entries; at the end the
RSS growth after warm-up (run 3 → last run; target ≤ 5 %), the fd and temp-file deltas and how many
times RAFT was constructed (target 1).

    python bench/soak.py                 # 50 runs
    python bench/soak.py --runs 200 --json soak.json
"""
from __future__ import annotations

import argparse
import gc
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable, Optional

WARMUP_RUNS = 3


def open_fds() -> int:
    """Open file descriptors of this process."""
    return len(os.listdir("/proc/self/fd")) if os.path.isdir("/proc/self/fd") else -1


def sv_temp_entries() -> set[str]:
    """Entries of the system temporary folder that this project creates (``sv-`` prefix)."""
    return {name for name in os.listdir(tempfile.gettempdir()) if name.startswith("sv-")}


def rss() -> int:
    from wan2gp_structure_video.memory import process_rss

    gc.collect()
    return process_rss()


def soak(runs: int, work: Path, report: Optional[Callable[[dict], None]] = None) -> dict:
    """Run the soak in ``work``; returns per-run samples and the summary figures."""
    from wan2gp_structure_video import GuideRequest, RunContext, build_guide
    from wan2gp_structure_video.memory import AnnotatorPool
    from wan2gp_structure_video.preprocessors.cache.flow_cache import FlowCache
    from wan2gp_structure_video.preprocessors.video.sample_video import write_sample_video

    work.mkdir(parents=True, exist_ok=True)
    sources = [write_sample_video(work / "a.mp4", 160, 96, frames=16, fps=16),
               write_sample_video(work / "b.mp4", 128, 128, frames=12, fps=12)]
    pool = AnnotatorPool(offload="plain")
    cache = FlowCache(work / "cache")
    raft = dict(backend="raft", raft_model="small", raft_weights="random", iterations=2, batch_size=2,
                device="cpu", resolution=(128, 128), frames=4, fps=8)
    temp_before = sv_temp_entries()
    samples: list[dict] = []
    fds_warm = None
    for run in range(1, runs + 1):
        started = time.perf_counter()
        source = sources[run % 2]
        build_guide(GuideRequest(source, work / "raft.mp4", **raft), RunContext(pool=pool, use_cache=False))
        if run % 2 == 0:
            build_guide(GuideRequest(source, work / "dis.mp4", backend="dis", resolution=(128, 64), frames=8,
                                     fps=8, motion_strength=1.0 + (run % 6) / 2), RunContext(pool=pool, cache=cache))
        sample = {"run": run, "seconds": round(time.perf_counter() - started, 3), "rss": rss(), "fds": open_fds(),
                  "temp": len(sv_temp_entries() - temp_before)}
        if run == 1:
            fds_warm = sample["fds"]
        samples.append(sample)
        if report is not None:
            report(sample)
    warm = samples[min(WARMUP_RUNS, runs) - 1]["rss"]
    (name,) = pool.names()
    return {
        "runs": runs,
        "samples": samples,
        "rss_warm": warm,
        "rss_end": samples[-1]["rss"],
        "rss_growth": samples[-1]["rss"] / warm - 1.0,
        "fds_warm": fds_warm,
        "fds_end": samples[-1]["fds"],
        "temp_leaked": sorted(sv_temp_entries() - temp_before),
        "construct_count": pool.construct_count(name),
        "in_use": pool.in_use(),
    }


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument("--work", type=Path, help="work folder (default: a temporary folder)")
    parser.add_argument("--json", type=Path, help="also write the samples and summary as JSON")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="soak-") as temp:
        work = args.work or Path(temp)
        print(f"{'run':>4} {'s':>6} {'RSS MiB':>9} {'fds':>4} {'temp':>4}")
        result = soak(args.runs, work, lambda s: print(f"{s['run']:>4} {s['seconds']:>6.2f} "
                                                        f"{s['rss'] / 2**20:>9.1f} {s['fds']:>4} {s['temp']:>4}",
                                                        flush=True))
    print(f"RSS after warm-up (run {WARMUP_RUNS}) {result['rss_warm'] / 2**20:.1f} MiB, at the end "
          f"{result['rss_end'] / 2**20:.1f} MiB: growth {result['rss_growth'] * 100:+.2f} % (target <= 5 %)")
    print(f"file descriptors {result['fds_warm']} -> {result['fds_end']}; leaked temp entries: "
          f"{result['temp_leaked'] or 'none'}; RAFT constructed {result['construct_count']} time(s)")
    if args.json:
        args.json.write_text(json.dumps(result, indent=1))
    ok = result["rss_growth"] <= 0.05 and result["fds_end"] <= result["fds_warm"] and not result["temp_leaked"] \
        and result["construct_count"] == 1
    print("PASS" if ok else "FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
