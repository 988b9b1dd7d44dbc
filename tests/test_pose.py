"""DWPose core: weights search, onnxruntime sessions in the annotator pool, rows, drawing, JSON.

Tiny ONNX models (``pose_models``) stand in for the real files. With ``$WAN2GP_ROOT`` the same
models and frames go through the host's ``Wholebody`` and its ``draw_pose`` for parity.
"""
from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("onnxruntime")
pytest.importorskip("onnx")

from pose_models import build_pose_models, person_frames  # noqa: E402
from wan2gp_structure_video.errors import WeightsNotFoundError  # noqa: E402
from wan2gp_structure_video.memory.pool import AnnotatorPool  # noqa: E402
from wan2gp_structure_video.preprocessors.annotators import pose_dwpose as pd  # noqa: E402
from wan2gp_structure_video.preprocessors.annotators.pose_sessions import PoseSessions, choose_providers  # noqa: E402
from wan2gp_structure_video.preprocessors.render.pose_draw import draw_like_host, draw_pose  # noqa: E402
from wan2gp_structure_video.preprocessors.render.pose_json import openpose_frame  # noqa: E402
from wan2gp_structure_video.preprocessors.weights.pose_weights import PoseWeights, find_pose_weights  # noqa: E402


@pytest.fixture(scope="module")
def ckpts(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("ckpts")
    build_pose_models(root)
    return root


@pytest.fixture(scope="module")
def rows(ckpts: Path) -> np.ndarray:
    sessions = PoseSessions(find_pose_weights(ckpts)).place("cpu")
    return pd.estimate(sessions, person_frames(2))


def host_modules():
    root = os.environ.get("WAN2GP_ROOT")
    if not root or not (Path(root) / "preprocessing" / "dwpose").is_dir():
        pytest.skip("set WAN2GP_ROOT to a Wan2GP checkout to compare with its dwpose code")
    if root not in sys.path:
        sys.path.insert(0, root)
    from preprocessing.dwpose import pose, util, wholebody
    return pose, util, wholebody


# --------------------------------------------------------------------------- weights

def test_weights_found_in_folder_in_pose_subfolder_or_as_two_files(ckpts: Path) -> None:
    pose_dir = ckpts / "pose"
    for explicit in (ckpts, pose_dir, [pose_dir / "yolox_l.onnx", pose_dir / "dw-ll_ucoco_384.onnx"]):
        found = find_pose_weights(explicit)
        assert Path(found.detector).name == "yolox_l.onnx" and Path(found.pose).name == "dw-ll_ucoco_384.onnx"
        assert found.origin.startswith("explicit")


def test_weights_host_locator_then_search_dirs(ckpts: Path, tmp_path: Path) -> None:
    asked: list[str] = []

    def locator(name: str) -> str:
        asked.append(name)
        return str(ckpts / name)

    assert find_pose_weights(host_locator=locator, search_dirs=[tmp_path]).origin == "Wan2GP file locator"
    assert asked == ["pose/yolox_l.onnx", "pose/dw-ll_ucoco_384.onnx"]
    found = find_pose_weights(host_locator=lambda name: None, search_dirs=[tmp_path, ckpts])
    assert found.origin.startswith("Wan2GP ckpts") and found.detector == str((ckpts / "pose/yolox_l.onnx").resolve())


def test_weights_from_environment(ckpts: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("WAN2GP_ROOT", raising=False)
    monkeypatch.setenv("WAN2GP_CKPTS", str(ckpts))
    assert find_pose_weights().pose == str((ckpts / "pose/dw-ll_ucoco_384.onnx").resolve())


def test_missing_weights_one_line_error(tmp_path: Path) -> None:
    with pytest.raises(WeightsNotFoundError) as info:
        find_pose_weights(search_dirs=[tmp_path])
    text = str(info.value)
    assert "\n" not in text and str(tmp_path / "pose") in text
    assert "DeepBeepMeep/Wan2.1" in text and "--pose-weights" in text
    (tmp_path / "yolox_l.onnx").write_bytes(b"x")  # only one of the two files
    with pytest.raises(WeightsNotFoundError, match="lacks"):
        find_pose_weights(tmp_path)


def test_identity_changes_with_file_content(ckpts: Path, tmp_path: Path) -> None:
    first = find_pose_weights(ckpts).identity()
    assert first == find_pose_weights(ckpts).identity()
    other = build_pose_models(tmp_path, seed=5)
    assert find_pose_weights(other).identity() != first


# --------------------------------------------------------------------------- sessions and pool

def test_provider_choice() -> None:
    assert choose_providers("cuda", ["CUDAExecutionProvider", "CPUExecutionProvider"])[1] == "onnxruntime CUDA"
    providers, text = choose_providers("cuda", ["CPUExecutionProvider"])
    assert providers == ["CPUExecutionProvider"] and "onnxruntime-gpu" in text
    assert choose_providers("cpu", ["CUDAExecutionProvider", "CPUExecutionProvider"]) == (
        ["CPUExecutionProvider"], "onnxruntime CPU")


def test_sessions_rebuild_after_unload(ckpts: Path) -> None:
    sessions = PoseSessions(find_pose_weights(ckpts))
    with pytest.raises(RuntimeError):
        sessions.pair()
    sessions.place("cpu")
    sessions.place("cpu")
    assert sessions.builds == 1 and sessions.providers == "onnxruntime CPU"
    assert sessions.pair()[0].get_providers() == ["CPUExecutionProvider"]
    sessions.unload()
    assert not sessions.built
    sessions.place("cpu")
    assert sessions.builds == 2


def test_pool_holds_sessions_with_unload_release_keep(ckpts: Path) -> None:
    weights = find_pose_weights(ckpts)
    pool = AnnotatorPool(offload="plain")
    pool.register("pose", lambda: PoseSessions(weights))
    with pool.use("pose", "cpu", teardown="keep") as lease:
        held = lease.model
        assert held.built
    assert held.built and held.builds == 1
    with pool.use("pose", "cpu", teardown="unload") as lease:
        assert lease.model is held and held.builds == 1
    assert not held.built and pool.construct_count("pose") == 1
    with pool.use("pose", "cpu", teardown="release") as lease:
        assert lease.model is held and held.built and held.builds == 2
    assert not held.built and not pool.is_built("pose")
    with pool.use("pose", "cpu") as lease:
        assert lease.model is not held and pool.construct_count("pose") == 2


# --------------------------------------------------------------------------- rows

def test_rows_shape_and_layout(rows: np.ndarray) -> None:
    assert rows.shape == (2, pd.MAX_PEOPLE, pd.N_KEYPOINTS, 3) and rows.dtype == np.float32
    people = (rows[..., 2].max(-1) > 0).sum(-1)
    assert list(people) == [1, 1]  # the tiny detector's one confident box
    assert np.all(rows[:, 1:] == 0)
    neck = rows[:, 0, 1]
    assert set(np.unique(neck[:, 2])) <= {0.0, 1.0}
    # the neck is the mean of the shoulders (OpenPose 2 and 5)
    both = neck[:, 2] == 1
    np.testing.assert_allclose(neck[both, :2], rows[both, 0][:, [2, 5], :2].mean(1), atol=1e-6)


def test_bad_frames_one_line() -> None:
    with pytest.raises(ValueError, match="uint8"):
        pd.estimate((None, None), np.zeros((1, 4, 4, 3), dtype=np.float32))


def test_same_keypoints_as_host(ckpts: Path, rows: np.ndarray) -> None:
    _, _, wholebody = host_modules()
    body = wholebody.Wholebody(str(ckpts / "pose/yolox_l.onnx"), str(ckpts / "pose/dw-ll_ucoco_384.onnx"),
                               device="cpu")
    for frame, row in zip(person_frames(2), rows):
        img = wholebody.resize_image(wholebody.HWC3(frame[..., ::-1]), 1024)
        points, scores, _ = body(img)
        h, w = img.shape[:2]
        assert len(points) == 1
        np.testing.assert_allclose(row[0, :, 0], points[0, :, 0] / w, atol=1e-6)
        np.testing.assert_allclose(row[0, :, 1], points[0, :, 1] / h, atol=1e-6)
        np.testing.assert_allclose(row[0, :, 2], scores[0], atol=1e-6)


# --------------------------------------------------------------------------- drawing and JSON

def standing_row() -> np.ndarray:
    """A hand-made standing person (OpenPose body order), face ring and both hands, all visible."""
    body = [(.5, .15), (.5, .25), (.42, .26), (.38, .4), (.36, .52), (.58, .26), (.62, .4), (.64, .52),
            (.45, .52), (.45, .7), (.45, .88), (.55, .52), (.55, .7), (.55, .88), (.48, .13), (.52, .13),
            (.46, .14), (.54, .14)]
    row = np.zeros((pd.MAX_PEOPLE, pd.N_KEYPOINTS, 3), dtype=np.float32)
    row[0, :18, :2], row[0, :18, 2] = body, 0.9
    angles = np.linspace(0, 2 * np.pi, 68, endpoint=False)
    row[0, 24:92, 0], row[0, 24:92, 1], row[0, 24:92, 2] = .5 + .03 * np.cos(angles), .14 + .04 * np.sin(angles), .8
    for start, wrist in ((92, (.64, .52)), (113, (.36, .52))):
        row[0, start:start + 21, 0] = wrist[0] + np.repeat(np.linspace(-.02, .02, 5), 5)[:21]
        row[0, start:start + 21, 1] = wrist[1] + np.tile(np.linspace(0, .05, 5), 5)[:21]
        row[0, start:start + 21, 2] = .7
    row[0, 10, 2] = 0.1  # a hidden ankle: not drawn
    return row


def host_pose_dict(row: np.ndarray) -> dict:
    """The host annotator's ``pose`` dict built from one row, the way its ``process`` builds it."""
    people = row[row[..., 2].max(-1) > 0].astype(np.float64)
    n = len(people)
    subset = np.where(people[:, :18, 2] > 0.3, np.arange(n)[:, None] * 18 + np.arange(18), -1).astype(float)
    body = people[:, :18, :2].reshape(n * 18, 2)
    cand = people[..., :2].copy()
    cand[people[..., 2] < 0.3] = -1
    hands = np.vstack([cand[:, 92:113], cand[:, 113:]])
    return dict(bodies=dict(candidate=body, subset=subset), hands=hands, faces=cand[:, 24:92])


@pytest.mark.parametrize("hands", [False, True])
def test_same_picture_as_host(hands: bool, rows: np.ndarray) -> None:
    pose, _, _ = host_modules()
    for row in (standing_row(), rows[0]):
        theirs = pose.draw_pose(host_pose_dict(row), 384, 512, use_hand=hands, use_body=True, use_face=True)[..., ::-1]
        ours = draw_pose(row, 384, 512, hands=hands)
        assert ours.any()
        np.testing.assert_array_equal(ours, theirs)


def test_drawing_options_change_the_picture() -> None:
    row = standing_row()
    full, plain = draw_pose(row, 240, 320, hands=True), draw_pose(row, 240, 320)
    assert (full != plain).any() and not draw_pose(row, 240, 320, body=False, face=False).any()
    assert not draw_pose(np.zeros_like(row), 240, 320).any()


def test_openpose_json(rows: np.ndarray) -> None:
    row = standing_row()
    frame = json.loads(json.dumps(openpose_frame(row, 640, 480)))
    assert len(frame["people"]) == 1
    person = frame["people"][0]
    lengths = {k: len(v) for k, v in person.items()}
    assert lengths == {"pose_keypoints_2d": 54, "face_keypoints_2d": 204, "hand_left_keypoints_2d": 63,
                       "hand_right_keypoints_2d": 63}
    assert person["pose_keypoints_2d"][3:6] == pytest.approx([320.0, 120.0, 0.9], abs=1e-3)
    assert person["pose_keypoints_2d"][30:33] == [0.0, 0.0, 0.0]  # the hidden ankle
    assert openpose_frame(np.zeros_like(row), 64, 64)["people"] == []
    assert len(openpose_frame(rows[0], 320, 180)["people"]) == 1


def test_same_guide_frames_as_host_annotator(ckpts: Path, rows: np.ndarray) -> None:
    """The host's video annotator (no reference image: body, face and hands) on the tiny models."""
    pose, _, _ = host_modules()
    cfg = {"DETECTION_MODEL": str(ckpts / "pose/yolox_l.onnx"), "POSE_MODEL": str(ckpts / "pose/dw-ll_ucoco_384.onnx"),
           "RESIZE_SIZE": 1024}
    annotator = pose.OptimizedPoseAnnotator(cfg, device="cpu")
    for frame, row in zip(person_frames(2), rows):
        net = pose.resize_image(pose.HWC3(frame[..., ::-1]), 1024)
        theirs = annotator.process(net, frame.shape[:2])[0]["detected_map_handbodyface"]
        ours = draw_like_host(row, *frame.shape[:2], hands=True)
        assert ours.any()
        np.testing.assert_array_equal(ours, theirs)
