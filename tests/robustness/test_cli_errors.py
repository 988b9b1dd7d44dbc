"""Issue 16: every CLI error is one line, exit 2, checked before any work, nothing written, no traceback."""
from __future__ import annotations

import io
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from videogen import make_video
from wan2gp_structure_video import cli, cli_outputs
from wan2gp_structure_video.cli import main
from wan2gp_structure_video.progress import ConsoleProgress, ProgressUpdate


@pytest.fixture()
def no_work(monkeypatch):
    """Fail the test if the pipeline is reached: the error must come before any decoding."""
    import wan2gp_structure_video.pipeline as pipeline

    def refuse(*args, **kwargs):
        raise AssertionError("build_guide ran although the command line was wrong")

    monkeypatch.setattr(pipeline, "build_guide", refuse)


@pytest.fixture()
def source(tmp_path_factory) -> Path:
    return make_video(tmp_path_factory.mktemp("src") / "in.mp4", 96, 64, frames=10)


def _one_line_error(code: int, err: str, *needles: str) -> None:
    text = err.strip()
    assert code == 2, text
    assert len(text.splitlines()) == 1, text
    assert text.startswith("error:") and "Traceback" not in text
    for needle in needles:
        assert needle in text, (needle, text)


def _files(folder: Path) -> set[str]:
    return {str(p.relative_to(folder)) for p in folder.rglob("*")}


def _guide(source: Path, *extra: str) -> list[str]:
    return ["guide", str(source), "--frames", "5", "--resolution", "96x64", "--backend", "dis", "--no-cache",
            "--quiet", *extra]


@pytest.mark.parametrize("case", ["suffix", "under_a_file", "folder"])
def test_bad_timeline_path_is_rejected_before_work(tmp_path, source, capsys, no_work, case) -> None:
    (tmp_path / "notes.txt").write_text("x")
    (tmp_path / "adir.png").mkdir()
    timeline, needle = {"suffix": (tmp_path / "t.txt", ".png, .csv or .json"),
                        "under_a_file": (tmp_path / "notes.txt" / "t.png", "is a file"),
                        "folder": (tmp_path / "adir.png", "is a folder")}[case]
    before = _files(tmp_path)
    code = main(_guide(source, "--out", str(tmp_path / "g.mp4"), "--timeline", str(timeline)))
    _one_line_error(code, capsys.readouterr().err, "--timeline", needle)
    assert _files(tmp_path) == before


def test_timeline_in_a_missing_folder_is_created(tmp_path, source, capsys) -> None:
    timeline = tmp_path / "new" / "deeper" / "t.csv"
    assert main(_guide(source, "--out", str(tmp_path / "g.mp4"), "--timeline", str(timeline))) == 0
    assert timeline.read_text().startswith(("t", "time", "#")) or timeline.stat().st_size > 0


@pytest.mark.parametrize("case", ["suffix", "under_a_file", "out_dir_is_a_file", "both"])
def test_bad_guide_outputs(tmp_path, source, capsys, no_work, case) -> None:
    (tmp_path / "f.txt").write_text("x")
    args = {"suffix": ["--out", str(tmp_path / "g.avi")],
            "under_a_file": ["--out", str(tmp_path / "f.txt" / "g.mp4")],
            "out_dir_is_a_file": ["--out-dir", str(tmp_path / "f.txt")],
            "both": ["--out", str(tmp_path / "g.mp4"), "--out-dir", str(tmp_path / "d")]}[case]
    needle = {"suffix": ".mp4", "under_a_file": "is a file", "out_dir_is_a_file": "existing file",
              "both": "not both"}[case]
    before = _files(tmp_path)
    code = main(_guide(source, *args))
    err = capsys.readouterr().err
    _one_line_error(code, err, needle)
    assert "disk space" not in err
    assert _files(tmp_path) == before


def test_unwritable_output_folder_gets_permission_advice(tmp_path, source, capsys, no_work, monkeypatch) -> None:
    locked = tmp_path / "locked"
    locked.mkdir()
    real_access = os.access
    monkeypatch.setattr(cli_outputs.os, "access", lambda path, mode: False if Path(path) == locked else real_access(path, mode))
    for args in (["--out", str(locked / "g.mp4")], ["--out-dir", str(locked / "guides")]):
        code = main(_guide(source, *args))
        err = capsys.readouterr().err
        _one_line_error(code, err, "not writable")
        assert "disk space" not in err
    assert _files(locked) == set()


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="root writes anywhere")
def test_really_unwritable_folder(tmp_path, source, capsys, no_work) -> None:
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    code = main(_guide(source, "--out", str(locked / "g.mp4")))
    _one_line_error(code, capsys.readouterr().err, "not writable")


@pytest.mark.parametrize("args,needle", [
    (["--frames", "0"], "--frames"), (["--fps", "0"], "--fps"), (["--fps", "nan"], "--fps"),
    (["--resolution", "10x10"], "--resolution"), (["--resolution", "641x360"], "--resolution"),
    (["--resolution", "big"], "--resolution")])
def test_sample_options_name_the_option(tmp_path, capsys, args, needle) -> None:
    code = main(["sample", str(tmp_path / "s.mp4"), *args])
    _one_line_error(code, capsys.readouterr().err, needle)
    assert _files(tmp_path) == set()


def test_sample_output_suffix(tmp_path, capsys) -> None:
    code = main(["sample", str(tmp_path / "s.gif")])
    _one_line_error(code, capsys.readouterr().err, ".mp4")
    assert _files(tmp_path) == set()


def test_app_on_a_taken_port_names_a_free_one(capsys) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        code = main(["app", "--port", str(port)])
    err = capsys.readouterr().err
    _one_line_error(code, err, f"port {port} is in use", "pass --port ")
    suggested = int(err.rsplit("--port ", 1)[1].rstrip(".\n"))
    assert suggested != port
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", suggested))  # the suggested port is really free


def test_app_port_out_of_range(capsys) -> None:
    _one_line_error(main(["app", "--port", "70000"]), capsys.readouterr().err, "--port 70000")


@pytest.mark.parametrize("args,needle", [
    (["guide", "x.mp4", "--type", "bogus"], "--type"),
    (["guide", "x.mp4", "--frames", "many"], "--frames"),
    (["guide", "x.mp4", "--no-such-option"], "--no-such-option"),
    (["nosuchcommand"], "nosuchcommand")])
def test_argument_errors_are_one_line(capsys, args, needle) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(args)
    _one_line_error(exit_info.value.code, capsys.readouterr().err, needle, "--help")


def test_batch_size_zero_is_automatic_and_negative_is_refused(tmp_path, source, capsys) -> None:
    assert main(_guide(source, "--out", str(tmp_path / "g.mp4"), "--batch-size", "0")) == 0
    assert (tmp_path / "g.mp4").exists()
    code = main(_guide(source, "--out", str(tmp_path / "h.mp4"), "--batch-size", "-1"))
    _one_line_error(code, capsys.readouterr().err, "--batch-size", "0 for automatic")
    assert not (tmp_path / "h.mp4").exists()
    assert "0 (the default) = automatic" in " ".join(cli.build_parser()._subparsers._group_actions[0]
                                                      .choices["guide"].format_help().split())


def test_backend_note_once_not_quiet_not_on_cache_hits(tmp_path, capsys) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    for name in ("a", "b"):
        make_video(folder / f"{name}.mp4", 96, 64, frames=8)
    base = ["guide", str(folder), "--out-dir", str(tmp_path / "out"), "--frames", "5", "--resolution", "96x64",
            "--backend", "dis", "--cache-dir", str(tmp_path / "cache")]
    assert main(base) == 0
    assert capsys.readouterr().err.count("Flow backend:") == 1
    assert main(base) == 0  # every flow from the cache now
    assert "Flow backend:" not in capsys.readouterr().err
    assert main([*base, "--no-cache", "-q"]) == 0
    assert "Flow backend:" not in capsys.readouterr().err


def test_end_past_the_video_is_noted(tmp_path, capsys) -> None:
    source = make_video(tmp_path / "ten.mp4", 96, 64, frames=20, fps=10.0)  # 2 s
    code = main(["guide", str(source), "--out", str(tmp_path / "g.mp4"), "--frames", "5", "--resolution", "96x64",
                 "--type", "canny", "--end", "20", "--range-unit", "seconds", "--no-cache", "--quiet"])
    assert code == 0
    err = capsys.readouterr().err
    assert "--end 20 seconds is past the end of ten.mp4 (2.00 s)" in err and "clamped" in err
    main(["guide", str(source), "--out", str(tmp_path / "h.mp4"), "--frames", "5", "--resolution", "96x64",
          "--type", "canny", "--end", "1.5", "--range-unit", "seconds", "--no-cache", "--quiet"])
    assert "clamped" not in capsys.readouterr().err


_PROBE = """
import sys
from wan2gp_structure_video.cli import main
try:
    main(sys.argv[1:])
except SystemExit:
    pass
heavy = sorted(m for m in ("torch", "torchvision", "gradio", "matplotlib", "cv2", "av") if m in sys.modules)
print("HEAVY:" + ",".join(heavy))
"""


@pytest.mark.parametrize("args", [["--help"], ["--version"], ["guide", "--help"], ["guide", "x.mp4", "--type", "no"],
                                  ["sample", "s.mp4", "--frames", "0"], ["guide", "x.mp4", "-o", "g.avi"]])
def test_help_and_errors_import_nothing_heavy(tmp_path, args) -> None:
    proc = subprocess.run([sys.executable, "-c", _PROBE, *args], capture_output=True, text=True, timeout=120,
                          cwd=tmp_path)
    assert proc.stdout.strip().splitlines()[-1] == "HEAVY:", proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr


def test_progress_off_a_terminal_is_plain_sparse_lines() -> None:
    stream, now = io.StringIO(), [0.0]
    console = ConsoleProgress(stream, interval_s=5.0, clock=lambda: now[0], terminal=False)
    for done in range(1, 1001):
        now[0] += 0.001  # a fast stage: 1 s in all, so only the 10 % steps print
        console(ProgressUpdate("flow", done, 1000))
    console(ProgressUpdate("encode", 1, 3))
    for done in (2, 3):
        now[0] += 60.0  # a slow stage: every update is past the interval
        console(ProgressUpdate("encode", done, 3))
    console.close()
    text = stream.getvalue()
    assert "\r" not in text
    lines = text.splitlines()
    flow = [line for line in lines if line.startswith("flow:")]
    assert 10 <= len(flow) <= 11 and flow[-1] == "flow: 1000/1000 (100%)"
    assert [line for line in lines if line.startswith("encode:")] == ["encode: 1/3 (33%)", "encode: 2/3 (67%)",
                                                                        "encode: 3/3 (100%)"]


def test_interrupt_message_starts_on_its_own_line(tmp_path, source, capsys, monkeypatch) -> None:
    import wan2gp_structure_video.pipeline as pipeline

    def interrupted(request, context):
        for done in range(3):
            context.progress.update("flow", done, 10)
        raise KeyboardInterrupt

    monkeypatch.setattr(pipeline, "build_guide", interrupted)
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True, raising=False)  # draw tqdm bars
    code = main(["guide", str(source), "--out", str(tmp_path / "g.mp4"), "--backend", "dis", "--no-cache"])
    err = capsys.readouterr().err
    assert code == 130
    before, _, _ = err.partition("error: interrupted")
    assert "flow" in before and before.endswith(("\r", "\n"))
    assert not (tmp_path / "g.mp4").exists()
