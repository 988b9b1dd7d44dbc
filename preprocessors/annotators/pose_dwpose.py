"""DWPose whole-body keypoints with onnxruntime, numbers as Wan2GP's ``preprocessing/dwpose``.

Row layout (one per frame): ``float32 (MAX_PEOPLE, 134, 3)`` = (x, y, score). x and y are
normalised to the frame (0..1, as the host's ``draw_pose`` takes them); score is the model's raw
confidence (a point is drawn when score > ``VISIBLE``, 0.3 as the host). Keypoint order is the
host's after its re-ordering: 0-17 body in OpenPose order (1 = neck, scored 1/0 from the
shoulders), 18-23 feet, 24-91 face (68), 92-112 first hand, 113-133 second hand (21 each).
People beyond those found are all zeros. Like the host, a frame where the detector finds nobody
still runs the pose model once on the whole frame.

The host feeds the networks BGR (it flips the RGB frame) resized so its short side is 1024
(rounded to 64): we do the same so that the same frames give the same keypoints.
"""
from __future__ import annotations

from typing import Any, Optional

import numpy as np

MAX_PEOPLE = 8
N_KEYPOINTS = 134
VISIBLE = 0.3
RESIZE_SIZE = 1024
DET_SIZE = (640, 640)
POSE_SIZE = (288, 384)  # (w, h)
_MEAN = np.array([123.675, 116.28, 103.53])
_STD = np.array([58.395, 57.12, 57.375])
# OpenPose body slots filled from mmpose's order (after the neck is inserted at 17).
_MMPOSE = [17, 6, 8, 10, 7, 9, 12, 14, 16, 13, 15, 2, 1, 4, 3]
_OPENPOSE = [1, 2, 3, 4, 6, 7, 8, 9, 10, 12, 13, 14, 15, 16, 17]


def empty_rows(count: int) -> np.ndarray:
    return np.zeros((count, MAX_PEOPLE, N_KEYPOINTS, 3), dtype=np.float32)


# --------------------------------------------------------------------------- detector

def network_image(frame_rgb: np.ndarray, resize_size: int = RESIZE_SIZE) -> np.ndarray:
    """The BGR image the host's networks see: short side ``resize_size``, both sides multiples of 64."""
    import cv2

    bgr = np.ascontiguousarray(frame_rgb[..., ::-1])
    h, w = bgr.shape[:2]
    nh, nw = network_size(h, w, resize_size)
    grow = resize_size > min(h, w)
    return cv2.resize(bgr, (nw, nh), interpolation=cv2.INTER_LANCZOS4 if grow else cv2.INTER_AREA)


def network_size(height: int, width: int, resize_size: int = RESIZE_SIZE) -> tuple[int, int]:
    """(h, w) of the image the networks see for a ``height``×``width`` frame (the host draws at it too)."""
    k = float(resize_size) / min(height, width)
    return int(np.round(height * k / 64.0)) * 64, int(np.round(width * k / 64.0)) * 64


def _letterbox(img: np.ndarray) -> tuple[np.ndarray, float]:
    import cv2

    ratio = min(DET_SIZE[0] / img.shape[0], DET_SIZE[1] / img.shape[1])
    rh, rw = int(img.shape[0] * ratio), int(img.shape[1] * ratio)
    canvas = np.full((DET_SIZE[0], DET_SIZE[1], 3), 114, dtype=np.uint8)
    canvas[:rh, :rw] = cv2.resize(img, (rw, rh), interpolation=cv2.INTER_LINEAR).astype(np.uint8)
    return np.ascontiguousarray(canvas.transpose(2, 0, 1), dtype=np.float32), ratio


def _grid_decode(raw: np.ndarray) -> np.ndarray:
    """YOLOX's (cx, cy, w, h) from offsets on the stride-8/16/32 grids."""
    grids, strides = [], []
    for stride in (8, 16, 32):
        gh, gw = DET_SIZE[0] // stride, DET_SIZE[1] // stride
        xs, ys = np.meshgrid(np.arange(gw), np.arange(gh))
        grids.append(np.stack((xs, ys), 2).reshape(-1, 2))
        strides.append(np.full((gh * gw, 1), stride))
    grid, stride = np.concatenate(grids), np.concatenate(strides)
    out = raw.copy()
    out[:, :2] = (out[:, :2] + grid) * stride
    out[:, 2:4] = np.exp(out[:, 2:4]) * stride
    return out


def _nms(boxes: np.ndarray, scores: np.ndarray, threshold: float) -> list[int]:
    x1, y1, x2, y2 = boxes.T
    areas = (x2 - x1 + 1) * (y2 - y1 + 1)
    order, keep = scores.argsort()[::-1], []
    while order.size:
        best, rest = order[0], order[1:]
        keep.append(best)
        iw = np.maximum(0.0, np.minimum(x2[best], x2[rest]) - np.maximum(x1[best], x1[rest]) + 1)
        ih = np.maximum(0.0, np.minimum(y2[best], y2[rest]) - np.maximum(y1[best], y1[rest]) + 1)
        overlap = iw * ih / (areas[best] + areas[rest] - iw * ih)
        order = rest[overlap <= threshold]
    return keep


def detect_people(session: Any, img: np.ndarray) -> np.ndarray:
    """Person boxes (n, 4) xyxy in ``img`` pixels: score > 0.1 for NMS (IoU 0.45), then kept > 0.3."""
    tensor, ratio = _letterbox(img)
    raw = session.run(None, {session.get_inputs()[0].name: tensor[None]})[0]
    pred = _grid_decode(raw[0])
    person = pred[:, 4] * pred[:, 5]
    boxes = np.stack([pred[:, 0] - pred[:, 2] / 2., pred[:, 1] - pred[:, 3] / 2.,
                      pred[:, 0] + pred[:, 2] / 2., pred[:, 1] + pred[:, 3] / 2.], 1) / ratio
    mask = person > 0.1
    if not mask.any():
        return np.zeros((0, 4))
    boxes, person = boxes[mask], person[mask]
    keep = _nms(boxes, person, 0.45)
    # float64 from here, as the host's boxes (its NMS stacks them with float64 class ids)
    return boxes[keep][person[keep] > 0.3].astype(np.float64)


# --------------------------------------------------------------------------- pose

def _crop(img: np.ndarray, box: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The box (padded ×1.25, widened to 3:4) warped to 288×384 and normalised; its centre and size."""
    import cv2

    center = np.array([box[0] + box[2], box[1] + box[3]]) * 0.5
    size = np.array([box[2] - box[0], box[3] - box[1]]) * 1.25
    aspect = POSE_SIZE[0] / POSE_SIZE[1]
    size = np.array([size[0], size[0] / aspect]) if size[0] > size[1] * aspect else np.array([size[1] * aspect, size[1]])
    dw, dh = POSE_SIZE

    def corners(c: np.ndarray, half_w: float) -> np.ndarray:
        # float32 like the host's: the third point comes from the two stored float32 points
        pts = np.zeros((3, 2), dtype=np.float32)
        pts[0], pts[1] = c, c + np.array([0., -half_w])
        d = pts[0] - pts[1]
        pts[2] = pts[1] + np.r_[-d[1], d[0]]
        return pts

    warp = cv2.getAffineTransform(corners(center, size[0] * 0.5),
                                  corners(np.array([dw * 0.5, dh * 0.5]), dw * 0.5))
    patch = cv2.warpAffine(img, warp, (int(dw), int(dh)), flags=cv2.INTER_LINEAR)
    return (patch - _MEAN) / _STD, center, size


def _decode_simcc(simcc_x: np.ndarray, simcc_y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Arg-max locations (in 288×384 crop pixels, split ratio 2) and the weaker of the two maxima."""
    sx, sy = simcc_x.reshape(-1, simcc_x.shape[-1]), simcc_y.reshape(-1, simcc_y.shape[-1])
    locs = np.stack((sx.argmax(1), sy.argmax(1)), -1).astype(np.float32)
    vals = np.minimum(sx.max(1), sy.max(1))
    locs[vals <= 0.] = -1
    return locs / 2.0, vals


def estimate_pose(session: Any, img: np.ndarray, boxes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """133 whole-body keypoints (n, 133, 2) in ``img`` pixels and scores (n, 133), one per box."""
    if len(boxes) == 0:
        boxes = np.array([[0, 0, img.shape[1], img.shape[0]]])
    name = session.get_inputs()[0].name
    outputs = [o.name for o in session.get_outputs()]
    points, scores = [], []
    for box in boxes:
        patch, center, size = _crop(img, np.asarray(box))
        simcc_x, simcc_y = session.run(outputs, {name: [patch.transpose(2, 0, 1)]})[:2]
        locs, vals = _decode_simcc(simcc_x, simcc_y)
        points.append(locs / np.array(POSE_SIZE) * size + center - size / 2)
        scores.append(vals)
    return np.array(points), np.array(scores)


def openpose_layout(points: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """(n, 134, 3): neck inserted at 17 then the body re-ordered to OpenPose's 18 points."""
    info = np.concatenate((points, scores[..., None]), -1)
    neck = info[:, [5, 6]].mean(1)
    neck[:, 2] = np.logical_and(info[:, 5, 2] > VISIBLE, info[:, 6, 2] > VISIBLE).astype(int)
    out = np.insert(info, 17, neck, axis=1)
    out[:, _OPENPOSE] = out[:, _MMPOSE]
    return out


def frame_row(sessions: tuple[Any, Any], frame_rgb: np.ndarray, resize_size: int = RESIZE_SIZE) -> np.ndarray:
    """One frame's row (see the module docstring) from the (detector, pose) sessions."""
    img = network_image(frame_rgb, resize_size)
    boxes = detect_people(sessions[0], img)
    people = openpose_layout(*estimate_pose(sessions[1], img, boxes))
    row = np.zeros((MAX_PEOPLE, N_KEYPOINTS, 3), dtype=np.float32)
    kept = people[:MAX_PEOPLE]
    h, w = img.shape[:2]
    row[:len(kept), :, 0] = kept[..., 0] / float(w)
    row[:len(kept), :, 1] = kept[..., 1] / float(h)
    row[:len(kept), :, 2] = kept[..., 2]
    return row


def estimate(sessions: Any, frames: np.ndarray, *, resize_size: int = RESIZE_SIZE,
             cancelled: Optional[Any] = None) -> np.ndarray:
    """Rows ``(B, MAX_PEOPLE, 134, 3) float32`` for RGB uint8 ``frames`` (B, H, W, 3).

    ``sessions`` is a placed :class:`~.pose_sessions.PoseSessions` or a (detector, pose) pair;
    ``cancelled()`` is asked between frames.
    """
    pair = sessions.pair() if hasattr(sessions, "pair") else sessions
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
        raise ValueError(f"pose frames must be uint8 (B, H, W, 3) RGB, not {frames.dtype} {frames.shape}")
    rows = empty_rows(len(frames))
    for i, frame in enumerate(frames):
        if cancelled is not None and cancelled():
            break
        rows[i] = frame_row(pair, frame, resize_size)
    return rows
