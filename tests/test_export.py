"""Raw flow exports (``export`` command, ``export_rows``): known drift, .flo files, the cache, bad input.

CPU only: OpenCV DIS over a steady pan of a scikit-image photograph.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from wan2gp_structure_video import GuideRequest, RunContext, build_guide
from wan2gp_structure_video.cli import main
from wan2gp_structure_video.errors import OutputError
from wan2gp_structure_video.pipeline import export as export_module
from wan2gp_structure_video.pipeline.annotators import flow as flow_annotator
from wan2gp_structure_video.pipeline.export import SIDECAR_NAME, export_rows, read_flo
from wan2gp_structure_video.preprocessors.cache.flow_cache import FlowCache

from videogen import pan_frames, photo, steady_offsets, write_rgb_video

WIDTH, HEIGHT = 160, 96
SPEED = 2.0  # pixels per frame: the view moves right, so the content moves left (u = -SPEED)


@pytest.fixture(scope="module")
def pan_video(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("pan")
    return write_rgb_video(folder / "pan.mp4", pan_frames(photo("astronaut"), steady_offsets(14, SPEED)))


def _request(source: Path, **kw) -> GuideRequest:
    return GuideRequest(source, resolution=(WIDTH, HEIGHT), backend="dis", **kw)


def _ctx(tmp_path: Path) -> RunContext:
    return RunContext(cache=FlowCache(tmp_path / "cache"))


def test_a_flow_export_measures_the_known_drift_and_its_flo_files_equal_the_npy(tmp_path, pan_video) -> None:
    result = export_rows(_request(pan_video), tmp_path / "out", flo=True, context=RunContext(use_cache=False))
    flows = np.load(tmp_path / "out" / "flows.npy", allow_pickle=False)
    assert flows.dtype == np.float16 and flows.shape == (13, HEIGHT, WIDTH, 2)
    assert abs(float(flows[..., 0].astype(np.float64).mean()) + SPEED) < 0.1
    assert abs(float(flows[..., 1].astype(np.float64).mean())) < 0.1
    flo_files = sorted((tmp_path / "out").glob("*.flo"))
    assert [p.name for p in flo_files] == [f"flow_{i:06d}.flo" for i in range(13)] == result.sidecar["files"]["flo"]
    for i, path in enumerate(flo_files):
        assert path.read_bytes()[:4] == b"PIEH"
        np.testing.assert_array_equal(read_flo(path), flows[i].astype(np.float32))
    sidecar = json.loads((tmp_path / "out" / SIDECAR_NAME).read_text())
    assert sidecar["shape"] == [13, HEIGHT, WIDTH, 2] and sidecar["dtype"] == "float16"
    assert sidecar["frames"] == list(range(14)) and sidecar["stride"] == 1
    assert sidecar["size"] == [WIDTH, HEIGHT] and sidecar["source_fps"] == pytest.approx(24.0)
    assert sidecar["model"]["backend"] == "dis" and sidecar["from_cache"] is False
    assert len(sidecar["source"]["sha256"]) == 64 and sidecar["range"]["first"] == 0
    assert "pixels" in sidecar["units"]
    assert not [p for p in tmp_path.iterdir() if ".partial" in p.name]


def test_an_export_from_the_cache_runs_no_annotator_and_slices_the_range(tmp_path, pan_video, backend_spy) -> None:
    ctx = _ctx(tmp_path)
    # A guide stepping through every source frame caches the whole clip's flows on the source timeline.
    build_guide(_request(pan_video, output=tmp_path / "g.mp4", frames=14, fps=24.0), ctx)
    computed = sum(backend_spy)
    assert computed > 0
    whole = export_rows(_request(pan_video), tmp_path / "whole", context=ctx)
    part = export_rows(_request(pan_video, start=3, end=9), tmp_path / "part", context=ctx)
    assert sum(backend_spy) == computed  # nothing extracted again
    assert whole.from_cache and part.from_cache and part.sidecar["from_cache"] is True
    assert part.frames == tuple(range(3, 9)) and part.shape == (5, HEIGHT, WIDTH, 2)
    np.testing.assert_array_equal(np.load(part.npy), np.load(whole.npy)[3:8])
    # Without a cache the same range is extracted on its own (the anchor frame before it left out): same rows.
    fresh = export_rows(_request(pan_video, start=3, end=9), tmp_path / "fresh", context=RunContext(use_cache=False))
    assert not fresh.from_cache and fresh.frames == part.frames
    np.testing.assert_array_equal(np.load(fresh.npy), np.load(part.npy))


def test_a_failed_write_leaves_nothing(tmp_path, pan_video, monkeypatch) -> None:
    def full(path, flow):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(flow_annotator, "write_flo", full)
    with pytest.raises(OutputError, match="free disk space"):
        export_rows(_request(pan_video), tmp_path / "out", flo=True, context=RunContext(use_cache=False))
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def _exit_code(argv: list[str]) -> int:
    """``main``'s status, also for argument errors (argparse exits)."""
    try:
        return main(argv)
    except SystemExit as exc:
        return int(exc.code)


@pytest.mark.parametrize("args, words", [
    (["--type", "canny"], "invalid choice"),
    (["--start", "5", "--end", "6"], "needs at least two"),
    (["--resolution", "10x10"], "--resolution"),
    (["--end", "2", "--start", "4"], "not after --start"),
    (["--batch-size", "-1"], "--batch-size"),
])
def test_cli_errors_are_one_line_exit_2_and_write_nothing(tmp_path, pan_video, capsys, args, words) -> None:
    out = tmp_path / "exports" / "run"
    code = _exit_code(["export", str(pan_video), "--out", str(out), "--backend", "dis", "--no-cache", *args])
    err = capsys.readouterr().err
    assert code == 2 and words in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "exports").exists()


def test_cli_refuses_a_folder_that_is_not_empty_or_a_missing_input(tmp_path, pan_video, capsys) -> None:
    taken = tmp_path / "taken"
    taken.mkdir()
    (taken / "keep.txt").write_text("mine")
    assert main(["export", str(pan_video), "--out", str(taken), "--no-cache"]) == 2
    assert "not empty" in capsys.readouterr().err and sorted(p.name for p in taken.iterdir()) == ["keep.txt"]
    assert main(["export", str(tmp_path / "missing.mp4"), "--out", str(tmp_path / "x")]) == 2
    assert "does not exist" in capsys.readouterr().err and not (tmp_path / "x").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["taken"]


def test_cli_export_writes_the_folder_into_an_empty_one(tmp_path, pan_video, capsys) -> None:
    out = tmp_path / "empty"
    out.mkdir()
    code = main(["export", str(pan_video), "--out", str(out), "--resolution", f"{WIDTH}x{HEIGHT}", "--backend", "dis",
                 "--start", "2", "--end", "6", "--flo", "--cache-dir", str(tmp_path / "cache"), "-q"])
    assert code == 0, capsys.readouterr().err
    assert "Exported flow flows.npy (3, 96, 160, 2)" in capsys.readouterr().out
    assert sorted(p.name for p in out.iterdir()) == ["export.json", "flow_000000.flo", "flow_000001.flo",
                                                     "flow_000002.flo", "flows.npy"]
    assert json.loads((out / "export.json").read_text())["frames"] == [2, 3, 4, 5]
