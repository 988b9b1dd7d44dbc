"""Raw depth exports: the maps equal what the depth guide maps to brightness, and the PNGs recover them.

Uses the tiny random Depth Anything V2 of ``test_depth_pipeline`` (CPU, nothing downloaded).
"""
from __future__ import annotations

import json

import numpy as np
import pytest

from wan2gp_structure_video import GuideRequest, RunContext
from wan2gp_structure_video.memory import AnnotatorPool
from wan2gp_structure_video.pipeline import depth_render, iter_guide_frames
from wan2gp_structure_video.pipeline.export import export_rows, from_png16
from wan2gp_structure_video.preprocessors.cache.flow_cache import FlowCache

from videogen import make_video

pytest.importorskip("transformers")
from test_depth_pipeline import HEIGHT, WIDTH, model_spy, tiny_weights  # noqa: E402,F401  (fixtures)

FRAMES = 7


def _request(source, weights, **kw) -> GuideRequest:
    return GuideRequest(source, resolution=(WIDTH, HEIGHT), guide_type="depth", depth_weights=weights,
                        depth_input_size=None, **kw)


def test_a_depth_export_equals_the_guides_maps_before_brightness_mapping(tmp_path, tiny_weights, monkeypatch):
    source = make_video(tmp_path / "src.mp4", width=WIDTH, height=HEIGHT, frames=FRAMES, fps=24.0)
    seen: list[np.ndarray] = []
    original = depth_render.depth_to_guide

    def spy(depth, *args, **kw):
        seen.append(np.array(depth, dtype=np.float32, copy=True))
        return original(depth, *args, **kw)

    monkeypatch.setattr(depth_render, "depth_to_guide", spy)
    guide = _request(source, tiny_weights, frames=FRAMES, fps=24.0)
    list(iter_guide_frames(guide, RunContext(use_cache=False, pool=AnnotatorPool(offload="plain"))))
    assert len(seen) == FRAMES

    result = export_rows(_request(source, tiny_weights), tmp_path / "out",
                         context=RunContext(use_cache=False, pool=AnnotatorPool(offload="plain")))
    maps = np.load(result.npy, allow_pickle=False)
    assert maps.dtype == np.float16 and maps.shape == (FRAMES, HEIGHT, WIDTH)
    assert float(maps.std()) > 0  # a real map, not a constant
    np.testing.assert_array_equal(maps.astype(np.float32), np.stack(seen))

    import cv2
    png = result.sidecar["png"]
    for i, name in enumerate(result.sidecar["files"]["png"]):
        values = cv2.imread(str(tmp_path / "out" / name), cv2.IMREAD_UNCHANGED)
        assert values.dtype == np.uint16 and values.shape == (HEIGHT, WIDTH)
        back = from_png16(values, png["min"], png["max"])
        step = (png["max"] - png["min"]) / png["max_value"]
        assert np.abs(back - maps[i].astype(np.float32)).max() <= step
    sidecar = json.loads((tmp_path / "out" / "export.json").read_text())
    assert sidecar["type"] == "depth" and sidecar["frames"] == list(range(FRAMES))
    assert sidecar["model"]["weights"] and sidecar["shape"] == [FRAMES, HEIGHT, WIDTH]


def test_a_depth_export_from_the_cache_runs_no_model(tmp_path, tiny_weights, model_spy) -> None:
    source = make_video(tmp_path / "src.mp4", width=WIDTH, height=HEIGHT, frames=FRAMES, fps=24.0)
    ctx = RunContext(cache=FlowCache(tmp_path / "cache"), pool=AnnotatorPool(offload="plain"))
    first = export_rows(_request(source, tiny_weights), tmp_path / "a", png=False, context=ctx)
    computed = sum(model_spy)
    assert computed == FRAMES and not first.from_cache
    again = export_rows(_request(source, tiny_weights, start=2, end=5), tmp_path / "b", png=False, context=ctx)
    assert sum(model_spy) == computed and again.from_cache
    np.testing.assert_array_equal(np.load(again.npy), np.load(first.npy)[2:5])
    assert sorted(p.name for p in (tmp_path / "b").iterdir()) == ["depth.npy", "export.json"]
