"""Skeleton pictures from pose rows, drawn as Wan2GP's ``draw_pose`` draws them (on black).

Same limbs, colours, widths and radii as the host, so one row gives the host's picture: body
limbs as filled ellipses 4 px thick, dimmed to 60 %, then 4 px joints; face points 3 px white;
hand bones 2 px in 20 hues with 4 px joints. The host draws into an RGB-ordered list of colours
and then flips the canvas's channels; :func:`draw_pose` returns that flipped picture, as the
host's annotator hands it to VACE. Rows are those of ``annotators.pose_dwpose`` (normalised x, y).
"""
from __future__ import annotations

import colorsys
import math

import numpy as np

from ..annotators.pose_dwpose import RESIZE_SIZE, VISIBLE, network_size

_LIMBS = [(2, 3), (2, 6), (3, 4), (4, 5), (6, 7), (7, 8), (2, 9), (9, 10), (10, 11), (2, 12), (12, 13),
          (13, 14), (2, 1), (1, 15), (15, 17)]  # 1-based pairs; the host draws only these first 17 ...
_LIMBS += [(1, 16), (16, 18)]                   # ... of its 19 (the two ear-shoulder limbs are skipped)
_COLOURS = [(255, 0, 0), (255, 85, 0), (255, 170, 0), (255, 255, 0), (170, 255, 0), (85, 255, 0),
            (0, 255, 0), (0, 255, 85), (0, 255, 170), (0, 255, 255), (0, 170, 255), (0, 85, 255),
            (0, 0, 255), (85, 0, 255), (170, 0, 255), (255, 0, 255), (255, 0, 170), (255, 0, 85)]
_HAND_BONES = [(0, 1), (1, 2), (2, 3), (3, 4), (0, 5), (5, 6), (6, 7), (7, 8), (0, 9), (9, 10), (10, 11),
               (11, 12), (0, 13), (13, 14), (14, 15), (15, 16), (0, 17), (17, 18), (18, 19), (19, 20)]
_EPS = 0.01
FACE = slice(24, 92)
HANDS = (slice(92, 113), slice(113, 134))


def _people(row: np.ndarray) -> np.ndarray:
    """The people present in ``row`` (any point scored), x/y of hidden points set to -1."""
    row = np.asarray(row, dtype=np.float32)
    present = row[..., 2].max(axis=1) > 0
    people = row[present].copy()
    people[people[..., 2] <= VISIBLE, :2] = -1
    return people


def _draw_body(canvas: np.ndarray, people: np.ndarray) -> np.ndarray:
    import cv2

    h, w = canvas.shape[:2]
    for limb, colour in zip(_LIMBS, _COLOURS):
        for person in people:
            a, b = person[limb[0] - 1], person[limb[1] - 1]
            if a[2] <= VISIBLE or b[2] <= VISIBLE:
                continue
            xs, ys = np.array([a[0], b[0]]) * float(w), np.array([a[1], b[1]]) * float(h)
            length = ((ys[0] - ys[1]) ** 2 + (xs[0] - xs[1]) ** 2) ** 0.5
            angle = math.degrees(math.atan2(ys[0] - ys[1], xs[0] - xs[1]))
            polygon = cv2.ellipse2Poly((int(np.mean(xs)), int(np.mean(ys))), (int(length / 2), 4), int(angle), 0, 360, 1)
            cv2.fillConvexPoly(canvas, polygon, colour)
    canvas = (canvas * 0.6).astype(np.uint8)
    for k, colour in enumerate(_COLOURS):
        for person in people:
            if person[k, 2] > VISIBLE:
                cv2.circle(canvas, (int(person[k, 0] * w), int(person[k, 1] * h)), 4, colour, thickness=-1)
    return canvas


def _draw_hands(canvas: np.ndarray, people: np.ndarray) -> None:
    import cv2

    h, w = canvas.shape[:2]
    hands = [person[part, :2] for part in HANDS for person in people]  # the host's order: all first hands first
    for hand in hands:
        for i, (p, q) in enumerate(_HAND_BONES):
            x1, y1, x2, y2 = int(hand[p, 0] * w), int(hand[p, 1] * h), int(hand[q, 0] * w), int(hand[q, 1] * h)
            if min(x1, y1, x2, y2) > _EPS:
                colour = np.array(colorsys.hsv_to_rgb(i / float(len(_HAND_BONES)), 1.0, 1.0)) * 255
                cv2.line(canvas, (x1, y1), (x2, y2), colour, thickness=2)
        for x, y in hand:
            x, y = int(x * w), int(y * h)
            if x > _EPS and y > _EPS:
                cv2.circle(canvas, (x, y), 4, (0, 0, 255), thickness=-1)


def _draw_face(canvas: np.ndarray, people: np.ndarray) -> None:
    import cv2

    h, w = canvas.shape[:2]
    for person in people:
        for x, y in person[FACE, :2]:
            x, y = int(x * w), int(y * h)
            if x > _EPS and y > _EPS:
                cv2.circle(canvas, (x, y), 3, (255, 255, 255), thickness=-1)


def draw_pose(row: np.ndarray, height: int, width: int, *, body: bool = True, face: bool = True,
              hands: bool = False) -> np.ndarray:
    """The host's picture (uint8 ``(height, width, 3)``, channels flipped as the host's) of one row."""
    people = _people(row)
    canvas = np.zeros((height, width, 3), dtype=np.uint8)
    if body:
        canvas = _draw_body(canvas, people)
    if hands:
        _draw_hands(canvas, people)
    if face:
        _draw_face(canvas, people)
    return np.ascontiguousarray(canvas[..., ::-1])


def draw_like_host(row: np.ndarray, height: int, width: int, *, face: bool = True, hands: bool = False,
                   resize_size: int = RESIZE_SIZE) -> np.ndarray:
    """The host annotator's frame: drawn at the network size of a ``height``×``width`` frame (short
    side 1024), then resized to the frame, so line widths scale as in Wan2GP's guides."""
    import cv2

    net_h, net_w = network_size(height, width, resize_size)
    canvas = draw_pose(row, net_h, net_w, face=face, hands=hands)
    shrink = cv2.INTER_LANCZOS4 if height * width > net_h * net_w else cv2.INTER_AREA
    return cv2.resize(canvas, (width, height), interpolation=shrink)
