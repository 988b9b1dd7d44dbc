"""x264 settings for a flow guide: encode time, file size and PSNR of the decoded colours, side by side.

A flow guide is large smooth colour fields with sharp motion boundaries; VACE reads its colours, so the
encoder must keep hue and saturation (chroma) while being fast. Renders one real flow guide (DIS on
the bundled sample video, 832x480), encodes it with each candidate and decodes it back::

    python bench/encode_settings.py [--frames 81]

PSNR is over RGB against the rendered frames; "chroma err" is the 99.9th percentile of the largest
per-pixel channel error in levels (what a bad colour would show).
"""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

from wan2gp_structure_video.preprocessors.annotators.flow_dis import DisFlowBackend
from wan2gp_structure_video.preprocessors.render.flow_viz import MagnitudeHistogram, clip_scale, flow_to_rgb
from wan2gp_structure_video.preprocessors.video.sample_video import sample_frames
from wan2gp_structure_video.preprocessors.video.guide_writer import GUIDE_CRF, GUIDE_PRESET, GuideVideoWriter
from wan2gp_structure_video.preprocessors.video.video_io import iter_frames

CANDIDATES = [(17, "veryfast"), (17, "superfast"), (17, "ultrafast"), (20, "superfast"), (20, "ultrafast"),
              (23, "ultrafast"), (14, "ultrafast")]
TODAY = (17, "veryfast")


def render_guide(frames: int) -> list[np.ndarray]:
    source = np.stack(list(sample_frames(832, 480, frames + 1)))
    flows = DisFlowBackend().compute(source[:-1], source[1:])
    histogram = MagnitudeHistogram()
    for flow in flows:
        histogram.add(flow)
    scale = clip_scale(histogram)
    return [flow_to_rgb(flow, scale) for flow in flows]


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return 99.0 if mse == 0 else 10 * np.log10(255.0 ** 2 / mse)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=81)
    args = parser.parse_args()
    guide = render_guide(args.frames)
    reference = np.stack(guide)
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        for crf, preset in CANDIDATES:
            path = Path(folder) / f"g_{crf}_{preset}.mp4"
            started = time.perf_counter()
            with GuideVideoWriter(path, 832, 480, 16, crf=crf, preset=preset) as writer:
                for frame in guide:
                    writer.write(frame)
            seconds = time.perf_counter() - started
            decoded = np.stack(list(iter_frames(path)))
            error = np.abs(decoded.astype(np.int16) - reference.astype(np.int16)).max(-1)
            rows.append((crf, preset, seconds, path.stat().st_size, psnr(decoded, reference),
                         float(np.percentile(error, 99.9))))
    import av
    subsampled = np.stack([av.VideoFrame.from_ndarray(frame, format="rgb24").reformat(format="yuv420p")
                           .to_ndarray(format="rgb24") for frame in guide])
    ceiling_error = np.abs(subsampled.astype(np.int16) - reference.astype(np.int16)).max(-1)
    base = next(r for r in rows if (r[0], r[1]) == TODAY)
    print(f"{args.frames} guide frames 832x480; default now crf {GUIDE_CRF} preset {GUIDE_PRESET}")
    print(f"{'crf':>4} {'preset':>10} {'fps':>7} {'time x':>7} {'KiB':>7} {'size x':>7} {'PSNR dB':>8} {'chroma err':>10}")
    for crf, preset, seconds, size, quality, chroma in rows:
        mark = "  (before)" if (crf, preset) == TODAY else "  (chosen)" if (crf, preset) == (GUIDE_CRF, GUIDE_PRESET) else ""
        print(f"{crf:>4} {preset:>10} {args.frames / seconds:7.1f} {seconds / base[2]:7.2f} {size / 1024:7.0f} "
              f"{size / base[3]:7.2f} {quality:8.2f} {chroma:10.1f}{mark}")
    print(f"{'':>4} {'yuv420p only, no compression (the ceiling)':>47} {psnr(subsampled, reference):8.2f} "
          f"{float(np.percentile(ceiling_error, 99.9)):10.1f}")


if __name__ == "__main__":
    main()
