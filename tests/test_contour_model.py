"""Wan2GP's contour network rebuilt: the host's weight layout loads strictly, the maps have the host's
shape and post-processing, and (with ``WAN2GP_ROOT``) the host's annotators give the same maps."""
from __future__ import annotations

import os
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import skimage.data
import torch

from wan2gp_structure_video.errors import WeightsError
from wan2gp_structure_video.preprocessors.annotators.contour_model import (ContourBackend, build_contour_net,
                                                                           contour_maps_to_guide, load_contour_model)


def save_host_layout(root: Path, seed: int = 3) -> Path:
    """A random-weight network saved as Wan2GP stores it: ``<root>/ckpts/scribble/netG_A_latest.pth``."""
    path = root / "ckpts" / "scribble" / "netG_A_latest.pth"
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(build_contour_net(seed=seed).state_dict(), path)
    return path


def _frames(height: int = 96, width: int = 128, count: int = 3) -> np.ndarray:
    photo = cv2.resize(np.ascontiguousarray(skimage.data.astronaut()), (width, height), interpolation=cv2.INTER_AREA)
    rng = np.random.default_rng(0)
    noise = [rng.integers(0, 256, (height, width, 3), dtype=np.uint8) for _ in range(count - 1)]
    return np.stack([photo, *noise])


def test_host_layout_loads_strictly(tmp_path) -> None:
    path = save_host_layout(tmp_path)
    net = load_contour_model(str(path))
    saved = torch.load(path, weights_only=True)
    assert set(net.state_dict()) == set(saved) and len(saved) == 24
    assert all(torch.equal(net.state_dict()[k], v) for k, v in saved.items())
    assert not net.training and not any(p.requires_grad for p in net.parameters())
    assert not torch.equal(build_contour_net(seed=1).model0[1].weight, build_contour_net(seed=2).model0[1].weight)


def test_foreign_weights_are_one_line(tmp_path) -> None:
    state = build_contour_net().state_dict()
    state.pop("model4.1.bias")
    bad = tmp_path / "bad.pth"
    torch.save(state, bad)
    with pytest.raises(WeightsError, match=r"1 missing, 0 unexpected") as info:
        load_contour_model(str(bad))
    assert "\n" not in str(info.value) and "netG_A_latest.pth" in str(info.value)


@pytest.mark.parametrize("size", [(96, 128), (30, 42)])
def test_maps_shapes_and_post_processing(size) -> None:
    frames = _frames(*size)
    backend = ContourBackend(load_contour_model(None, seed=5), "cpu")
    scribble = backend.compute(frames, "scribble")
    contour = backend.compute(frames, "contour")
    assert scribble.shape == contour.shape == (3, *size) and scribble.dtype == contour.dtype == np.uint8
    assert set(np.unique(contour)) <= {0, 255}
    assert np.array_equal(contour == 255, scribble <= 127)  # inverted, then > 127.5 is white
    assert len(np.unique(scribble)) > 10
    single = backend.compute(frames[1:2], "scribble")
    assert np.array_equal(single[0], scribble[1])  # instance norm: a frame's map does not depend on the batch
    with pytest.raises(ValueError):
        backend.compute(frames, "canny")
    with pytest.raises(ValueError):
        backend.compute(frames[0], "contour")


def test_post_processing_alone() -> None:
    maps = np.array([[0, 127, 128, 255]], np.uint8)
    assert contour_maps_to_guide(maps, "contour").tolist() == [[255, 255, 0, 0]]
    assert contour_maps_to_guide(maps, "scribble") is maps


@pytest.fixture()
def host_preprocessing(monkeypatch):
    root = os.environ.get("WAN2GP_ROOT")
    if not root or not (Path(root) / "preprocessing" / "canny.py").is_file():
        pytest.skip("WAN2GP_ROOT (a Wan2GP checkout) is not set")
    pytest.importorskip("einops")  # the host's annotators import it
    monkeypatch.syspath_prepend(root)
    canny = pytest.importorskip("preprocessing.canny")
    scribble = pytest.importorskip("preprocessing.scribble")
    yield canny, scribble
    for name in ("preprocessing.canny", "preprocessing.scribble"):
        sys.modules.pop(name, None)


def test_same_maps_as_the_hosts_annotators(tmp_path, host_preprocessing) -> None:
    canny, scribble = host_preprocessing
    path = save_host_layout(tmp_path, seed=11)
    frames = _frames(96, 128, 4)
    backend = ContourBackend(load_contour_model(str(path)), "cpu")
    for host_class, mode in ((canny.CannyVideoAnnotator, "contour"), (scribble.ScribbleVideoAnnotator, "scribble")):
        theirs = host_class({"PRETRAINED_MODEL": str(path)}, device="cpu").forward(list(frames))
        ours = backend.compute(frames, mode)
        assert len(theirs) == len(ours)
        for a, b in zip(ours, theirs):
            assert b.shape == a.shape + (3,)
            assert (b == a[..., None]).all(), f"{mode}: {(b[..., 0] != a).sum()} pixels differ"
