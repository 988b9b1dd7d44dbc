"""Depth Anything V2 (vits, random weights) on the CPU at 832×480: frames/s and peak memory, short vs long clip.

Each run happens in a fresh subprocess and streams like the pipeline will: synthetic frames in
batches → the model → the clip-wide sketch and a float16 memory-mapped depth file (the cache's
format) → a second pass that renders the grey guide frames from the file with the clip-wide
range. Anonymous resident memory (``RssAnon``, file-backed pages of the mapped file excluded) is
sampled every 10 ms. Prints frames/s (model only and whole run), peak RssAnon per run and the
ratio peak(long) / peak(short) (target ≤ 1.15).

    python bench/depth_cpu.py                      # 200 vs 2000 frames (slow on a small CPU)
    python bench/depth_cpu.py --short 20 --long 60 # quick look
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

from memory_scaling import rss_anon  # bench/ is on sys.path when a script here runs

WIDTH, HEIGHT = 832, 480


def synthetic_batch(start: int, count: int):
    """Frames of a scene moving in depth: a textured floor and a disc coming closer."""
    import numpy as np

    ys, xs = np.mgrid[0:HEIGHT, 0:WIDTH].astype(np.float32)
    batch = np.empty((count, HEIGHT, WIDTH, 3), np.uint8)
    for i in range(count):
        t = (start + i) / 50.0
        floor = 128 + 100 * np.sin(xs / (20 + 10 * ys / HEIGHT) + t) * (ys / HEIGHT)
        radius = 40 + 30 * (1 + np.sin(t))
        disc = (xs - WIDTH / 2) ** 2 + (ys - HEIGHT / 2) ** 2 < radius ** 2
        frame = np.where(disc, 230.0, floor)
        batch[i] = np.stack([frame, frame * 0.8, 255 - frame], axis=-1).clip(0, 255).astype(np.uint8)
    return batch


def child(args: argparse.Namespace) -> None:
    """One run; prints JSON."""
    import numpy as np
    import torch

    from wan2gp_structure_video.preprocessors.depth_model import DepthAnythingBackend, load_depth_model
    from wan2gp_structure_video.preprocessors.depth_normalise import (InverseDepthSketch, depth_to_guide,
                                                                      plan_depth_scale)

    torch.set_num_threads(args.threads)
    peak = {"value": rss_anon(), "stop": False}

    def sample() -> None:
        while not peak["stop"]:
            peak["value"] = max(peak["value"], rss_anon())
            time.sleep(0.01)

    baseline = rss_anon()
    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    started = time.perf_counter()
    model = load_depth_model(None, variant="vits", seed=0)
    backend = DepthAnythingBackend(model, "cpu", input_size=args.input_size)
    store = np.lib.format.open_memmap(args.store, mode="w+", dtype=np.float16, shape=(args.frames, HEIGHT, WIDTH))
    sketch = InverseDepthSketch()
    model_seconds = 0.0
    for start in range(0, args.frames, args.batch):
        frames = synthetic_batch(start, min(args.batch, args.frames - start))
        t0 = time.perf_counter()
        depth = backend.compute(frames)
        model_seconds += time.perf_counter() - t0
        sketch.add(depth)
        store[start:start + len(depth)] = depth
        del frames, depth
    store.flush()
    scale = plan_depth_scale(sketch)
    checksum = 0
    for index in range(args.frames):
        guide = depth_to_guide(store[index], *scale.range_at(index), contrast=1.0)
        checksum += int(guide[::16, ::16, 0].sum())
    seconds = time.perf_counter() - started
    peak["stop"] = True
    thread.join()
    print(json.dumps({"peak": peak["value"], "baseline": baseline, "seconds": seconds, "model_seconds": model_seconds,
                      "frames": args.frames, "checksum": checksum}))


def run(frames: int, work: Path, args: argparse.Namespace) -> dict:
    store = work / f"depth{frames}.npy"
    command = [sys.executable, __file__, "--child", "--frames", str(frames), "--store", str(store),
               "--batch", str(args.batch), "--threads", str(args.threads)]
    if args.input_size is not None:
        command += ["--input-size", str(args.input_size)]
    env = dict(os.environ, HF_HUB_OFFLINE="1")
    out = subprocess.run(command, check=True, capture_output=True, text=True, env=env)
    result = json.loads(out.stdout.strip().splitlines()[-1])
    store.unlink()
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--short", type=int, default=200)
    parser.add_argument("--long", type=int, default=2000)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--threads", type=int, default=max(1, min(4, os.cpu_count() or 1)))
    parser.add_argument("--input-size", type=lambda v: None if v == "none" else int(v), default=518,
                        help="model input short side (518 as Wan2GP) or 'none' for the frame's own size")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--frames", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--store", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args)
        return 0
    print(f"Depth Anything V2 vits, random weights, CPU ({args.threads} threads), {WIDTH}x{HEIGHT}, "
          f"input size {args.input_size}, batch {args.batch}")
    with tempfile.TemporaryDirectory(prefix="depth-bench-") as tmp:
        results = {n: run(n, Path(tmp), args) for n in (args.short, args.long)}
    for n, r in results.items():
        print(f"{n:5d} frames: {n / r['model_seconds']:.2f} frames/s (model), {n / r['seconds']:.2f} frames/s (run), "
              f"peak RssAnon {r['peak'] / 2**20:.0f} MiB (baseline {r['baseline'] / 2**20:.0f} MiB)")
    ratio = results[args.long]["peak"] / results[args.short]["peak"]
    print(f"peak({args.long}) / peak({args.short}) = {ratio:.3f} (target <= 1.15)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
