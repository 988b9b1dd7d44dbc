"""Adaptive batch size and RAM pressure, side by side in one process (not a test).

1. Three consecutive runs of one request with a fresh batch-size history: the batch size each run
   starts at and why (the second and third start from what the first learned).
2. The same request under an artificially lowered RAM budget (``PressurePolicy(ram_budget=...)``, set
   just above what the process already holds): the tier actions it logs, the batch-size changes, and
   whether the guide is identical to the unconstrained one; then a follow-up run under the same budget
   starts at the size the squeezed run learned.

    python bench/memory_adaptive.py [--backend dis|raft] [--device cpu|cuda] [--frames 49]
"""
from __future__ import annotations

import argparse
import collections
import logging
import os
import tempfile
import time
from pathlib import Path

import numpy as np



def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", default="dis", choices=("dis", "raft"))
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--frames", type=int, default=49)
    parser.add_argument("--resolution", default="512x288")
    parser.add_argument("--budget-margin", type=float, default=0.93,
                        help="RAM budget = anonymous memory at the start / this (0.93: emergency from the start)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-memory-") as folder:
        return bench(args, Path(folder))


def bench(args: argparse.Namespace, work: Path) -> int:
    os.environ["WAN2GP_STRUCTURE_VIDEO_HOME"] = str(work / "home")  # a fresh history

    from wan2gp_structure_video.memory import BatchSizeHistory, PressurePolicy, process_anon
    from wan2gp_structure_video.memory import Timeline
    from wan2gp_structure_video.pipeline import GuideRequest, RunContext, build_guide, iter_guide_frames, prepare
    from wan2gp_structure_video.preprocessors.video.sample_video import write_sample_video

    sample = write_sample_video(work / "sample.mp4", width=640, height=360)
    extra = {"raft_model": "small", "raft_weights": "random", "iterations": 4} if args.backend == "raft" else {}

    def request(name=None) -> GuideRequest:
        return GuideRequest(sample, None if name is None else work / f"{name}.mp4", resolution=args.resolution,
                            frames=args.frames, fps=16, backend=args.backend, device=args.device, **extra)

    def run(name: str, history: BatchSizeHistory, pressure: PressurePolicy | None = None):
        started = time.perf_counter()
        result = build_guide(request(name), RunContext(history=history, pressure=pressure, use_cache=False))
        return result, time.perf_counter() - started

    def frames(history: BatchSizeHistory, pressure: PressurePolicy | None = None):
        """The rendered guide frames (compared before H.264, whose threaded encoder is not bit-reproducible)."""
        prepared = prepare(request())
        ctx = RunContext(history=history, pressure=pressure, timeline=Timeline(), use_cache=False)
        started = time.perf_counter()
        out = list(iter_guide_frames(prepared.request, ctx, prepared))
        return out, prepared.result, ctx.timeline, time.perf_counter() - started

    print(f"{args.backend} on {args.device}, {args.frames} frames at {args.resolution}, no cache")
    print("\n1. Three consecutive runs, fresh history")
    history = BatchSizeHistory(work / "history_adaptive.json")
    for number in (1, 2, 3):
        result, seconds = run(f"adaptive{number}", history)
        print(f"   run {number}: {result.memory_notes[0]}; {seconds:.1f}s")
    calm, _, _, _ = frames(BatchSizeHistory(work / "history_calm.json"))

    print("\n2. Lowered RAM budget, fresh history")
    budget = int(process_anon() / args.budget_margin)
    print(f"   budget {budget / 2**20:.0f} MiB (anonymous memory now {process_anon() / 2**20:.0f} MiB)")
    logging.basicConfig(level=logging.WARNING)
    squeezed_history = BatchSizeHistory(work / "history_squeezed.json")
    policy = PressurePolicy(ram_budget=budget)
    squeezed_frames, squeezed, timeline, seconds = frames(squeezed_history, policy)
    levels = collections.Counter(d.level for d in policy.decisions)
    print(f"   completed in {seconds:.1f}s; {len(policy.decisions)} pressure checks acted: {dict(levels)}")
    for note in squeezed.memory_notes:
        print(f"   {note}")
    for decision in policy.decisions[:3]:
        print(f"   log: {decision.report}")
    same = len(calm) == len(squeezed_frames) and all(np.array_equal(a, b) for a, b in zip(calm, squeezed_frames))
    print(f"   guide frames identical to the unconstrained run's: {same} ({len(calm)} frames compared)")
    follow, seconds = run("squeezed_next", squeezed_history, PressurePolicy(ram_budget=budget))
    print(f"   next run under the same budget: {follow.memory_notes[0]}; {seconds:.1f}s")
    events = collections.Counter(e.kind for e in timeline.events)
    print(f"   timeline events of the squeezed run: {dict(events)}")
    return 0 if same else 1


if __name__ == "__main__":
    raise SystemExit(main())
