"""Depth Anything V2 ``vits`` (random weights) on the CPU at 832×480 through the real pipeline:
frames/s and peak memory, a short vs a long clip.

Each run is ``build_guide(guide_type="depth")`` in a fresh subprocess, the model given by path as a
transformers folder (written here with random weights: nothing is downloaded), the flow cache in a
temporary folder: decoding on its thread, the model in the annotator pool, batches, the float16
depth file, the clip-wide brightness range, grey frames, x264. Anonymous resident memory
(``RssAnon``: file-backed pages of the mapped depth file excluded) is sampled every 10 ms. Prints
frames/s (model phase and whole run), peak RssAnon per run and peak(long) / peak(short) (target ≤ 1.15).

    python bench/depth_cpu.py                                   # 200 vs 2000 frames, model input 518
    python bench/depth_cpu.py --input-size 140                  # the same streaming, a smaller model input
    python bench/depth_cpu.py --short 8 --long 24               # a quick look at frames/s

The model input size changes the model's cost per frame, not what is kept per frame: with vits at 518
a 2000-frame run takes hours on a 2-core CPU, so the length comparison is usually run with a small
input size, and frames/s at 518 on a short clip.
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

WIDTH, HEIGHT, FPS = 832, 480, 24.0


def write_random_vits(folder: Path) -> Path:
    """A transformers DepthAnything folder with random ``vits`` weights (the shapes of the real model)."""
    from wan2gp_structure_video.preprocessors.annotators.depth_model import build_depth_model
    from wan2gp_structure_video.preprocessors.weights.depth_weights import VARIANTS

    build_depth_model(VARIANTS["vits"], seed=0).save_pretrained(folder)
    return folder


def child(args: argparse.Namespace) -> None:
    """One run: the depth guide through ``build_guide`` while a thread samples RssAnon; print JSON."""
    import torch

    from wan2gp_structure_video import GuideRequest, RunContext, build_guide
    from wan2gp_structure_video.preprocessors.cache.flow_cache import FlowCache
    from wan2gp_structure_video.progress import Progress

    torch.set_num_threads(args.threads)
    peak = {"value": rss_anon(), "stop": False}

    def sample() -> None:
        while not peak["stop"]:
            peak["value"] = max(peak["value"], rss_anon())
            time.sleep(0.01)

    baseline = rss_anon()
    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    request = GuideRequest(args.input, args.output, resolution=(WIDTH, HEIGHT), frames=args.frames, fps=FPS,
                           guide_type="depth", depth_weights=args.weights, depth_input_size=int(args.input_size) or None,
                           batch_size=args.batch, device="cpu")
    started = time.perf_counter()
    result = build_guide(request, RunContext(cache=FlowCache(args.cache), progress=Progress()))
    seconds = time.perf_counter() - started
    peak["stop"] = True
    thread.join()
    print(json.dumps({"peak": peak["value"], "baseline": baseline, "seconds": seconds, "frames": result.frames,
                      "model_seconds": result.timings.get("depth", seconds)}))


def run(frames: int, source: Path, work: Path, args: argparse.Namespace) -> dict:
    command = [sys.executable, __file__, "--child", "--frames", str(frames), "--input", str(source),
               "--output", str(work / f"depth_{frames}.mp4"), "--cache", str(work / f"cache_{frames}"),
               "--weights", str(args.weights), "--input-size", str(args.input_size), "--batch", str(args.batch),
               "--threads", str(args.threads)]
    env = dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
    out = subprocess.run(command, check=True, capture_output=True, text=True, env=env)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--short", type=int, default=200)
    parser.add_argument("--long", type=int, default=2000)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--threads", type=int, default=max(1, min(4, os.cpu_count() or 1)))
    parser.add_argument("--input-size", type=int, default=518,
                        help="model input size (518 as Wan2GP; 0 = the frame's own size)")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    for hidden in ("--frames", "--input", "--output", "--cache", "--weights"):
        parser.add_argument(hidden, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        args.frames = int(args.frames)
        child(args)
        return 0
    from wan2gp_structure_video.preprocessors.video.sample_video import write_sample_video

    with tempfile.TemporaryDirectory(prefix="depth-bench-") as folder:
        work = Path(folder)
        args.weights = write_random_vits(work / "vits")
        print(f"Depth Anything V2 vits, random weights, CPU ({args.threads} threads), {WIDTH}x{HEIGHT}, "
              f"model input {args.input_size or 'frame size'}, batch {args.batch}, through build_guide")
        results = {}
        for frames in (args.short, args.long):
            source = write_sample_video(work / f"src_{frames}.mp4", WIDTH, HEIGHT, frames=frames, fps=FPS)
            results[frames] = run(frames, source, work, args)
            source.unlink()
            data = results[frames]
            print(f"{frames:5d} frames: {frames / data['model_seconds']:6.2f} frames/s (model phase), "
                  f"{frames / data['seconds']:6.2f} frames/s (whole run), peak RssAnon {data['peak'] / 2**20:7.1f} MiB "
                  f"(start {data['baseline'] / 2**20:6.1f} MiB)", flush=True)
    ratio = results[args.long]["peak"] / results[args.short]["peak"]
    print(f"peak({args.long}) / peak({args.short}) = {ratio:.3f} (target <= 1.15)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
