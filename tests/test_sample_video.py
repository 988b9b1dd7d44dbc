"""The bundled sample: long enough for the default target, a camera pan + zoom, objects of its own."""
from __future__ import annotations

import numpy as np

from wan2gp_structure_video.preprocessors.annotators.flow_dis import DisFlowBackend
from wan2gp_structure_video.preprocessors.video.sample_video import SAMPLE_FPS, SAMPLE_FRAMES, sample_frames


def _flow(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return DisFlowBackend("fine").compute(a[None], b[None])[0]


def test_default_sample_covers_the_default_target_without_stretching():
    assert SAMPLE_FRAMES / SAMPLE_FPS >= 81 / 16 + 0.04  # >= 5.1 s: 81 frames at 16 fps need 5.06 s


def test_camera_pans_right_and_zooms_in_while_objects_move_on_their_own():
    frames = list(sample_frames(320, 180, SAMPLE_FRAMES, seed=0))
    assert len(frames) == SAMPLE_FRAMES
    flow = _flow(frames[60], frames[61])
    height, width = flow.shape[:2]
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    # Fit the camera: one affine motion for the whole frame (least squares on the land below the sky).
    land = ys > height * 0.45
    design = np.stack([xs[land], ys[land], np.ones(land.sum(), np.float32)], 1)
    coef_u, *_ = np.linalg.lstsq(design, flow[..., 0][land], rcond=None)
    coef_v, *_ = np.linalg.lstsq(design, flow[..., 1][land], rcond=None)
    pan = coef_u @ [width / 2, height / 2, 1]
    zoom = (coef_u[0] + coef_v[1]) / 2  # divergence: > 0 when the camera zooms in
    assert pan < -0.5  # the camera pans right: the scene moves left
    assert zoom > 0.0005
    # Independently moving objects: where the camera model leaves large residual motion.
    model = np.stack([np.stack([xs, ys, np.ones_like(xs)], -1) @ coef_u,
                      np.stack([xs, ys, np.ones_like(xs)], -1) @ coef_v], -1)
    residual = np.hypot(*(flow - model).transpose(2, 0, 1))
    assert np.median(residual[land]) < 0.3
    assert (residual > 2.0).mean() > 0.005  # the ball, the cart, the bird
    # Natural-looking texture: every part of the frame has detail for the flow to follow.
    grey = frames[60].mean(axis=2)
    blocks = grey[:176, :320].reshape(11, 16, 20, 16).std(axis=(1, 3))
    assert (blocks > 1.0).mean() > 0.8
