"""Gray guides (``--type gray``): the host's Gray formula on the fitted frames, through the CLI and the API."""
from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np
import pytest
import skimage.data

from videogen import make_video
from wan2gp_structure_video.cli import main
from wan2gp_structure_video.pipeline import iter_guide_frames
from wan2gp_structure_video.pipeline.context import RunContext
from wan2gp_structure_video.pipeline.request import GuideRequest
from wan2gp_structure_video.preprocessors.annotators.gray import gray_levels
from wan2gp_structure_video.preprocessors.video.video_io import iter_frames, probe_video


def _host_formula(rgb: np.ndarray) -> np.ndarray:
    """0.114 R + 0.587 G + 0.299 B rounded (the host applies OpenCV's BGR weights to RGB frames)."""
    weighted = rgb[..., 0] * 0.114 + rgb[..., 1] * 0.587 + rgb[..., 2] * 0.299
    return np.rint(weighted)


def test_gray_levels_is_the_host_formula_on_three_equal_channels() -> None:
    photo = np.ascontiguousarray(skimage.data.astronaut())
    gray = gray_levels(photo)
    assert gray.shape == photo.shape and gray.dtype == np.uint8
    assert (gray[..., 0] == gray[..., 1]).all() and (gray[..., 1] == gray[..., 2]).all()
    # OpenCV's fixed-point rounding: at most one level from the exact weighted sum
    assert np.abs(gray[..., 0].astype(float) - _host_formula(photo.astype(float))).max() <= 1
    pure = np.zeros((2, 2, 3), np.uint8)
    pure[0, 0] = (255, 0, 0)  # red weighs 0.114, blue 0.299: the host's swapped order, kept on purpose
    pure[0, 1] = (0, 0, 255)
    assert int(gray_levels(pure)[0, 0, 0]) == 29 and int(gray_levels(pure)[0, 1, 0]) == 76
    with pytest.raises(ValueError):
        gray_levels(np.zeros((4, 4), np.uint8))


def _request(src: Path, guide_type: str, **extra) -> GuideRequest:
    return GuideRequest(src, None, resolution=(128, 64), frames=7, fps=8, guide_type=guide_type, **extra)


def test_gray_guide_is_the_gray_of_the_raw_guide(tmp_path) -> None:
    src = make_video(tmp_path / "in.mp4", 96, 64, frames=10)
    raw = list(iter_guide_frames(_request(src, "raw"), RunContext(use_cache=False)))
    gray = list(iter_guide_frames(_request(src, "gray"), RunContext(use_cache=False)))
    assert len(gray) == len(raw) == 7
    for fitted, frame in zip(raw, gray):
        assert np.array_equal(frame, gray_levels(fitted))


@pytest.mark.skipif(not os.environ.get("WAN2GP_ROOT"), reason="WAN2GP_ROOT (Wan2GP's checkout) is not set")
def test_gray_matches_the_hosts_annotator(tmp_path, monkeypatch) -> None:
    monkeypatch.syspath_prepend(os.environ["WAN2GP_ROOT"])
    host_gray = pytest.importorskip("preprocessing.gray")
    src = make_video(tmp_path / "in.mp4", 96, 64, frames=10)
    raw = list(iter_guide_frames(_request(src, "raw"), RunContext(use_cache=False)))
    ours = list(iter_guide_frames(_request(src, "gray"), RunContext(use_cache=False)))
    theirs = host_gray.GrayVideoAnnotator({}).forward(raw)
    assert len(theirs) == len(ours)
    for a, b in zip(ours, theirs):
        assert np.array_equal(a, b)
    sys.modules.pop("preprocessing.gray", None)


def test_cli_type_gray_writes_gray_frames_of_the_target(tmp_path, capsys) -> None:
    src = make_video(tmp_path / "in.mp4", 96, 64, frames=10)
    out = tmp_path / "gray.mp4"
    assert main(["guide", str(src), "-o", str(out), "--type", "gray", "--resolution", "128x64", "--frames", "7",
                 "--fps", "8", "--no-cache", "--quiet"]) == 0
    info = probe_video(out)
    assert (info.width, info.height, info.frame_count, info.fps) == (128, 64, 7, 8.0)
    decoded = [f.astype(int) for f in iter_frames(out)]
    raw = list(iter_guide_frames(_request(src, "raw"), RunContext(use_cache=False)))
    assert len(decoded) == len(raw) == 7
    for frame, fitted in zip(decoded, raw):
        # gray in, neutral chroma out: the channels agree up to H.264's rounding
        assert np.abs(frame[..., 0] - frame[..., 1]).max() <= 2 and np.abs(frame[..., 1] - frame[..., 2]).max() <= 2
        host = np.abs(frame[..., 1] - _host_formula(fitted.astype(float))).mean()
        standard = np.abs(frame[..., 1] - _host_formula(fitted[..., ::-1].astype(float))).mean()
        assert host < 3.0 and host < standard  # H.264 error on a noisy texture; yet the host's weights, not Rec.601
