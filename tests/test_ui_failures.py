"""Every panel's run ends, whatever is raised: the page's words in the status, Cancel back to idle, an
unexpected error's traceback in the log file named by the message, one line in the terminal."""
from __future__ import annotations

import logging

import pytest

pytest.importorskip("gradio")

import gradio as gr  # noqa: E402

from wan2gp_structure_video.errors import OptionError  # noqa: E402
from wan2gp_structure_video.ui import cache_home, cache_panel, failures, generator_panel  # noqa: E402
from wan2gp_structure_video.ui import extract_panel as tab  # noqa: E402
from wan2gp_structure_video.ui.deps import TabDeps  # noqa: E402
from wan2gp_structure_video.ui.outputs import OutputFolder  # noqa: E402

ARGS = ("96x64", 3, 8, "canny", "adjust", "crop", 0, 0, "frames", 1.0, "dis", 4, 0)


class _Req:
    session_hash = "failing-session"


class BrokenInstall(Exception):
    """Stands for anything the project did not foresee (a broken torchvision, a bug)."""


class NotAnError(BaseException):
    """A BaseException that is not an Exception: it must go on, uncaught."""


@pytest.fixture
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("WAN2GP_STRUCTURE_VIDEO_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


@pytest.fixture
def deps(tmp_path):
    return TabDeps(plugin=None, outputs=OutputFolder(tmp_path / "outputs"))


def _raise(exc: BaseException):
    def run(*args, **kwargs):
        raise exc
    return run


def _extract(deps):
    tab.begin(deps)
    return tab.extract(deps, tab.use_sample(deps), *ARGS, request=_Req())


def test_an_unexpected_error_ends_the_run_and_is_logged(deps, home, monkeypatch, caplog):
    monkeypatch.setattr(tab, "run_extraction", _raise(BrokenInstall("torchvision::nms does not exist")))
    caplog.set_level(logging.INFO)
    with pytest.raises(gr.Error) as caught:
        _extract(deps)
    message = str(caught.value)
    log = failures.log_path()
    assert log.is_relative_to(home) and str(log) in message
    assert "torchvision::nms does not exist" in message and "BrokenInstall" not in message
    text = log.read_text()
    assert "Traceback (most recent call last)" in text and "BrokenInstall" in text and "Extracting failed" in text
    lines = [r for r in caplog.records if r.name == failures.logger.name]
    assert len(lines) == 1 and lines[0].exc_info is None and "\n" not in lines[0].getMessage()
    assert str(log) in lines[0].getMessage()
    cancel, status = tab.finish(deps, _Req())
    assert cancel["interactive"] is False
    assert status.startswith("**Not extracted:** Unexpected error") and str(log) in status
    assert "torchvision::nms does not exist" in status
    assert deps.run_for(_Req()) is None


def test_a_user_error_is_one_terminal_line_and_not_logged(deps, home, monkeypatch, caplog):
    monkeypatch.setattr(tab, "run_extraction", _raise(OptionError("--fps 0: give a frame rate above 0.")))
    caplog.set_level(logging.INFO)
    with pytest.raises(gr.Error) as caught:
        _extract(deps)
    assert caught.value.message == '"FPS" 0: give a frame rate above 0.'
    assert not failures.log_path().exists()
    lines = [r for r in caplog.records if r.name == failures.logger.name]
    assert len(lines) == 1 and lines[0].exc_info is None
    assert tab.finish(deps, _Req())[1] == '**Not extracted:** "FPS" 0: give a frame rate above 0.'


@pytest.mark.parametrize("exc", [NotAnError("stop"), KeyboardInterrupt()])
def test_a_base_exception_is_not_caught(deps, home, monkeypatch, exc):
    monkeypatch.setattr(tab, "run_extraction", _raise(exc))
    with pytest.raises(type(exc)):
        _extract(deps)
    assert not failures.log_path().exists()


def test_the_cache_panel_says_what_failed(deps, home, monkeypatch):
    monkeypatch.setattr(cache_home, "tab_cache", _raise(BrokenInstall("disk went away")))
    for text in (cache_panel.stats_text(deps), cache_panel.prune(deps), cache_panel.confirm_clear(deps)[1]):
        assert "failed.**" in text and "disk went away" in text and str(failures.log_path()) in text
    row, _ = cache_panel.confirm_clear(deps)
    assert row["visible"] is False  # the confirmation row goes away whatever happened


def test_generator_panel_handlers_end_with_a_page_error(deps, home, monkeypatch):
    from wan2gp_structure_video.ui import host_bridge

    deps.set_run(_Req(), {"guide": "g.mp4", "frames": 9, "resolution": "96x64"})
    monkeypatch.setattr(host_bridge, "send_guide_to_settings", _raise(BrokenInstall("host changed")))
    with pytest.raises(gr.Error) as caught:
        generator_panel.send(deps, _Req())
    assert "host changed" in str(caught.value) and str(failures.log_path()) in str(caught.value)
    with pytest.raises(gr.Error, match="Extract a guide first"):  # its own gr.Error passes unchanged
        generator_panel.send(deps, type("R", (), {"session_hash": "other"})())


def test_jargon_is_not_shown():
    from wan2gp_structure_video.ui.wording import ui_words

    assert ui_words("x.mp4: cannot be decoded (InvalidDataError); re-encode it") == "x.mp4: cannot be decoded; re-encode it"
    assert ui_words("Downloading failed: <urlopen error [Errno 101] Network is unreachable>") == \
        "Downloading failed: Network is unreachable"
    assert ui_words("Cannot listen (101).") == "Cannot listen."
