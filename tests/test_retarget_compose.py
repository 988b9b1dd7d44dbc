"""A re-target composes each guide frame's motion once (the scale pass and the colouring pass share
it), gives exactly the frames it gave when it composed twice, and keeps no more than its budget."""
from __future__ import annotations

import numpy as np
import pytest

from wan2gp_structure_video import GuideRequest, RunContext
from wan2gp_structure_video.pipeline import iter_guide_flows, iter_guide_frames, source_flows
from wan2gp_structure_video.preprocessors.cache.flow_cache import FlowCache
from wan2gp_structure_video.preprocessors.video.sample_video import write_sample_video


@pytest.fixture(scope="module")
def cached_source(tmp_path_factory: pytest.TempPathFactory):
    """A source whose flows (every 2 frames, for 17 frames at 8 fps) are already in a cache."""
    root = tmp_path_factory.mktemp("retarget")
    source = write_sample_video(root / "source.mp4", 160, 96, frames=33, fps=16)
    cache = FlowCache(root / "cache")
    first = GuideRequest(source, resolution=(160, 96), frames=17, fps=8, backend="dis")
    assert len(list(iter_guide_frames(first, RunContext(cache=cache)))) == 17
    return source, cache


def retarget(source) -> GuideRequest:
    return GuideRequest(source, resolution=(160, 96), frames=13, fps=12, backend="dis")


def count_compositions(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    calls: list[int] = []
    original = source_flows.interval_flow

    def counting(row, nodes, intervals, k, shape, **kwargs):
        calls.append(k)
        return original(row, nodes, intervals, k, shape, **kwargs)

    monkeypatch.setattr(source_flows, "interval_flow", counting)
    return calls


def test_each_guide_frame_is_composed_once(cached_source, monkeypatch: pytest.MonkeyPatch) -> None:
    source, cache = cached_source
    calls = count_compositions(monkeypatch)
    context = RunContext(cache=cache)
    kept = list(iter_guide_frames(retarget(source), context))
    assert len(kept) == 13 and sorted(calls) == list(range(13))  # scale pass + colouring pass, one composition

    calls.clear()
    monkeypatch.setattr(source_flows, "COMPOSED_KEEP_BYTES", 0)  # the old way: compose in each pass
    recomposed = list(iter_guide_frames(retarget(source), RunContext(cache=cache)))
    assert sorted(calls) == sorted(list(range(13)) * 2)
    assert all(np.array_equal(a, b) for a, b in zip(kept, recomposed))


def test_the_budget_bounds_what_is_kept(cached_source, monkeypatch: pytest.MonkeyPatch) -> None:
    source, cache = cached_source
    one_flow = 96 * 160 * 2 * 4
    monkeypatch.setattr(source_flows, "COMPOSED_KEEP_BYTES", 3 * one_flow)
    calls = count_compositions(monkeypatch)
    frames = list(iter_guide_frames(retarget(source), RunContext(cache=cache)))
    assert len(frames) == 13
    # Frames that are one stored row read it directly; of the composed ones, three are kept.
    composed_once = {k for k in set(calls) if calls.count(k) == 1}
    assert len(calls) > 13 and len(composed_once) <= 3


def test_fresh_flows_are_private_copies(cached_source) -> None:
    source, cache = cached_source
    flows = list(iter_guide_flows(retarget(source), RunContext(cache=cache)))
    assert all(flow.flags.writeable for flow in flows)
    flows[3][:] = 1e6  # a caller may write into what it was given
    again = list(iter_guide_flows(retarget(source), RunContext(cache=cache)))
    assert float(np.abs(again[3]).max()) < 1e5
