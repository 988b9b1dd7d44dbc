"""Cache entries written by the release before the one annotator model keep serving requests.

The fixture (``tests/fixtures/legacy_cache``) was written by main at 034bb6a: a DIS flow entry, a depth
entry (random-weight Depth Anything V2 vits, stored in the old flow container as (maps, H, W/2, 2)) and
the rendered flow guide, for ``pan.mp4`` (8 frames, 96×64). These tests copy it into a fresh folder and
prove every request that entry covers is served from it: same keys, nothing extracted or recomputed,
no new entry written, the same pictures.
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from wan2gp_structure_video.memory import AnnotatorPool
from wan2gp_structure_video.pipeline.build import build_guide
from wan2gp_structure_video.pipeline.context import RunContext
from wan2gp_structure_video.pipeline.export import export_rows
from wan2gp_structure_video.pipeline.request import GuideRequest
from wan2gp_structure_video.preprocessors.cache.flow_cache import FlowCache
from wan2gp_structure_video.preprocessors.video.video_io import iter_frames


def read_all_frames(path: str) -> np.ndarray:
    return np.stack(list(iter_frames(path)))

FIXTURE = Path(__file__).parent / "fixtures" / "legacy_cache"
KEYS = json.loads((FIXTURE / "keys.json").read_text())
SIZE = (96, 64)


@pytest.fixture
def legacy(tmp_path: Path) -> tuple[FlowCache, Path, AnnotatorPool]:
    shutil.copytree(FIXTURE / "cache", tmp_path / "cache")
    video = tmp_path / "pan.mp4"
    shutil.copy(FIXTURE / "pan.mp4", video)
    return FlowCache(tmp_path / "cache"), video, AnnotatorPool(offload="plain")


def _entry_files(cache: FlowCache) -> dict[str, bytes]:
    entries = cache.root / "v1" / "entries"
    return {str(p.relative_to(entries)): p.read_bytes() for p in sorted(entries.rglob("*")) if p.is_file()
            and p.name not in ("used", "verified.json")}  # stamps: written on use


def _depth_request(video: Path, output: Path, **changes) -> GuideRequest:
    fields = dict(input=video, output=output, guide_type="depth", depth_weights="random", depth_variant="vits",
                  depth_input_size=28, frames=8, fps=16, resolution=SIZE, device="cpu")
    fields.update(changes)
    return GuideRequest(**fields)


def test_flow_entry_serves_a_retarget_and_the_same_guide(legacy, tmp_path):
    cache, video, pool = legacy
    before = _entry_files(cache)
    ctx = RunContext(cache=cache, pool=pool)
    retarget = build_guide(GuideRequest(input=video, output=tmp_path / "r.mp4", guide_type="flow", backend="dis",
                                        frames=5, fps=10, resolution=SIZE), ctx)
    assert retarget.cache_hit and retarget.flows_from_cache and retarget.device == "cache"
    assert retarget.cache_key == KEYS["flow"]["key"]
    assert not retarget.render_cached
    same = build_guide(GuideRequest(input=video, output=tmp_path / "s.mp4", guide_type="flow", backend="dis",
                                    frames=8, fps=16, resolution=SIZE), ctx)
    # the render cache's version moved on (RENDER_VERSION 5), so the old rendered guide is drawn again — from
    # the legacy flow entry, without extracting — and is the same picture within the scale's rounding
    assert not same.render_cached and same.cache_hit and same.flows_from_cache and same.device == "cache"
    rendered = next((FIXTURE / "cache" / "v1" / "renders").glob("*.mp4"))
    ours, theirs = read_all_frames(str(tmp_path / "s.mp4")), read_all_frames(str(rendered))
    assert ours.shape == theirs.shape
    assert np.abs(ours.astype(int) - theirs.astype(int)).mean() < 3
    assert _entry_files(cache) == before, "a legacy entry was rewritten or a new one added"


def test_depth_entry_is_served_without_the_model(legacy, tmp_path):
    cache, video, pool = legacy
    before = _entry_files(cache)
    result = build_guide(_depth_request(video, tmp_path / "d.mp4"), RunContext(cache=cache, pool=pool))
    assert result.cache_hit and result.device == "cache"
    assert result.cache_key == KEYS["depth"]["key"]
    assert pool.names() == [], "the depth model was registered: the entry was not served"
    ours = read_all_frames(str(tmp_path / "d.mp4")).astype(np.int16)
    theirs = read_all_frames(str(FIXTURE / "depth.mp4")).astype(np.int16)
    assert ours.shape == theirs.shape == (8, 64, 96, 3)
    assert np.abs(ours - theirs).max() <= 2, "the depth guide from a legacy entry differs from the old one"
    # a re-target (other frame count and fps) reads the same maps
    other = build_guide(_depth_request(video, tmp_path / "d2.mp4", frames=13, fps=24), RunContext(cache=cache, pool=pool))
    assert other.cache_hit and other.cache_key == KEYS["depth"]["key"]
    assert _entry_files(cache) == before


def test_exports_read_legacy_rows_in_their_own_shape(legacy, tmp_path):
    cache, video, pool = legacy
    entries = cache.root / "v1" / "entries"
    stored_depth = np.load(next(entries.glob(f"{KEYS['depth']['key'][:2]}/*/flows.npy")))
    stored_flow = np.load(next(entries.glob(f"{KEYS['flow']['key'][:2]}/*/flows.npy")))
    ctx = RunContext(cache=cache, pool=pool)
    depth = export_rows(_depth_request(video, None), tmp_path / "depth", png=False, context=ctx)
    assert depth.from_cache and depth.shape == (8, 64, 96)
    np.testing.assert_array_equal(np.load(depth.npy), stored_depth.reshape(8, 64, 96))
    flow = export_rows(GuideRequest(input=video, guide_type="flow", backend="dis", resolution=SIZE),
                       tmp_path / "flow", context=ctx)
    assert flow.from_cache and flow.shape == (7, 64, 96, 2)
    np.testing.assert_array_equal(np.load(flow.npy), stored_flow)
    assert pool.names() == []
