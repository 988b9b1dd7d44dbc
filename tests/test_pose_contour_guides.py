"""Pose, contour and scribble guides through the CLI, the cache and export (tiny models, CPU, no downloads)."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

from wan2gp_structure_video.cli import main
from wan2gp_structure_video.memory import AnnotatorPool
from wan2gp_structure_video.options import GUIDE_TYPES
from wan2gp_structure_video.pipeline.build import build_guide
from wan2gp_structure_video.pipeline.context import RunContext
from wan2gp_structure_video.pipeline.request import GuideRequest
from wan2gp_structure_video.preprocessors.cache.flow_cache import FlowCache
from wan2gp_structure_video.preprocessors.video.sample_video import write_sample_video
from wan2gp_structure_video.preprocessors.video.video_io import iter_frames

sys.path.insert(0, str(Path(__file__).parent))
from pose_models import build_pose_models  # noqa: E402

pytest.importorskip("onnxruntime")


@pytest.fixture(scope="module")
def source(tmp_path_factory) -> Path:
    return write_sample_video(tmp_path_factory.mktemp("src") / "s.mp4", width=160, height=96, frames=9, fps=16)


@pytest.fixture(scope="module")
def pose_dir(tmp_path_factory) -> Path:
    return build_pose_models(tmp_path_factory.mktemp("pose"))


@pytest.fixture(scope="module")
def contour_file(tmp_path_factory) -> Path:
    torch = pytest.importorskip("torch")
    from wan2gp_structure_video.preprocessors.annotators.contour_model import build_contour_net

    path = tmp_path_factory.mktemp("ckpts") / "scribble" / "netG_A_latest.pth"
    path.parent.mkdir()
    torch.save(build_contour_net(seed=3).state_dict(), path)
    return path


@pytest.fixture
def no_host(monkeypatch, tmp_path):
    """Nothing found in Wan2GP folders: the machine's own ckpts stay out of the test."""
    monkeypatch.setenv("WAN2GP_ROOT", str(tmp_path / "no-wan2gp"))
    monkeypatch.delenv("WAN2GP_CKPTS", raising=False)
    from wan2gp_structure_video.preprocessors.weights import raft_weights

    monkeypatch.setattr(raft_weights, "default_search_dirs", lambda: [tmp_path / "no-wan2gp" / "ckpts"])


def _frames(path: Path) -> list[np.ndarray]:
    return list(iter_frames(str(path)))


def test_pose_guide_has_the_requested_size_and_frames_and_retargets_from_the_cache(tmp_path, source, pose_dir):
    cache = tmp_path / "cache"
    out = tmp_path / "pose.mp4"
    assert main(["guide", str(source), "-o", str(out), "--type", "pose", "--pose-weights", str(pose_dir),
                 "--resolution", "128x64", "--frames", "7", "--fps", "12", "--cache-dir", str(cache), "-q"]) == 0
    frames = _frames(out)
    assert len(frames) == 7 and frames[0].shape == (64, 128, 3)
    assert max(f.max() for f in frames) > 100, "no skeleton was drawn"
    pool = AnnotatorPool(offload="plain")
    again = build_guide(GuideRequest(input=source, output=tmp_path / "again.mp4", guide_type="pose",
                                     pose_weights=str(pose_dir), resolution=(128, 64), frames=13, fps=24),
                        RunContext(pool=pool, cache=FlowCache(cache)))
    assert again.cache_hit and pool.names() == [], "a re-target ran the pose models again"
    assert "onnxruntime CPU" in again.backend_reason
    assert len(_frames(tmp_path / "again.mp4")) == 13


def test_pose_without_weights_is_one_line_and_writes_nothing(tmp_path, source, no_host, capsys):
    out = tmp_path / "pose.mp4"
    assert main(["guide", str(source), "-o", str(out), "--type", "pose", "--resolution", "128x64",
                 "--frames", "5", "--no-cache"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "pose/yolox_l.onnx" in err[0] and "--pose-weights" in err[0]
    assert not out.exists() and list(tmp_path.glob("*.mp4")) == []


def test_pose_export_writes_keypoints_and_openpose_json(tmp_path, source, pose_dir):
    out = tmp_path / "export"
    assert main(["export", str(source), "--type", "pose", "--pose-weights", str(pose_dir), "--resolution", "128x64",
                 "--out", str(out), "--no-cache", "-q"]) == 0
    keypoints = np.load(out / "pose.npy")
    assert keypoints.shape == (9, 8, 134, 3) and keypoints.dtype == np.float32
    sidecar = json.loads((out / "export.json").read_text())
    assert sidecar["dtype"] == "float32" and len(sidecar["files"]["json"]) == 9
    frame = json.loads((out / sidecar["files"]["json"][0]).read_text())
    people = frame["people"]
    assert frame["canvas_width"] == 128 and people
    assert len(people[0]["pose_keypoints_2d"]) == 18 * 3 and len(people[0]["face_keypoints_2d"]) == 68 * 3


def test_contour_and_scribble_share_one_cached_map(tmp_path, source, contour_file):
    cache = FlowCache(tmp_path / "cache")
    pool = AnnotatorPool(offload="plain")
    common = dict(input=source, contour_weights=str(contour_file), resolution=(128, 64), frames=5, fps=16)
    contour = build_guide(GuideRequest(output=tmp_path / "c.mp4", guide_type="contour", **common),
                          RunContext(pool=pool, cache=cache))
    scribble = build_guide(GuideRequest(output=tmp_path / "s.mp4", guide_type="scribble", **common),
                           RunContext(pool=AnnotatorPool(offload="plain"), cache=cache))
    assert not contour.cache_hit and scribble.cache_hit and scribble.cache_key == contour.cache_key
    edges, shapes = _frames(tmp_path / "c.mp4"), _frames(tmp_path / "s.mp4")
    assert len(edges) == len(shapes) == 5 and edges[0].shape == (64, 128, 3)
    # contour is the thresholded inverse of the scribble map (H.264 blurs the edges a little)
    expected = np.where(255 - shapes[2][..., 0].astype(int) > 127.5, 255, 0)
    assert np.mean(np.abs(edges[2][..., 0].astype(int) - expected) < 64) > 0.9


def test_contour_without_weights_is_one_line(tmp_path, source, no_host, capsys):
    assert main(["guide", str(source), "-o", str(tmp_path / "c.mp4"), "--type", "contour", "--resolution",
                 "128x64", "--frames", "5", "--no-cache"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "netG_A_latest.pth" in err[0] and "--contour-weights" in err[0]


def test_the_tab_offers_every_guide_type_in_its_words():
    from wan2gp_structure_video.ui.tab import LABELS, labelled

    words = dict((value, label) for label, value in labelled(GUIDE_TYPES))
    assert words["pose"] == "Pose (DWPose)" and words["contour"] == "Edges (Wan2GP model)"
    assert words["scribble"] == "Shapes (Wan2GP model)" and words["gray"] == "Gray levels"
    assert set(GUIDE_TYPES) <= set(LABELS)


def test_the_host_adapter_locates_and_downloads_pose_and_contour_files(tmp_path, monkeypatch):
    from types import SimpleNamespace

    from ui_helpers import fake_host_files
    from wan2gp_structure_video.ui import host_bridge

    monkeypatch.delitem(sys.modules, "wgp", raising=False)
    ckpts = tmp_path / "ckpts"
    plugin, downloads = fake_host_files(ckpts)
    assert host_bridge.host_model_path(plugin, "pose") is None
    assert host_bridge.download_host_model(plugin, "pose") == str(ckpts)
    assert host_bridge.download_host_model(plugin, "contour") == str(ckpts / "scribble" / "netG_A_latest.pth")
    assert downloads == [("DeepBeepMeep/Wan2.1", ["pose"], [["yolox_l.onnx", "dw-ll_ucoco_384.onnx"]]),
                         ("DeepBeepMeep/Wan2.1", ["scribble"], [["netG_A_latest.pth"]])]
    # the path the tab shows is one the pose weights finder accepts
    from wan2gp_structure_video.preprocessors.weights.pose_weights import find_pose_weights

    assert Path(find_pose_weights(host_bridge.host_model_path(plugin, "pose")).detector).name == "yolox_l.onnx"
    assert host_bridge.host_model_path(SimpleNamespace(), "contour") is None  # standalone


def test_pose_segments_equal_the_whole_guide_and_composites_run(tmp_path, source, pose_dir):
    from wan2gp_structure_video.pipeline.multi import Placement, build_composite_guide, build_segment_guides
    from wan2gp_structure_video.preprocessors.timeline.segments import sliding_windows

    cache = FlowCache(tmp_path / "cache")
    pool = AnnotatorPool(offload="plain")
    request = GuideRequest(input=source, output=tmp_path / "whole.mp4", guide_type="pose", pose_weights=str(pose_dir),
                           resolution=(128, 64), frames=12, fps=16)
    whole = _frames(build_guide(request, RunContext(pool=pool, cache=cache)).output)
    run = build_segment_guides(request, sliding_windows(12, 5, overlap=1), tmp_path / "segments",
                               RunContext(pool=pool, cache=cache))
    assert run.extraction_cached and all(r.cache_hit for r in run.segments)
    first = _frames(run.segments[1].output)
    assert len(first) == 5
    assert np.abs(np.stack(first).astype(int) - np.stack(whole[4:9]).astype(int)).mean() < 2
    composite = build_composite_guide(tmp_path / "comp.mp4", 10, [Placement(source, 2, 6)], resolution=(128, 64),
                                      guide_type="pose", pose_weights=str(pose_dir),
                                      context=RunContext(pool=pool, cache=cache))
    frames = _frames(composite.output)
    assert len(frames) == 10 and frames[0].max() < 30  # no source before frame 2: black


def test_every_guide_type_has_a_composite_background():
    from wan2gp_structure_video.pipeline.multi import NEUTRAL_VALUE

    assert set(NEUTRAL_VALUE) == set(GUIDE_TYPES)


def test_pose_smoothing_never_crosses_a_hard_cut():
    from wan2gp_structure_video.pipeline.annotators.pose import smoothed_by_shot
    from wan2gp_structure_video.preprocessors.timeline.keypoint_filter import filter_rows

    rows = np.zeros((20, 8, 134, 3), dtype=np.float32)
    rows[:, 0, :18, 2] = 0.9
    rows[:, 0, :18, 0], rows[:, 0, :18, 1] = 0.40, 0.5
    rows[10:, 0, :18, 0] = 0.46  # the next shot: the same person framed 6 % further right (within a track's reach)
    across = filter_rows(rows, 30, 640, 480)
    assert abs(across[10, 0, 0, 0] - 0.46) > 0.003, "the filter no longer carries a track: the test shows nothing"
    by_shot = smoothed_by_shot(rows, frozenset({9}), 30, 640, 480)
    np.testing.assert_allclose(by_shot[10:, 0, :18, :2], rows[10:, 0, :18, :2], atol=1e-6)
    np.testing.assert_allclose(by_shot[:10], filter_rows(rows[:10], 30, 640, 480))
    np.testing.assert_allclose(smoothed_by_shot(rows, frozenset(), 30, 640, 480), across)
