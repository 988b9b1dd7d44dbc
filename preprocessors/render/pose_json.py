"""OpenPose-style keypoints JSON for one pose row (what ControlNet/OpenPose tools read).

Each person: ``pose_keypoints_2d`` (18 body points, OpenPose COCO order with the neck),
``face_keypoints_2d`` (68), ``hand_left_keypoints_2d`` / ``hand_right_keypoints_2d`` (21 each),
flat ``x, y, c`` lists in frame pixels; points at or under the visibility threshold are 0, 0, 0
as OpenPose writes undetected points. DWPose's first hand block (92-112) is the person's left
hand (COCO-WholeBody order), the second the right. The six foot points are not part of this format.
"""
from __future__ import annotations

import json
from typing import Any

import numpy as np

from ..annotators.pose_dwpose import VISIBLE

_PARTS = {"pose_keypoints_2d": slice(0, 18), "face_keypoints_2d": slice(24, 92),
          "hand_left_keypoints_2d": slice(92, 113), "hand_right_keypoints_2d": slice(113, 134)}


def _flat(points: np.ndarray, width: int, height: int) -> list[float]:
    out = np.zeros((len(points), 3), dtype=np.float64)
    seen = points[:, 2] > VISIBLE
    out[seen, 0] = points[seen, 0] * width
    out[seen, 1] = points[seen, 1] * height
    out[seen, 2] = points[seen, 2]
    return [round(float(v), 3) for v in out.reshape(-1)]


def openpose_frame(row: np.ndarray, width: int, height: int) -> dict[str, Any]:
    """``{"version", "canvas_width", "canvas_height", "people": [...]}`` for one row at ``width``×``height``."""
    row = np.asarray(row, dtype=np.float32)
    people = [person for person in row if person[:, 2].max() > 0]
    return {"version": 1.3, "canvas_width": int(width), "canvas_height": int(height),
            "people": [{name: _flat(person[part], width, height) for name, part in _PARTS.items()}
                       for person in people]}


def openpose_json(row: np.ndarray, width: int, height: int) -> str:
    """:func:`openpose_frame` as compact JSON text."""
    return json.dumps(openpose_frame(row, width, height), separators=(",", ":"))
