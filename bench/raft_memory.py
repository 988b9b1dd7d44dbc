"""RAFT: the host-style way versus ours, side by side in one run.

Host style (what Wan2GP's own flow annotator does): every frame moved to the device as fp32 before
the first pair, one pair at a time, every flow kept. Ours: batched pairs, autocast (fp16 on CUDA),
only the current batch on the device, flows streamed out.

Prints frames/s, peak device memory (CUDA) or peak RSS growth (CPU) and the flow difference, and the
ratios against the targets (≥ 2× frames/s, ≤ 0.5× peak memory, ≤ 0.1 px mean difference).

    python bench/raft_memory.py                      # 81 frames at 832×480 on CUDA when present
    python bench/raft_memory.py --frames 9 --iterations 6   # a quick CPU run
"""
from __future__ import annotations

import argparse
import gc
import threading
import time

import numpy as np
import torch
from torchvision.models.optical_flow import raft_large

from wan2gp_structure_video.memory import MemoryMonitor, process_rss, run_with_backoff
from wan2gp_structure_video.preprocessors.annotators.flow_raft import RaftFlowBackend, estimate_bytes_per_pair, padding_for
from wan2gp_structure_video.preprocessors.weights.raft_weights import find_raft_weights, load_raft
from wan2gp_structure_video.preprocessors.video.sample_video import sample_frames


class PeakRss:
    """Samples RSS in a thread; ``peak - start`` approximates the working memory of a CPU run."""

    def __init__(self) -> None:
        self.start = self.peak = process_rss()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(0.01):
            self.peak = max(self.peak, process_rss())

    def __enter__(self) -> "PeakRss":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, process_rss())


def host_style(model, frames: list[np.ndarray], device: torch.device, iterations: int) -> list[np.ndarray]:
    height, width = frames[0].shape[:2]
    left, right, top, bottom = padding_for(height, width)
    video = torch.from_numpy(np.stack(frames)).to(device).permute(0, 3, 1, 2).float()  # all frames, fp32
    video = torch.nn.functional.pad(video / 127.5 - 1.0, (left, right, top, bottom), mode="replicate")
    flows = []
    with torch.inference_mode():
        for k in range(len(frames) - 1):
            flow = model(video[k:k + 1], video[k + 1:k + 2], num_flow_updates=iterations)[-1]
            flows.append(flow[0, :, top:top + height, left:left + width].permute(1, 2, 0))  # kept on the device
    out = [f.float().cpu().numpy() for f in flows]
    del video, flows
    return out


def ours(model, frames: list[np.ndarray], device: torch.device, iterations: int, batch: int) -> list[np.ndarray]:
    backend = RaftFlowBackend(model, device, iterations=iterations, precision="auto")
    pairs = ((frames[k], frames[k + 1]) for k in range(len(frames) - 1))

    def compute(items):
        return list(backend.compute(np.stack([p[0] for p in items]), np.stack([p[1] for p in items])))

    return list(run_with_backoff(pairs, compute, batch))


def measure(label: str, run, device: torch.device):
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
    started = time.perf_counter()
    with PeakRss() as rss:
        flows = run()
        if device.type == "cuda":
            torch.cuda.synchronize()
    seconds = time.perf_counter() - started
    peak = (torch.cuda.max_memory_allocated() - base) if device.type == "cuda" else rss.peak - rss.start
    return flows, seconds, peak


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=81)
    parser.add_argument("--size", default="832x480")
    parser.add_argument("--iterations", type=int, default=20)
    parser.add_argument("--batch", type=int, default=0, help="our batch size (default: fitted to free memory)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args()
    width, height = (int(v) for v in args.size.lower().split("x"))
    device = torch.device(args.device)
    torch.manual_seed(0)
    source = find_raft_weights("large", None)
    model = (load_raft(source, "large") if source else raft_large(weights=None, progress=False)).eval().to(device)
    weights = source.origin if source else "random weights (no local RAFT weights found)"
    frames = list(sample_frames(width, height, args.frames, seed=0))
    batch = args.batch
    if not batch:
        if device.type == "cuda":
            free = MemoryMonitor(str(device)).snapshot().free
            batch = max(1, min(4, int(free * 0.5 // estimate_bytes_per_pair(height, width))))
        else:
            batch = 4
    print(f"RAFT-large, {args.frames} frames at {width}x{height}, {args.iterations} iterations, "
          f"{device} ({torch.cuda.get_device_name(device) if device.type == 'cuda' else 'CPU'}), {weights}")
    ref, t_host, m_host = measure("host", lambda: host_style(model, frames, device, args.iterations), device)
    got, t_ours, m_ours = measure("ours", lambda: ours(model, frames, device, args.iterations, batch), device)
    pairs = args.frames - 1
    epe = float(np.mean([np.linalg.norm(a - b, axis=-1).mean() for a, b in zip(got, ref)]))
    kind = "peak device memory" if device.type == "cuda" else "peak RSS growth"
    print(f"host style : {pairs / t_host:7.2f} pairs/s, {kind} {m_host / 2**20:8.1f} MiB")
    print(f"ours (b={batch:2d}): {pairs / t_ours:7.2f} pairs/s, {kind} {m_ours / 2**20:8.1f} MiB")
    print(f"speed ratio  ours/host = {t_host / t_ours:.2f}x   (target >= 2x on CUDA)")
    print(f"memory ratio ours/host = {m_ours / max(1, m_host):.2f}   (target <= 0.5)")
    print(f"mean flow difference to fp32 host style = {epe:.4f} px   (target <= 0.1)")


if __name__ == "__main__":
    main()
