"""RAFT warm start: how many updates keep the flow within 0.1 px of a 20-update cold start, and
pairs/s and peak memory against the host's FlowAnnotator with the same weights, side by side.

Footage: the project's sample video and a photographic pan (a window sliding smoothly, at sub-pixel
steps, across an image from ``skimage.data``). For each candidate number of updates N, every pair
after the first starts from the previous pair's flow projected forward and runs N updates; the mean
end-point difference to the cold 20-update flow of the same pair is printed.

Weights: real RAFT weights found locally (Wan2GP's ``ckpts/flow/raft-things.pth``, ``--weights``,
or torchvision's files in the torch hub cache); nothing is downloaded. Without them the model is
random and the accuracy figures are meaningless (printed as such): only speed and memory mean
anything then.

The anchor is Wan2GP's own ``preprocessing.flow.FlowAnnotator`` (``--wan2gp /path/to/Wan2GP``, or
``$WAN2GP_ROOT``), loaded from the same weights in the princeton layout (random weights are saved
in that layout first); without a checkout, a host-style loop on torchvision's RAFT stands in.

    python bench/raft_warm_start.py --frames 9 --size 256x144 --candidates 4,6,8,12 [--repeat 3]
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable, Optional

import cv2
import numpy as np
import torch

from wan2gp_structure_video.memory import process_rss
from wan2gp_structure_video.preprocessors.annotators.flow_raft import RaftFlowBackend
from wan2gp_structure_video.preprocessors.weights.raft_weights import WeightsSource, find_raft_weights, load_raft
from wan2gp_structure_video.preprocessors.video.sample_video import sample_frames

COLD_ITERATIONS = 20


def photographic_pan(width: int, height: int, count: int, step: float = 2.6) -> list[np.ndarray]:
    """A camera pan across ``skimage.data.astronaut`` (scaled up so the window fits): sub-pixel steps."""
    from skimage import data

    image = data.astronaut()
    scale = max(2.0 * width / image.shape[1], 1.2 * height / image.shape[0], 1.0)
    image = cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_CUBIC)
    frames = []
    for k in range(count):
        shift = np.float32([[1, 0, -k * step], [0, 1, -0.3 * k * step]])
        frames.append(cv2.warpAffine(image, shift, (width, height), flags=cv2.INTER_LINEAR,
                                     borderMode=cv2.BORDER_REFLECT))
    return frames


def mean_epe(a: list[np.ndarray], b: list[np.ndarray]) -> float:
    return float(np.mean([np.linalg.norm(x - y, axis=-1).mean() for x, y in zip(a, b)]))


def run_ours(model, frames: list[np.ndarray], iterations: int, warm: Optional[int], batch: int = 1) -> list[np.ndarray]:
    backend = RaftFlowBackend(model, "cpu", iterations=iterations, precision="fp32", warm_iterations=warm)
    flows: list[np.ndarray] = []
    for start in range(0, len(frames) - 1, batch):
        stop = min(len(frames) - 1, start + batch)
        flows.extend(backend.compute(np.stack(frames[start:stop]), np.stack(frames[start + 1:stop + 1])))
    return flows


def host_annotator(weights_path: str, wan2gp: Optional[str]) -> tuple[Callable[[list[np.ndarray]], list], str]:
    """Wan2GP's FlowAnnotator on ``weights_path`` (princeton layout), or a stand-in without a checkout."""
    if wan2gp and (Path(wan2gp) / "preprocessing" / "flow.py").is_file():
        sys.path.insert(0, str(Path(wan2gp).resolve()))
        from preprocessing.flow import FlowAnnotator  # the host's own code, as it runs in Wan2GP

        annotator = FlowAnnotator({"PRETRAINED_MODEL": weights_path}, device=torch.device("cpu"))
        return (lambda frames: annotator.forward(frames)[0]), "Wan2GP FlowAnnotator"
    model = load_raft(WeightsSource("large", weights_path, "princeton", "bench"), "large")

    def host_style(frames: list[np.ndarray]) -> list[np.ndarray]:  # one pair at a time, torchvision forward
        backend = RaftFlowBackend(model, "cpu", iterations=COLD_ITERATIONS, precision="fp32")
        return [backend.model(*(backend._to_model_input(f[None], (0, 0, 0, 0)) for f in pair),
                              num_flow_updates=COLD_ITERATIONS)[-1][0].permute(1, 2, 0).numpy()
                for pair in zip(frames[:-1], frames[1:])]
    return host_style, "host-style loop (no Wan2GP checkout given)"


def princeton_file(model: torch.nn.Module, folder: Path) -> str:
    """``model``'s weights saved in the princeton layout (what FlowAnnotator loads)."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
    from test_raft_weights import to_princeton

    path = folder / "raft-things-random.pth"
    torch.save(to_princeton(model.state_dict()), path)
    return str(path)


def timed(run: Callable[[], list]) -> tuple[list, tuple[float, float], int]:
    """(result, (wall, CPU of every thread) seconds, peak RSS growth in bytes sampled every 10 ms)."""
    import threading

    start = peak = process_rss()
    stop = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not stop.wait(0.01):
            peak = max(peak, process_rss())

    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    began, cpu = time.perf_counter(), time.process_time()
    result = run()
    seconds = (time.perf_counter() - began, time.process_time() - cpu)
    stop.set()
    thread.join()
    return result, seconds, max(peak, process_rss()) - start


def speed(pairs: int, seconds: tuple[float, float], anchor: tuple[float, float]) -> str:
    """pairs/s (wall) and the speed ratio to the anchor by wall and by CPU time (steadier when shared)."""
    return (f"{pairs / seconds[0]:6.3f} pairs/s ({anchor[0] / seconds[0]:4.2f}x wall, "
            f"{anchor[1] / seconds[1]:4.2f}x CPU)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=9)
    parser.add_argument("--size", default="256x144")
    parser.add_argument("--candidates", default="4,6,8,10,12")
    parser.add_argument("--weights", default=None, help="RAFT weights (.pth); default: found locally")
    parser.add_argument("--wan2gp", default=os.environ.get("WAN2GP_ROOT"), help="Wan2GP checkout (the anchor)")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--repeat", type=int, default=3, help="interleaved host/ours runs (medians)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    width, height = (int(v) for v in args.size.lower().split("x"))
    source = find_raft_weights("large", args.weights)
    with tempfile.TemporaryDirectory() as folder:
        if source is None:
            model = load_raft(None, "large", seed=0)
            weights_path = princeton_file(model, Path(folder))
            print("WEIGHTS: random (no RAFT weights on this machine) -- the accuracy figures below are "
                  "MEANINGLESS; only speed and memory mean anything.")
        else:
            model = load_raft(source, "large")
            weights_path = source.path if source.layout == "princeton" else princeton_file(model, Path(folder))
            print(f"WEIGHTS: {source.origin} ({source.path})")
        host, host_name = host_annotator(weights_path, args.wan2gp)
        footage = {"sample": list(sample_frames(width, height, args.frames, seed=0)),
                   "pan": photographic_pan(width, height, args.frames)}
        print(f"{args.frames} frames at {width}x{height}, CPU, {torch.get_num_threads()} threads; anchor: {host_name}")
        with torch.inference_mode():
            host(footage["sample"][:2])  # one-time costs (thread pools, kernels) paid before anything is timed
            run_ours(model, footage["sample"][:2], 2, None)
            for name, frames in footage.items():
                pairs = len(frames) - 1
                host_runs, cold_runs = [], []
                for _ in range(args.repeat):  # interleaved, host then ours: medians of each
                    anchor, t_host, m_host = timed(lambda: host(frames))
                    cold, t_cold, m_cold = timed(lambda: run_ours(model, frames, COLD_ITERATIONS, None))
                    host_runs.append((t_host, m_host))
                    cold_runs.append((t_cold, m_cold))
                t_host, m_host = medians(host_runs)
                t_cold, m_cold = medians(cold_runs)
                print(f"[{name}] host {pairs / t_host[0]:6.3f} pairs/s, RSS +{m_host / 2**20:6.1f} MiB | ours cold-20 "
                      f"{speed(pairs, t_cold, t_host)}, RSS +{m_cold / 2**20:6.1f} MiB "
                      f"({m_cold / max(1, m_host):4.2f}x); difference to host {mean_epe(cold, anchor):.4f} px")
                for n in (int(v) for v in args.candidates.split(",") if v):
                    warm, t_warm, _ = timed(lambda: run_ours(model, frames, COLD_ITERATIONS, n))
                    print(f"[{name}] warm {n:2d} updates: {speed(pairs, t_warm, t_host)} vs host, "
                          f"mean EPE to cold-20 over pairs 2+: {mean_epe(warm[1:], cold[1:]):.4f} px (goal < 0.1)")


def medians(runs: list[tuple[tuple[float, float], int]]) -> tuple[tuple[float, float], int]:
    """Median wall and CPU seconds and median peak RSS growth of repeated runs."""
    return ((statistics.median(t[0] for t, _ in runs), statistics.median(t[1] for t, _ in runs)),
            int(statistics.median(m for _, m in runs)))


if __name__ == "__main__":
    main()
