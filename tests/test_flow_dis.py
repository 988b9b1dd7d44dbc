"""OpenCV DIS backend: accuracy on a real photograph moved by known sub-pixel motions."""
from __future__ import annotations

import cv2
import numpy as np
import pytest
import skimage.data

from wan2gp_structure_video.errors import OptionError
from wan2gp_structure_video.preprocessors.annotators.flow_base import FlowBackend
from wan2gp_structure_video.preprocessors.annotators.flow_dis import DIS_PRESETS, DisFlowBackend

MARGIN = 24  # pixels near the border see content that moved in from outside the frame


def _photo(name: str) -> np.ndarray:
    image = getattr(skimage.data, name)()  # bundled with scikit-image: no download
    return np.ascontiguousarray(image if image.ndim == 3 else np.repeat(image[..., None], 3, axis=2))


def _move(image: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """``image`` moved by the affine ``matrix``: moved(M·x) = image(x), so the flow at x is M·x − x."""
    height, width = image.shape[:2]
    return cv2.warpAffine(image, matrix, (width, height), flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REFLECT)


def _true_flow(matrix: np.ndarray, height: int, width: int) -> np.ndarray:
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float64)
    return np.stack([matrix[0, 0] * xs + matrix[0, 1] * ys + matrix[0, 2] - xs,
                     matrix[1, 0] * xs + matrix[1, 1] * ys + matrix[1, 2] - ys], axis=-1)


def _motions(height: int, width: int) -> list[tuple[str, np.ndarray]]:
    motions = [(f"shift {dx},{dy}", np.array([[1, 0, dx], [0, 1, dy]], dtype=np.float64))
               for dx, dy in ((1.3, -0.7), (2.5, 0.25), (-0.4, 3.6))]
    motions += [(f"rotate {angle}°", cv2.getRotationMatrix2D((width / 2, height / 2), angle, 1.0))
                for angle in (0.5, -1.0)]
    return motions


def _mean_epe(flow: np.ndarray, truth: np.ndarray) -> float:
    error = np.linalg.norm(flow - truth, axis=-1)
    return float(error[MARGIN:-MARGIN, MARGIN:-MARGIN].mean())


@pytest.mark.parametrize("name", ["astronaut", "coffee", "camera"])
def test_dis_accuracy_on_real_photo(name: str) -> None:
    image = _photo(name)
    height, width = image.shape[:2]
    motions = _motions(height, width)
    first = np.stack([image] * len(motions))
    second = np.stack([_move(image, matrix) for _, matrix in motions])
    flows = DisFlowBackend().compute(first, second)
    assert flows.shape == (len(motions), height, width, 2) and flows.dtype == np.float32
    errors = {label: _mean_epe(flow, _true_flow(matrix, height, width))
              for (label, matrix), flow in zip(motions, flows)}
    assert max(errors.values()) <= 0.5, errors


def test_fine_preset_is_more_accurate() -> None:
    image = _photo("astronaut")
    height, width = image.shape[:2]
    label, matrix = _motions(height, width)[0]
    second = _move(image, matrix)[None]
    truth = _true_flow(matrix, height, width)
    medium = _mean_epe(DisFlowBackend("medium").compute(image[None], second)[0], truth)
    fine = _mean_epe(DisFlowBackend("fine").compute(image[None], second)[0], truth)
    assert fine < medium <= 0.5


def test_threads_do_not_change_results() -> None:
    image = _photo("chelsea")
    height, width = image.shape[:2]
    first = np.stack([image] * 4)
    second = np.stack([_move(image, m) for _, m in _motions(height, width)[:4]])
    one = DisFlowBackend(threads=1).compute(first, second)
    many = DisFlowBackend(threads=4).compute(first, second)
    again = DisFlowBackend(threads=4).compute(first, second)
    assert np.array_equal(one, many) and np.array_equal(many, again)


def test_still_frames_give_zero_flow() -> None:
    image = _photo("coffee")[None]
    flow = DisFlowBackend().compute(image, image.copy())
    assert np.abs(flow).max() < 1e-3


def test_protocol_and_options() -> None:
    backend = DisFlowBackend()
    assert isinstance(backend, FlowBackend)
    assert backend.name == "dis" and backend.device == "cpu"
    assert set(DIS_PRESETS) >= {"ultrafast", "fast", "medium", "fine"}
    with pytest.raises(OptionError):
        DisFlowBackend("slowest")
    with pytest.raises(OptionError):
        DisFlowBackend(threads=0)
    frames = np.zeros((1, 64, 64, 3), dtype=np.uint8)
    with pytest.raises(ValueError):
        backend.compute(frames, frames[:, :32])
