"""Real footage: a hard cut, a cross fade, a whip-pan burst, a damaged (cut short) file, segments in
``clip`` mode — end to end on pans over scikit-image photographs (DIS, CPU)."""
from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np
import pytest

from wan2gp_structure_video import GuideRequest, RunContext, build_guide
from wan2gp_structure_video.cli import main
from wan2gp_structure_video.errors import InvalidVideoError, TargetError
from wan2gp_structure_video.memory import AnnotatorPool
from wan2gp_structure_video.pipeline import iter_guide_flows, iter_guide_frames, prepare
from wan2gp_structure_video.pipeline.multi import build_segment_guides
from wan2gp_structure_video.preprocessors.cache.flow_cache import FlowCache
from wan2gp_structure_video.preprocessors.timeline.segments import SegmentWindow
from wan2gp_structure_video.preprocessors.video.video_io import iter_frames

from videogen import (cut_frames, fade_frames, make_truncated, make_video, pan_frames, photo, steady_offsets,
                      whip_offsets, write_rgb_video)

WIDTH, HEIGHT = 160, 96
CUT = 24  # the first source frame of the second shot
SPEED = 2.0


def _saturation(frame: np.ndarray) -> float:
    return float(cv2.cvtColor(frame, cv2.COLOR_RGB2HSV)[..., 1].mean())


def _magnitude(flow: np.ndarray) -> float:
    return float(np.hypot(flow[..., 0], flow[..., 1])[12:-12, 12:-12].mean())


def _no_cache() -> RunContext:
    return RunContext(use_cache=False)


@pytest.fixture(scope="module")
def sources(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("footage")
    size = dict(width=WIDTH, height=HEIGHT)
    return {
        "pan": write_rgb_video(folder / "pan.mp4", pan_frames(photo("astronaut"), steady_offsets(48, SPEED), **size)),
        "cut": write_rgb_video(folder / "cut.mp4", cut_frames("astronaut", "coffee", 48, CUT, speed=SPEED, **size)),
        "fade": write_rgb_video(folder / "fade.mp4", fade_frames("astronaut", "coffee", 48, range(16, 32), **size)),
        # 2 of 69 pairs (2.9 %) jump 60 px: a whip pan
        "whip": write_rgb_video(folder / "whip.mp4", pan_frames(photo("astronaut"),
                                                                whip_offsets(70, 1.5, range(34, 36), 60.0), **size)),
        "steady": write_rgb_video(folder / "steady.mp4", pan_frames(photo("astronaut"), steady_offsets(70, 1.5),
                                                                    **size)),
    }


def _touches(prepared, k: int, lo: float, hi: float) -> bool:
    """Whether guide frame ``k``'s motion interval overlaps source time ``[lo, hi]``."""
    positions, seams, step = prepared.motion.positions, prepared.motion.seams, prepared.motion.step
    start = positions[k] - step if seams[k] else positions[k - 1]
    return start < hi and positions[k] > lo


@pytest.mark.parametrize("treatment,frames", [("adjust", 49), ("clip", 60)])  # clip: 90 source frames, loops once
def test_a_hard_cut_is_never_drawn_and_does_not_wash_out_the_guide(sources, treatment, frames) -> None:
    request = GuideRequest(sources["cut"], None, resolution=(WIDTH, HEIGHT), frames=frames, fps=16, treatment=treatment,
                           backend="dis")
    prepared = prepare(request)
    guide = list(iter_guide_frames(request, _no_cache(), prepared))
    assert prepared.result.cuts == [CUT] and prepared.result.cut_times == [pytest.approx(1.0)]
    assert "1 hard cut at source frame 24 (1.00 s)" in prepared.result.summary()
    clean = [_saturation(f) for f in iter_guide_frames(replace(request, input=sources["pan"]), _no_cache())]
    reference = float(np.median(clean))
    near = [k for k in range(frames) if _touches(prepared, k, CUT - 1, CUT)]
    assert near and (treatment == "adjust" or len(near) >= 2)  # clip: the cut comes back after the loop
    away = [k for k in range(frames) if k not in near]
    assert all(abs(_saturation(guide[k]) - reference) <= 0.1 * reference for k in away), \
        ([round(_saturation(g)) for g in guide], reference)
    flows = list(iter_guide_flows(request, _no_cache()))
    step_motion = SPEED * prepared.motion.step
    assert all(_magnitude(flows[k]) <= 1.15 * step_motion for k in near), [_magnitude(flows[k]) for k in near]
    # With cuts off the flow between the two shots is drawn: tens of pixels of "motion".
    off = list(iter_guide_flows(replace(request, cuts="off"), _no_cache()))
    assert max(_magnitude(off[k]) for k in near) > 3 * step_motion


def test_a_cross_fade_is_not_a_cut(sources) -> None:
    request = GuideRequest(sources["fade"], None, resolution=(WIDTH, HEIGHT), frames=48, fps=16, backend="dis")
    prepared = prepare(request)
    flows = list(iter_guide_flows(request, _no_cache(), prepared))
    assert prepared.result.cuts == [] and len(flows) == 48


def test_a_whip_pan_burst_does_not_wash_out_the_rest(sources) -> None:
    request = GuideRequest(sources["whip"], None, resolution=(WIDTH, HEIGHT), frames=70, fps=16, backend="dis")
    prepared = prepare(request)
    guide = list(iter_guide_frames(request, _no_cache(), prepared))
    reference = float(np.median([_saturation(f) for f in iter_guide_frames(replace(request, input=sources["steady"]),
                                                                            _no_cache())]))
    burst = {k for k in range(70) if _touches(prepared, k, 34, 36)}
    away = [k for k in range(70) if k not in burst]
    assert all(abs(_saturation(guide[k]) - reference) <= 0.1 * reference for k in away)
    assert all(_saturation(guide[k]) >= 0.9 * reference for k in burst)  # drawn at full colour, not dropped
    assert any("left out of the colour scale" in w for w in prepared.result.warnings)
    # the percentile option keeps its meaning: a lower one still moves the scale down
    lower = prepare(replace(request, scale_percentile=50.0))
    list(iter_guide_frames(lower.request, _no_cache(), lower))
    assert lower.result.flow_scale < prepared.result.flow_scale


def _manifests(cache_dir: Path) -> list[Path]:
    return [p for p in cache_dir.rglob("manifest.json") if json.loads(p.read_text()).get("nodes") is not None]


def test_cut_marks_are_cached_and_recomputed_for_entries_of_the_previous_release(sources, tmp_path) -> None:
    cache = FlowCache(tmp_path / "cache")
    ctx = RunContext(cache=cache, pool=AnnotatorPool(offload="plain"))
    first = build_guide(GuideRequest(sources["cut"], tmp_path / "a.mp4", resolution=(WIDTH, HEIGHT), frames=49,
                                     backend="dis"), ctx)
    assert first.cuts == [CUT] and not first.flows_from_cache
    [manifest] = _manifests(tmp_path / "cache")
    data = json.loads(manifest.read_text())
    assert data["cuts"] == [CUT - 1]  # row 23: the pair (23, 24)
    retarget = GuideRequest(sources["cut"], tmp_path / "b.mp4", resolution=(WIDTH, HEIGHT), frames=41, backend="dis")
    hit = build_guide(retarget, ctx)
    assert hit.flows_from_cache and hit.cuts == [CUT]
    again = build_guide(replace(retarget, output=tmp_path / "c.mp4"), ctx)
    assert again.render_cached and again.cuts == [CUT]  # a guide copied from the render cache says so too
    other = replace(retarget, frames=33, output=None)
    expected = [f.copy() for f in iter_guide_frames(other, ctx)]
    del data["cuts"]  # what the current release writes: no marks
    manifest.write_text(json.dumps(data))
    legacy = build_guide(replace(other, output=tmp_path / "d.mp4"), ctx)
    assert legacy.flows_from_cache and not legacy.render_cached and legacy.cuts == [CUT]
    assert any("recomputed" in note for note in legacy.memory_notes)
    assert all(np.array_equal(a, b) for a, b in zip(expected, iter_guide_frames(other, ctx)))


def test_cli_reports_cuts_and_cuts_off(sources, tmp_path, capsys) -> None:
    base = ["guide", str(sources["cut"]), "--backend", "dis", "--resolution", f"{WIDTH}x{HEIGHT}", "--frames", "25",
            "--no-cache", "-q"]
    assert main(base + ["-o", str(tmp_path / "a.mp4")]) == 0
    assert "1 hard cut at source frame 24" in capsys.readouterr().out
    assert main(base + ["-o", str(tmp_path / "b.mp4"), "--cuts", "off"]) == 0
    assert "hard cut" not in capsys.readouterr().out
    with pytest.raises(SystemExit) as exit_info:
        main(base + ["-o", str(tmp_path / "c.mp4"), "--cuts", "maybe"])
    assert exit_info.value.code == 2 and "--cuts" in capsys.readouterr().err


@pytest.fixture()
def half_file(tmp_path) -> Path:
    full = make_video(tmp_path / "full.mp4", 128, 96, frames=48, gop=1, faststart=True)
    return make_truncated(full, tmp_path / "half.mp4", 0.5)


def test_a_file_cut_short_is_exit_2_one_line_and_nothing_written(half_file, tmp_path, capsys) -> None:
    out = tmp_path / "guide.mp4"
    args = ["guide", str(half_file), "-o", str(out), "--backend", "dis", "--resolution", "128x96", "--frames", "17",
            "--no-cache", "-q"]
    assert main(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "of the 48" in err[0] and "24 frames" in err[0] and "--allow-short" in err[0]
    assert not out.exists() and list(tmp_path.glob("guide*")) == []
    assert main(args + ["--allow-short"]) == 0
    captured = capsys.readouterr()
    assert out.exists() and len(list(iter_frames(out))) == 17
    assert any(line.startswith("Note: half.mp4 is damaged or incomplete: 24 frames") for line in captured.err.splitlines())


def test_the_api_refuses_a_short_file_unless_allowed(half_file, tmp_path) -> None:
    request = GuideRequest(half_file, tmp_path / "g.mp4", resolution=(128, 96), frames=9, backend="dis")
    with pytest.raises(InvalidVideoError, match="of the 48"):
        build_guide(request, _no_cache())
    assert not (tmp_path / "g.mp4").exists()
    result = build_guide(replace(request, allow_short=True), _no_cache())
    assert result.output.exists() and any("short source allowed" in w for w in result.warnings)
    with pytest.raises(Exception, match="allow_short"):
        build_guide(replace(request, allow_short="yes"), _no_cache())


def test_a_cut_matroska_file_is_judged_by_its_duration(tmp_path) -> None:
    """Matroska announces no frame count: the duration says how many frames are missing."""
    cut = make_truncated(make_video(tmp_path / "full.mkv", 128, 96, frames=30, codec="ffv1"), tmp_path / "cut.mkv")
    with pytest.raises(InvalidVideoError, match=r"could be read of the 30"):
        prepare(GuideRequest(cut, None, resolution=(128, 96), frames=9))
    assert prepare(GuideRequest(cut, None, resolution=(128, 96), frames=9, allow_short=True)).info.allow_short


def test_segments_in_clip_mode_compute_only_the_pairs_the_timeline_needs(sources, tmp_path, backend_spy) -> None:
    pairs = backend_spy
    # 70 source frames at 24 fps; 41 guide frames at 24 fps reach source frame 40: 40 pairs, not 69
    request = GuideRequest(sources["steady"], None, resolution=(WIDTH, HEIGHT), frames=41, fps=24.0,
                           treatment="clip", backend="dis")
    run = build_segment_guides(request, [SegmentWindow(0, 21), SegmentWindow(20, 21)], tmp_path / "segments",
                               RunContext(use_cache=False))
    assert len(run.segments) == 2 and sum(pairs) == 40


def test_segment_windows_as_tuples_or_floats_are_one_line_errors(sources, tmp_path) -> None:
    request = GuideRequest(sources["pan"], None, resolution=(WIDTH, HEIGHT), frames=21, backend="dis")
    for windows, words in (([(0, 10)], "is a tuple"), ([SegmentWindow(0.0, 10)], "whole number"),
                           ([SegmentWindow(0, 10.5)], "whole number"), (SegmentWindow(0, 10), "list")):
        with pytest.raises(TargetError, match=words):
            build_segment_guides(request, windows, tmp_path, _no_cache())


def test_the_tab_details_say_where_the_cuts_are_and_name_its_short_source_control() -> None:
    pytest.importorskip("gradio")
    from wan2gp_structure_video.pipeline.request import GuideResult
    from wan2gp_structure_video.ui.extract_panel import details_markdown
    from wan2gp_structure_video.ui.wording import ui_words

    result = GuideResult(output=None, frames=49, width=WIDTH, height=HEIGHT, fps=16.0, guide_type="flow",
                         requested_size=(WIDTH, HEIGHT), cuts=[24, 60], cut_times=[1.0, 2.5])
    assert "Shots: 2 hard cuts at source frame 24 (1.00 s), frame 60 (2.50 s) — never drawn as motion" \
        in details_markdown(result)
    result.source["cuts"] = "off"
    assert "Shots: cut detection off" in details_markdown(replace(result, cuts=[], cut_times=[]))
    assert '"Accept a damaged (short) video"' in ui_words("or allow a short source (--allow-short, allow_short=True)")
