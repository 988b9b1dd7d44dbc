"""Every bad input of issue 6 through the Python API and the CLI: a correct guide or a typed one-line
error — never another exception, a partial output file or a corrupt cache entry."""
from __future__ import annotations

from pathlib import Path

import pytest

from robustness.rbkit import EXPECTED, assert_cache_consistent, assert_guide, bad_input_builders, leftovers
from videogen import make_video
from wan2gp_structure_video import GuideRequest, RunContext, build_guide
from wan2gp_structure_video.cli import main
from wan2gp_structure_video.errors import StructureVideoError
from wan2gp_structure_video.memory import AnnotatorPool
from wan2gp_structure_video.preprocessors.cache.flow_cache import FlowCache

SIZE, FRAMES, FPS = (96, 64), 6, 8.0


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("bad inputs")
    good = make_video(root / "good.mp4", 64, 48, frames=12)
    built = {name: build() for name, build in bad_input_builders(root / "cases", good).items()}
    built["good"] = good
    return built


def _good_rerun(inputs, out_dir: Path, cache_root: Path) -> None:
    """A good request on the same cache still works after the case (nothing corrupt was left)."""
    out = out_dir / "after.mp4"
    build_guide(GuideRequest(inputs["good"], out, resolution=SIZE, frames=FRAMES, fps=FPS, backend="dis"),
                RunContext(cache=FlowCache(cache_root), pool=AnnotatorPool(offload="plain")))
    assert_guide(out, SIZE, FRAMES, FPS)
    assert_cache_consistent(cache_root)


def _check_after(case: str, ok: bool, out: Path, out_dir: Path, cache_root: Path, inputs, why: str = "") -> None:
    expected = EXPECTED[case]
    if expected != "either":
        assert ok == (expected == "ok"), f"{case}: expected {expected}, got {why or 'a guide'}"
    if ok:
        assert_guide(out, SIZE, FRAMES, FPS)
    else:
        assert not out.exists(), f"{case}: an output was left after an error"
    assert not leftovers(out_dir), f"{case}: partial files left: {leftovers(out_dir)}"
    assert_cache_consistent(cache_root)
    _good_rerun(inputs, out_dir, cache_root)


@pytest.mark.parametrize("case", sorted(EXPECTED))
def test_bad_input_through_the_api(tmp_path, inputs, case) -> None:
    out_dir, cache_root = tmp_path / "out", tmp_path / "cache"
    out = out_dir / "guide.mp4"
    ctx = RunContext(cache=FlowCache(cache_root), pool=AnnotatorPool(offload="plain"))
    try:
        result = build_guide(GuideRequest(inputs[case], out, resolution=SIZE, frames=FRAMES, fps=FPS,
                                          backend="dis"), ctx)
        ok, message = True, ""
        assert (result.width, result.height, result.frames) == (*SIZE, FRAMES)
    except StructureVideoError as exc:  # any other exception type fails the test
        ok = False
        message = str(exc)
        assert message and "\n" not in message, f"{case}: not a one-line message: {message!r}"
        assert "Traceback" not in message
    _check_after(case, ok, out, out_dir, cache_root, inputs, message)


@pytest.mark.parametrize("case", sorted(EXPECTED))
def test_bad_input_through_the_cli(tmp_path, inputs, case, capsys) -> None:
    out_dir, cache_root = tmp_path / "out", tmp_path / "cache"
    out = out_dir / "guide.mp4"
    code = main(["guide", str(inputs[case]), "-o", str(out), "--resolution", f"{SIZE[0]}x{SIZE[1]}",
                 "--frames", str(FRAMES), "--fps", str(FPS), "--backend", "dis", "--cache-dir", str(cache_root),
                 "--quiet"])
    err = capsys.readouterr().err
    assert code in (0, 2), f"{case}: exit code {code}"
    if code == 2:
        lines = [line for line in err.splitlines() if line.strip()]
        assert len(lines) == 1 and lines[0].startswith("error: "), f"{case}: stderr {err!r}"
    _check_after(case, code == 0, out, out_dir, cache_root, inputs, err.strip())


@pytest.mark.parametrize("guide_type", ["raw", "canny"])
def test_one_frame_video_is_fine_for_image_guides(tmp_path, inputs, guide_type) -> None:
    out = tmp_path / "g.mp4"
    build_guide(GuideRequest(inputs["one-frame"], out, resolution=SIZE, frames=FRAMES, fps=FPS,
                             guide_type=guide_type), RunContext(use_cache=False))
    assert_guide(out, SIZE, FRAMES, FPS)


def test_rotated_source_gives_a_portrait_fit(tmp_path, inputs) -> None:
    """Rotation metadata is applied before fitting: a 64x48 stream shown at 90° is a 48x64 source."""
    out = tmp_path / "g.mp4"
    result = build_guide(GuideRequest(inputs["rotation-90"], out, resolution=(64, 64), frames=4, fps=FPS,
                                      guide_type="raw"), RunContext(use_cache=False))
    assert result.source["rotation"] == 90 and (result.source["width"], result.source["height"]) == (48, 64)
    assert_guide(out, (64, 64), 4)


def test_huge_header_is_refused_before_decoding(tmp_path, inputs) -> None:
    with pytest.raises(StructureVideoError, match="8192x8192"):
        build_guide(GuideRequest(inputs["huge-8192-header"], tmp_path / "g.mp4", resolution=SIZE, frames=FRAMES),
                    RunContext(use_cache=False))
