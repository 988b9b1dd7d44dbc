"""Flows on the source timeline vs flows between resampled frames, and re-targeting from the cache.

On one 10-second 832×480 source (the generated sample, 240 frames at 24 fps), for a guide of 81
frames at 16 fps and of 33 frames (strong compression), measured side by side in one run with the
same backend, decoder and batch size:

* **old**: one flow per distinct pair of consecutive *planned* (resampled) frames — what the tool
  did before, and every other structure-video tool does (and what strobes);
* **new**: one flow per pair of consecutive source nodes (stride from ``motion_resample``).

Then, with the 81-frame extraction in the cache, requests with another frame count / fps /
treatment are timed: opening the flows and resampling every guide frame's motion (what the cache
saves) and the whole guide with render + encode. Target: re-targeting ≤ 10 % of the extraction.

    python bench/motion_in_time.py              # DIS (CPU); --backend raft: RAFT-small, random weights
"""
from __future__ import annotations

import argparse
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from wan2gp_structure_video.memory import AnnotatorPool
from wan2gp_structure_video.pipeline import GuideRequest, RunContext, build_guide, prepare
from wan2gp_structure_video.pipeline.annotators.flow import FLOW, choose_backend
from wan2gp_structure_video.pipeline.build import open_flows
from wan2gp_structure_video.pipeline.extraction import extract_rows
from wan2gp_structure_video.pipeline.guide_render import iter_resampled_flows
from wan2gp_structure_video.preprocessors.cache.flow_cache import FlowCache
from wan2gp_structure_video.preprocessors.cache.row_store import FlowStoreWriter
from wan2gp_structure_video.preprocessors.video.sample_video import write_sample_video
from wan2gp_structure_video.progress import Progress


def request_for(source: Path, frames: int, backend: str, **options) -> GuideRequest:
    raft = backend == "raft"
    return GuideRequest(source, resolution=(832, 480), frames=frames, fps=16, backend="raft" if raft else "dis",
                        raft_model="small", raft_weights="random" if raft else None, iterations=12, batch_size=8,
                        **options)


def old_pairs(indices) -> list[tuple[int, int]]:
    """The distinct non-zero flow pairs of the old convention (planned frame k-1 → k, frame 0 copies)."""
    pairs = {(a, b) for a, b in zip(indices, indices[1:]) if a != b}
    return sorted(pairs)


def time_pairs(request: GuideRequest, pairs: list[tuple[int, int]], work: Path, ctx: RunContext) -> float:
    """Extract flows for arbitrary source pairs with the pipeline's own extraction (decode, fit, batch)."""
    prepared = prepare(request)
    choice = choose_backend(prepared.request)
    width, height = prepared.size
    started = time.perf_counter()
    # Each pair is a two-node run; a monotone chain of pairs is one run through the decoder.
    writer = FlowStoreWriter(work / "old.npy", len(pairs), height, width)
    try:
        chain = [pairs[0][0]] + [b for _, b in pairs]
        contiguous = all(a == b0 for (a, _), (_, b0) in zip(pairs[1:], pairs[:-1]))
        if contiguous:
            extract_rows(FLOW, prepared, choice, chain, writer.put, ctx)
        else:  # pragma: no cover - adjust plans give a chain
            for a, b in pairs:
                extract_rows(FLOW, prepared, choice, [a, b], writer.put, ctx)
    finally:
        writer.close()
    return time.perf_counter() - started


def time_new(request: GuideRequest, cache: FlowCache, ctx: RunContext) -> tuple[float, int, int]:
    """Extraction on the source timeline into a fresh cache: (seconds, pairs, stride)."""
    prepared = prepare(request)
    started = time.perf_counter()
    with open_flows(prepared, replace(ctx, cache=cache)) as flows:
        pairs = len(flows.nodes) - 1
    return time.perf_counter() - started, pairs, flows.stride


def time_retarget(request: GuideRequest, ctx: RunContext, out: Path) -> tuple[float, float, bool]:
    """(flows opened + every guide frame's motion resampled, whole guide incl. render + encode, from cache?)"""
    prepared = prepare(request)
    started = time.perf_counter()
    with open_flows(prepared, ctx) as flows:
        for flow in iter_resampled_flows(flows, *prepared.window):
            flow.sum(dtype=np.float32)
    resampled = time.perf_counter() - started
    started = time.perf_counter()
    result = build_guide(replace(request, output=out), ctx)
    return resampled, time.perf_counter() - started, result.flows_from_cache


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", choices=("dis", "raft"), default="dis")
    parser.add_argument("--seconds", type=float, default=10.0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="sv-bench-") as folder:
        work = Path(folder)
        source = write_sample_video(work / "structure.mp4", 832, 480, frames=int(round(args.seconds * 24)), fps=24)
        ctx = RunContext(pool=AnnotatorPool(offload="plain"), progress=Progress(), use_cache=False).resolved()
        print(f"source: {args.seconds:g} s, 832x480 @ 24 fps; backend {args.backend}")
        extraction_81 = None
        cache_81 = FlowCache(work / "cache_81")
        for frames in (81, 33):
            request = request_for(source, frames, args.backend)
            prepared = prepare(request)
            old = old_pairs(prepared.plan.indices)
            old_seconds = time_pairs(request, old, work, ctx)
            cache = cache_81 if frames == 81 else FlowCache(work / f"cache_{frames}")
            new_seconds, new_count, stride = time_new(request, cache, ctx)
            if frames == 81:
                extraction_81 = new_seconds
            step = prepared.motion.step
            print(f"{frames:3d} frames @ 16 fps (guide step {step:.2f} source frames, stride {stride}): old {len(old)} resampled pairs {old_seconds:.1f}s | new {new_count} source "
                  f"pairs {new_seconds:.1f}s | cost ratio new/old {new_seconds / old_seconds:.2f} "
                  f"(pairs {new_count / len(old):.2f})")
        cached_ctx = replace(ctx, cache=cache_81, use_cache=True)
        for label, options in (("121 frames @ 24 fps", dict(frames=121, fps=24)),
                               ("49 frames, clip", dict(frames=49, treatment="clip")),
                               ("33 frames", dict(frames=33)),
                               ("81 frames, strength 2", dict(frames=81, motion_strength=2.0))):
            request = replace(request_for(source, 81, args.backend), **options)
            resampled, whole, from_cache = time_retarget(request, cached_ctx, work / "retarget.mp4")
            print(f"re-target {label:22s} from cache={from_cache}: flows + resampling {resampled:.2f}s "
                  f"= {resampled / extraction_81:.1%} of the extraction; whole guide incl. render+encode "
                  f"{whole:.2f}s = {whole / extraction_81:.1%}")


if __name__ == "__main__":
    main()
