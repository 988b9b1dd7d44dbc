"""Depth in the app: the weights field under More settings, its status when Depth is chosen, and one
short message naming the page's own controls when no weights are found."""
from __future__ import annotations

import pytest

pytest.importorskip("gradio")

import gradio as gr  # noqa: E402

from wan2gp_structure_video.preprocessors.weights import depth_weights  # noqa: E402
from wan2gp_structure_video.ui import extract_panel as tab  # noqa: E402
from wan2gp_structure_video.ui import weights_field  # noqa: E402
from wan2gp_structure_video.ui.deps import TabDeps  # noqa: E402
from wan2gp_structure_video.ui.outputs import OutputFolder  # noqa: E402


class _Req:
    session_hash = "weights-session"


@pytest.fixture
def deps(tmp_path):
    return TabDeps(plugin=None, outputs=OutputFolder(tmp_path / "outputs"))


@pytest.fixture
def no_weights_anywhere(monkeypatch):
    monkeypatch.setattr(depth_weights, "default_search_dirs", lambda: [])
    monkeypatch.setattr(depth_weights, "hub_cache_folder", lambda *args, **kw: None)


def _is_page_words(text: str) -> None:
    assert "--" not in text and "downloader" not in text and "PATH" not in text, text


def test_status_shows_only_for_depth(deps, no_weights_anywhere):
    assert weights_field.status_text(deps, "flow")["visible"] is False
    status = weights_field.status_text(deps, "depth")
    assert status["visible"] is True and status["value"].startswith("**Depth weights: none found.**")
    assert '"Depth weights" under More settings' in status["value"] and "upload" in status["value"]
    _is_page_words(status["value"])
    depth_status, backend = weights_field.on_type(deps, "depth")
    assert depth_status == status and backend["visible"] is False  # no Flow backend choice for depth
    assert weights_field.on_type(deps, "flow")[1]["visible"] is True
    assert "Download depth weights" not in status["value"]  # standalone: no such button on the page


def test_status_of_a_missing_path_names_the_field(deps, tmp_path, no_weights_anywhere):
    status = weights_field.status_text(deps, "depth", str(tmp_path / "nope.pth"))["value"]
    assert "nope.pth do not exist" in status and 'check "Depth weights"' in status
    _is_page_words(status)


def test_status_of_found_weights_and_an_upload_wins(deps, tmp_path, no_weights_anywhere):
    pytest.importorskip("transformers")
    from wan2gp_structure_video.preprocessors.annotators.depth_model import build_depth_model

    tiny = depth_weights.DepthArchitecture("custom", hidden=32, layers=4, heads=2, out_indices=(1, 2, 3, 4),
                                           features=8, out_channels=(4, 8, 16, 32), image_size=70)
    build_depth_model(tiny, seed=0).save_pretrained(tmp_path / "tiny-depth")
    status = weights_field.status_text(deps, "depth", str(tmp_path / "tiny-depth"))["value"]
    assert status.startswith("**Depth weights:** `tiny-depth`"), status
    assert weights_field.chosen_weights("typed", {"path": "/up/w.pth"}) == "/up/w.pth"
    assert weights_field.chosen_weights("  ", None) is None


def test_depth_without_weights_is_one_short_message(deps, no_weights_anywhere):
    sample = tab.use_sample(deps)
    with pytest.raises(gr.Error) as caught:
        tab.extract(deps, sample, "96x64", 3, 8, "depth", "adjust", "crop", 0, 0, "frames", 1.0, "dis", 4, 0,
                    request=_Req())
    message = caught.value.message
    assert message == weights_field.missing_message(deps) and len(message) < 300
    _is_page_words(message)
    if "visible" in gr.Error.__init__.__code__.co_varnames:
        assert caught.value.visible is False  # no toast: the status line shows it, once
    assert tab.finish(deps, _Req())[1] == f"**Not extracted:** {message}"


def test_hosted_message_names_the_download_button(deps, monkeypatch):
    from wan2gp_structure_video.ui import host_bridge

    monkeypatch.setattr(host_bridge, "can_download_weights", lambda plugin: True)
    assert 'click "Download depth weights"' in weights_field.missing_message(deps)
