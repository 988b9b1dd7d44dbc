"""The console script: guide, batches, sample, cache; exit codes and one-line errors."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from videogen import make_video
from wan2gp_structure_video.cli import main
from wan2gp_structure_video.preprocessors.video.video_io import probe_video


def test_guide_command_writes_the_target_and_a_timeline(tmp_path, capsys) -> None:
    src = make_video(tmp_path / "in.mp4", 96, 64, frames=10)
    out = tmp_path / "out" / "guide.mp4"
    code = main(["guide", str(src), "-o", str(out), "--resolution", "130x70", "--frames", "7", "--fps", "8",
                 "--backend", "dis", "--timeline", str(tmp_path / "t.json"), "--cache-dir", str(tmp_path / "c"),
                 "--quiet"])
    assert code == 0
    info = probe_video(out)
    assert (info.width, info.height, info.frame_count, info.fps) == (128, 64, 7, 8.0)
    stdout = capsys.readouterr().out
    assert "snapped" in stdout.lower() and "Guide:" in stdout
    assert json.loads((tmp_path / "t.json").read_text())["samples"]


def test_batch_of_inputs_reports_failures_with_exit_1(tmp_path, capsys) -> None:
    good = make_video(tmp_path / "good.mp4", 64, 48, frames=6)
    bad = tmp_path / "bad.mp4"
    bad.write_text("not a video")
    code = main(["guide", str(good), str(bad), "--out-dir", str(tmp_path / "guides"), "--frames", "5",
                 "--resolution", "64x64", "--type", "canny", "--no-cache", "--quiet"])
    assert code == 1
    (written,) = list((tmp_path / "guides").iterdir())
    assert written.name.startswith("good") and probe_video(written).frame_count == 5
    err = capsys.readouterr().err
    assert "1 of 2 inputs failed" in err and "bad.mp4" in err
    assert not [p for p in (tmp_path / "guides").iterdir() if "bad" in p.name]


def test_bad_input_exits_2_with_one_line(tmp_path, capsys) -> None:
    code = main(["guide", str(tmp_path / "missing.mp4"), "-o", str(tmp_path / "g.mp4"), "--quiet"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and err.startswith("error:") and "does not exist" in err and len(err.splitlines()) == 1
    assert main(["guide", str(tmp_path / "missing.mp4"), "-o", str(tmp_path / "g.mp4"), "--motion-strength", "-1",
                 "--quiet"]) == 2
    assert not (tmp_path / "g.mp4").exists()


def test_sample_and_cache_commands(tmp_path, capsys) -> None:
    sample = tmp_path / "s.mp4"
    assert main(["sample", str(sample), "--resolution", "128x96", "--frames", "6", "--fps", "12"]) == 0
    assert probe_video(sample).frame_count == 6
    cache = str(tmp_path / "cache")
    assert main(["guide", str(sample), "-o", str(tmp_path / "g.mp4"), "--frames", "6", "--resolution", "128x96",
                 "--backend", "dis", "--cache-dir", cache, "--quiet"]) == 0
    capsys.readouterr()
    assert main(["cache", "stats", "--cache-dir", cache]) == 0
    assert "1 flow entry, 1 rendered guide" in capsys.readouterr().out
    assert main(["cache", "clear", "--cache-dir", cache]) == 0
    assert "Cleared" in capsys.readouterr().out


def test_console_script_runs_the_embedded_sample(tmp_path) -> None:
    env = dict(os.environ, WAN2GP_STRUCTURE_VIDEO_HOME=str(tmp_path / "home"))
    out = tmp_path / "g.mp4"
    proc = subprocess.run([sys.executable, "-m", "wan2gp_structure_video.cli", "guide", "--sample", "-o", str(out),
                           "--frames", "9", "--resolution", "256x144", "--backend", "dis", "--quiet"],
                          capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert probe_video(out).frame_count == 9


def test_cli_choices_are_the_pipelines() -> None:
    """The CLI spells the option choices itself (so --help imports nothing heavy): they must not drift."""
    from wan2gp_structure_video.cli import CHOICES
    from wan2gp_structure_video.pipeline import request
    from wan2gp_structure_video.preprocessors.video import fit
    from wan2gp_structure_video.preprocessors.timeline import frame_plan

    assert CHOICES == {"guide_type": request.GUIDE_TYPES, "treatment": frame_plan.TREATMENTS, "fit": fit.FIT_MODES,
                       "range_unit": frame_plan.RANGE_UNITS, "backend": request.BACKENDS,
                       "raft_model": request.RAFT_MODELS, "precision": request.PRECISIONS,
                       "teardown": request.TEARDOWNS, "depth_variant": request.DEPTH_VARIANTS,
                       "cuts": request.CUT_MODES}


def test_version(capsys) -> None:
    from wan2gp_structure_video import __version__

    with pytest.raises(SystemExit) as exit_info:
        main(["--version"])
    assert exit_info.value.code == 0 and capsys.readouterr().out.strip().endswith(__version__)
