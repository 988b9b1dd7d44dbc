"""Temporal smoothing of pose rows: a One-Euro filter per person and keypoint, with gating.

Detector noise makes a still person's joints shake by a pixel or two each frame, and scores near
the threshold make joints blink. The One-Euro filter (Casiez et al. 2012) smooths hard when a
point is slow and little when it is fast, so still people calm down while fast motion keeps up.
Gating: a point enters when its score rises above ``enter`` and leaves only when it falls under
``leave`` (a point held visible between the two gets the drawing threshold's score, so it is
drawn); a point that (re)enters restarts its filter. People are matched to the previous frame's
tracks by the distance of their visible body points (greedy, nearest first).

Rows are those of ``annotators.pose_dwpose`` (normalised x, y); the filter works in pixels, so it
takes the frame size, and in seconds, so it takes the fps.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Optional

import numpy as np

from ..annotators.pose_dwpose import VISIBLE


#: On by default: bench/pose_jitter.py (1.5 px noise, 30 fps) measures a still person's jitter at
#: 0.31× and the fast tracks' lag at 0 frames (mean error +0.2 px sliding 20 px/frame, +0.9 px on a
#: 1.5 Hz wave) with the settings below.
DEFAULT_ON = True


@dataclass(frozen=True)
class KeypointFilter:
    """Filter settings: cut-offs in Hz, ``beta`` in 1/px, gates as scores, ``max_jump`` as a fraction
    of the frame diagonal a person may move between frames and stay the same track."""

    min_cutoff: float = 0.5
    beta: float = 0.2
    d_cutoff: float = 1.0
    enter: float = 0.35
    leave: float = 0.25
    max_jump: float = 0.2


@dataclass
class _Track:
    xy: np.ndarray          # (K, 2) filtered pixels
    dxy: np.ndarray         # (K, 2) filtered speed, px/s
    shown: np.ndarray       # (K,) gate state
    centre: np.ndarray = field(default_factory=lambda: np.zeros(2))


def _alpha(cutoff: np.ndarray | float, fps: float) -> np.ndarray | float:
    tau = 1.0 / (2 * math.pi * cutoff)
    return 1.0 / (1.0 + tau * fps)


def _centre(points: np.ndarray, shown: np.ndarray) -> Optional[np.ndarray]:
    body = shown[:18]
    return points[:18][body].mean(0) if body.any() else None


def _match(centres: list[Optional[np.ndarray]], tracks: list[_Track], limit: float) -> dict[int, int]:
    pairs = sorted((float(np.linalg.norm(c - t.centre)), i, j) for i, c in enumerate(centres) if c is not None
                   for j, t in enumerate(tracks))
    taken_people, taken_tracks, out = set(), set(), {}
    for dist, i, j in pairs:
        if dist <= limit and i not in taken_people and j not in taken_tracks:
            out[i] = j
            taken_people.add(i)
            taken_tracks.add(j)
    return out


def _step(track: _Track, xy: np.ndarray, shown: np.ndarray, fresh: np.ndarray, settings: KeypointFilter,
          fps: float) -> None:
    """One One-Euro update of every keypoint (fresh points restart at their measurement)."""
    dxy = (xy - track.xy) * fps
    a_d = _alpha(settings.d_cutoff, fps)
    dxy = a_d * dxy + (1 - a_d) * track.dxy
    cutoff = settings.min_cutoff + settings.beta * np.linalg.norm(dxy, axis=1, keepdims=True)
    a = _alpha(cutoff, fps)
    smoothed = a * xy + (1 - a) * track.xy
    track.xy = np.where(fresh[:, None], xy, smoothed)
    track.dxy = np.where(fresh[:, None], 0.0, dxy)
    track.shown = shown


def filter_rows(rows: np.ndarray, fps: float, width: int, height: int,
                settings: KeypointFilter = KeypointFilter()) -> np.ndarray:
    """Smoothed copy of ``rows`` (T, P, K, 3); the people keep their slots in each frame."""
    rows = np.asarray(rows, dtype=np.float32)
    out = rows.copy()
    scale = np.array([width, height], dtype=np.float64)
    limit = settings.max_jump * float(np.hypot(width, height))
    tracks: list[_Track] = []
    for t, row in enumerate(rows):
        present = [p for p in range(row.shape[0]) if row[p, :, 2].max() > 0]
        points = {p: row[p, :, :2].astype(np.float64) * scale for p in present}
        rough = {p: row[p, :, 2] > settings.enter for p in present}
        matched = _match([_centre(points[p], rough[p]) for p in present], tracks, limit)
        next_tracks: list[_Track] = []
        for i, p in enumerate(present):
            score = row[p, :, 2]
            track = tracks[matched[i]] if i in matched else None
            was = track.shown if track is not None else np.zeros(len(score), dtype=bool)
            shown = np.where(was, score >= settings.leave, score > settings.enter)
            if track is None:
                track = _Track(points[p].copy(), np.zeros_like(points[p]), shown)
            fresh = shown & ~was
            _step(track, points[p], shown, fresh, settings, fps)
            centre = _centre(track.xy, shown)
            track.centre = centre if centre is not None else track.centre
            next_tracks.append(track)
            out[t, p, :, :2] = np.where(shown[:, None], track.xy / scale, row[p, :, :2])
            out[t, p, :, 2] = np.where(shown, np.maximum(score, VISIBLE + 1e-3), np.minimum(score, VISIBLE))
        tracks = next_tracks
    return out
