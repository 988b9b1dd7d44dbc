"""Pose keypoint filter: jitter on a still person and lag on fast motion, filter off vs on.

Synthetic tracks (640×480, 30 fps, 18 body points, detector-like Gaussian noise of ``--noise`` px
and scores wandering around the 0.3 threshold for a few points). Printed side by side:
- still: mean frame-to-frame movement (px/frame) and RMS error to the truth; blinks (visibility changes)
- fast (``--speed`` px/frame sideways, then a sinusoid): mean error to the truth (px) and lag in
  frames (the shift of the filtered track that best fits the truth).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from wan2gp_structure_video.preprocessors.timeline.keypoint_filter import KeypointFilter, filter_rows  # noqa: E402

W, H, FPS = 640, 480, 30.0
BODY = np.array([(.5, .15), (.5, .25), (.42, .26), (.38, .4), (.36, .52), (.58, .26), (.62, .4), (.64, .52),
                 (.45, .52), (.45, .7), (.45, .88), (.55, .52), (.55, .7), (.55, .88), (.48, .13), (.52, .13),
                 (.46, .14), (.54, .14)]) * [W, H]


def make_rows(truth: np.ndarray, noise: float, rng: np.random.Generator) -> np.ndarray:
    """Rows (T, 1, 134, 3) from true pixel tracks (T, 18, 2); points 14-17 have scores near 0.3."""
    t = len(truth)
    rows = np.zeros((t, 1, 134, 3), dtype=np.float32)
    rows[:, 0, :18, :2] = (truth + rng.normal(0, noise, truth.shape)) / [W, H]
    rows[:, 0, :18, 2] = 0.9
    rows[:, 0, 14:18, 2] = 0.3 + rng.normal(0, 0.04, (t, 4))
    return rows


def jitter(track: np.ndarray) -> float:
    return float(np.linalg.norm(np.diff(track, axis=0), axis=-1).mean())


def lag_frames(track: np.ndarray, truth: np.ndarray) -> int:
    errors = [np.abs(track[s:] - truth[:len(truth) - s]).mean() for s in range(0, 8)]
    return int(np.argmin(errors))


def blinks(rows: np.ndarray) -> int:
    """Visibility changes of the four head points whose scores wander around the threshold."""
    shown = rows[:, 0, 14:18, 2] > 0.3
    return int(np.abs(np.diff(shown.astype(int), axis=0)).sum())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=300)
    parser.add_argument("--noise", type=float, default=1.5, help="detector noise, px (sigma)")
    parser.add_argument("--speed", type=float, default=20.0, help="fast motion, px per frame")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    rng = np.random.default_rng(args.seed)
    settings = KeypointFilter()
    t = np.arange(args.frames)
    still = np.repeat(BODY[None], args.frames, 0)
    slide = BODY[None] + np.stack([(t * args.speed) % (W * 0.6) - W * 0.3, 0 * t], 1)[:, None]
    wave = BODY[None] + np.stack([np.sin(t / FPS * 2 * np.pi * 1.5) * args.speed * 3, 0 * t], 1)[:, None]
    print(f"One-Euro {settings}; noise {args.noise} px, {args.frames} frames at {FPS:g} fps, {W}x{H}")
    print(f"{'case':<22}{'metric':<28}{'off':>10}{'on':>10}{'on/off':>9}")
    for name, truth in (("still person", still), ("slide %g px/frame" % args.speed, slide),
                        ("wave 1.5 Hz", wave)):
        rows = make_rows(truth, args.noise, rng)
        smooth = filter_rows(rows, FPS, W, H, settings)
        if name == "slide %g px/frame" % args.speed:  # drop the wrap-around frames from the error
            keep = np.r_[True, np.abs(np.diff(truth[:, 0, 0])) < W * 0.3]
            keep &= np.r_[True, keep[:-1]] & np.r_[True, True, keep[:-2]]
        else:
            keep = np.ones(args.frames, dtype=bool)
        off_xy, on_xy = rows[:, 0, :14, :2] * [W, H], smooth[:, 0, :14, :2] * [W, H]
        truth14 = truth[:, :14]
        lines = []
        if name == "still person":
            lines.append(("jitter px/frame", jitter(off_xy), jitter(on_xy)))
            lines.append(("RMS error px", float(np.sqrt(((off_xy - truth14) ** 2).sum(-1).mean())),
                          float(np.sqrt(((on_xy - truth14) ** 2).sum(-1).mean()))))
            lines.append(("blinks (4 head points)", blinks(rows), blinks(smooth)))
        else:
            err_off = np.linalg.norm(off_xy - truth14, axis=-1)[keep].mean()
            err_on = np.linalg.norm(on_xy - truth14, axis=-1)[keep].mean()
            lines.append(("mean error px", float(err_off), float(err_on)))
            lines.append(("lag frames", lag_frames(off_xy[keep], truth14[keep]), lag_frames(on_xy[keep], truth14[keep])))
        for metric, off, on in lines:
            ratio = f"{on / off:8.2f}" if off else "      -"
            print(f"{name:<22}{metric:<28}{off:>10.2f}{on:>10.2f}{ratio}")
        name = ""


if __name__ == "__main__":
    main()
