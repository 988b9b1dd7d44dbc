"""The pipeline end to end on generated videos: sizes, counts, types, fits, cache, errors, teardown."""
from __future__ import annotations

import threading

import numpy as np
import pytest

from videogen import make_video
from wan2gp_structure_video import GuideRequest, RunContext, build_guide, iter_guide_frames
from wan2gp_structure_video.errors import CancelledError, InvalidVideoError, OptionError, TargetError
from wan2gp_structure_video.memory import AnnotatorPool, Timeline
from wan2gp_structure_video.preprocessors.cache.flow_cache import FlowCache
from wan2gp_structure_video.preprocessors.video.sample_video import write_sample_video
from wan2gp_structure_video.preprocessors.video.video_io import iter_frames, probe_video
from wan2gp_structure_video.progress import Progress


@pytest.fixture(scope="module")
def sample(tmp_path_factory):
    return write_sample_video(tmp_path_factory.mktemp("src") / "sample.mp4", 160, 96, frames=24, fps=24)


def _ctx(tmp_path, **kw) -> RunContext:
    return RunContext(cache=FlowCache(tmp_path / "cache"), pool=AnnotatorPool(offload="plain"), **kw)


@pytest.mark.parametrize("guide_type", ["flow", "canny", "raw"])
def test_guide_matches_the_target_exactly(tmp_path, sample, guide_type) -> None:
    out = tmp_path / f"{guide_type}.mp4"
    result = build_guide(GuideRequest(sample, out, resolution="333x201", frames=13, fps=16, guide_type=guide_type,
                                      backend="dis"), _ctx(tmp_path))
    info = probe_video(out)
    assert (info.width, info.height, info.frame_count, info.fps) == (320, 192, 13, 16.0)
    assert (result.width, result.height, result.frames) == (320, 192, 13) and result.snapped
    assert sorted(p.name for p in tmp_path.iterdir() if p.suffix == ".mp4") == [out.name]


def test_flow_guide_shows_motion_and_white_is_still(tmp_path, sample) -> None:
    frames = list(iter_guide_frames(GuideRequest(sample, resolution=(160, 96), frames=9, fps=12, backend="dis"),
                                    _ctx(tmp_path)))
    assert len(frames) == 9 and all(f.shape == (96, 160, 3) for f in frames)
    # the sample pans: far from white (zero motion) on average
    assert np.mean([255 - f.mean() for f in frames]) > 10
    assert np.array_equal(frames[0], frames[1])  # k = 0 repeats guide frame 1 when the plan starts at frame 0


def test_still_video_gives_a_white_flow_guide(tmp_path) -> None:
    still = tmp_path / "still.mp4"
    from wan2gp_structure_video.preprocessors.video.guide_writer import write_frames
    rng = np.random.default_rng(0)
    image = rng.integers(0, 255, (64, 96, 3), dtype=np.uint8)
    write_frames(still, [image] * 6, 12)
    frames = list(iter_guide_frames(GuideRequest(still, resolution=(96, 64), frames=6, fps=12, backend="dis",
                                                 max_motion=4.0), _ctx(tmp_path)))
    assert min(float(f.mean()) for f in frames) > 235


@pytest.mark.parametrize("size", [(96, 160), (96, 96), (320, 64)])
def test_portrait_square_and_ultrawide_sources(tmp_path, size) -> None:
    width, height = size
    src = make_video(tmp_path / "src.mp4", width, height, frames=8)
    out = tmp_path / "g.mp4"
    build_guide(GuideRequest(src, out, resolution=(128, 64), frames=8, fps=8, guide_type="raw", fit="crop"),
                _ctx(tmp_path))
    assert probe_video(out).size == (128, 64)


def test_clip_treatment_loops_and_range_in_seconds(tmp_path, sample) -> None:
    out = tmp_path / "clip.mp4"
    result = build_guide(GuideRequest(sample, out, resolution=(160, 96), frames=40, fps=24, guide_type="raw",
                                      treatment="clip", start=0.25, end=0.75, range_unit="seconds"), _ctx(tmp_path))
    assert probe_video(out).frame_count == 40 and result.frames == 40


def test_second_run_reads_flows_from_the_cache(tmp_path, sample) -> None:
    ctx = _ctx(tmp_path)
    base = GuideRequest(sample, tmp_path / "a.mp4", resolution=(160, 96), frames=12, fps=16, backend="dis")
    first = build_guide(base, ctx)
    assert first.cache_hit is False
    again = build_guide(base, ctx)
    assert again.render_cached and probe_video(tmp_path / "a.mp4").frame_count == 12
    stronger = build_guide(GuideRequest(sample, tmp_path / "b.mp4", resolution=(160, 96), frames=12, fps=16,
                                        backend="dis", motion_strength=2.0), ctx)
    assert stronger.cache_hit is True and not stronger.render_cached
    a = next(iter_frames(tmp_path / "a.mp4"))
    b = next(iter_frames(tmp_path / "b.mp4"))
    assert (255 - b.astype(int)).mean() > (255 - a.astype(int)).mean()  # strength saturates colours


def test_raft_random_weights_through_the_pool_builds_once_and_unloads(tmp_path, sample) -> None:
    pool = AnnotatorPool(offload="plain")
    ctx = RunContext(pool=pool, use_cache=False)
    for name in ("r1.mp4", "r2.mp4"):
        result = build_guide(GuideRequest(sample, tmp_path / name, resolution=(128, 128), frames=5, fps=8,
                                          backend="raft", raft_model="small", raft_weights="random",
                                          iterations=2, batch_size=2), ctx)
        assert result.backend == "raft-small" and probe_video(tmp_path / name).frame_count == 5
    (name,) = pool.names()
    assert pool.construct_count(name) == 1 and not pool.is_on_gpu() and not pool.in_use()
    labels = [s.label for s in result.timeline.samples]
    assert "raft-small loaded" in labels and any(label.startswith("batch") for label in labels)


def test_cancel_leaves_no_output_and_a_consistent_cache(tmp_path, sample) -> None:
    cancel = threading.Event()
    seen = []

    def on_progress(update):
        seen.append(update)
        if update.stage == "flow" and update.done >= 4:
            cancel.set()

    ctx = _ctx(tmp_path, progress=Progress(on_progress, cancel))
    out = tmp_path / "cancelled.mp4"
    with pytest.raises(CancelledError):
        build_guide(GuideRequest(sample, out, resolution=(160, 96), frames=20, fps=16, backend="dis",
                                 batch_size=2), ctx)
    assert not out.exists() and not list(tmp_path.glob("*.partial*"))
    again = build_guide(GuideRequest(sample, out, resolution=(160, 96), frames=20, fps=16, backend="dis"),
                        _ctx(tmp_path))
    assert again.cache_hit is False and probe_video(out).frame_count == 20


def test_errors_are_typed_one_line_and_write_nothing(tmp_path, sample) -> None:
    one = make_video(tmp_path / "one.mp4", frames=1)
    cases = [
        (GuideRequest(one, tmp_path / "o.mp4", frames=5), InvalidVideoError, "two"),
        (GuideRequest(sample, tmp_path / "o.mp4", guide_type="normals"), OptionError, "flow, canny, raw, depth"),
        (GuideRequest(sample, tmp_path / "o.mp4", resolution="10x10"), TargetError, "(?i)resolution|frame|size|width|height"),
        (GuideRequest(sample, tmp_path / "o.mp4", frames=0), TargetError, "(?i)resolution|frame|size|width|height"),
        (GuideRequest(sample, tmp_path / "o.avi"), OptionError, ".mp4"),
        (GuideRequest(sample, sample), OptionError, "input"),
        (GuideRequest(tmp_path / "missing.mp4", tmp_path / "o.mp4"), InvalidVideoError, "does not exist"),
    ]
    for request, error, text in cases:
        with pytest.raises(error, match=text) as caught:
            build_guide(request, _ctx(tmp_path))
        assert "\n" not in str(caught.value)
    assert not (tmp_path / "o.mp4").exists()
