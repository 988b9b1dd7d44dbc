"""The tab's handlers as plain functions (no browser, no server)."""
from __future__ import annotations

import threading

import numpy as np
import pytest

pytest.importorskip("gradio")

from wan2gp_structure_video.errors import CancelledError, InvalidVideoError  # noqa: E402
from wan2gp_structure_video.preprocessors.sample_video import write_sample_video  # noqa: E402
from wan2gp_structure_video.progress import Progress  # noqa: E402
from wan2gp_structure_video.ui import tab  # noqa: E402


@pytest.fixture
def source(tmp_path):
    return str(write_sample_video(tmp_path / "s.mp4", width=160, height=96, frames=12, fps=12))


def _request(source, out, **kw):
    args = dict(resolution="128x96", frames=6, fps=8, guide_type="flow", treatment="adjust", fit="crop", start=0,
                end=0, range_unit="frames", motion_strength=1.0, backend="dis", iterations=20, batch_size=0)
    args.update(kw)
    return tab.make_request(source, out, **args)


def test_describe_video_and_bad_file(source, tmp_path):
    text, poster = tab.describe_video(source)
    assert "160×96" in text and "12 frames" in text
    assert poster.shape == (96, 160, 3)
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"nope")
    with pytest.raises(InvalidVideoError):
        tab.describe_video(str(bad))


def test_extract_preview_and_details(source, tmp_path):
    request = _request(source, tmp_path / "g.mp4")
    assert request.start is None and request.end is None  # 0 from the browser means "no bound"
    updates = []
    result, chart = tab.run_extraction(request, progress=Progress(updates.append))
    assert result.frames == 6 and updates and chart
    run = {"guide": str(result.output), "source": source, "fit": "crop", "indices": tab._plan_indices(request),
           "frames": 6, "resolution": "128x96"}
    assert len(run["indices"]) == 6
    image = tab.preview_frame(run, 3)
    assert image.shape == (96, 128 * 2 + 8, 3) and image.dtype == np.uint8
    assert tab.preview_frame(run, 99).shape == image.shape  # clamped
    text = tab.details_markdown(result)
    assert "dis" in text and "Cache" in text and "Timings" in text


def test_cancel_stops_the_extraction(tmp_path):
    fresh = str(write_sample_video(tmp_path / "fresh.mp4", width=176, height=96, frames=10, fps=12, seed=7))
    cancel = threading.Event()
    cancel.set()
    with pytest.raises(CancelledError):
        tab.run_extraction(_request(fresh, tmp_path / "c.mp4"), progress=Progress(None, cancel))
    assert not (tmp_path / "c.mp4").exists()


def test_cancel_event_is_per_session():
    class Req:
        def __init__(self, key):
            self.session_hash = key

    first = tab.cancel_event_for(Req("a"), fresh=True)
    tab.cancel_event_for(Req("a")).set()
    assert first.is_set() and not tab.cancel_event_for(Req("b"), fresh=True).is_set()
    assert not tab.cancel_event_for(Req("a"), fresh=True).is_set()


def test_cache_panel_and_sample():
    assert "Flow cache" in tab.cache_stats_text()
    assert "Cleared" in tab.cache_action("clear")
    assert tab.sample_video_path().endswith(".mp4")


def test_hosted_flow_cache_lives_under_the_host_output_folder(source, tmp_path, monkeypatch):
    from types import SimpleNamespace

    from wan2gp_structure_video.paths import HOME_ENV
    from wan2gp_structure_video.ui import host_bridge

    home = tmp_path / "explicit-home"
    monkeypatch.setenv(HOME_ENV, str(home))
    hosted = SimpleNamespace(server_config={"save_path": str(tmp_path / "outputs")})
    assert host_bridge.host_cache_dir(hosted) is None  # an explicit home wins over the host's folder
    monkeypatch.delenv(HOME_ENV)
    assert host_bridge.host_cache_dir(SimpleNamespace(server_config={})) is None  # standalone host
    assert host_bridge.host_cache_dir(SimpleNamespace()) is None

    cache = tab.tab_cache(hosted)
    assert cache.root == (tmp_path / "outputs" / host_bridge.HOST_CACHE_FOLDER).resolve()
    first, _ = tab.run_extraction(_request(source, tmp_path / "a.mp4"), cache=cache)
    second, _ = tab.run_extraction(_request(source, tmp_path / "b.mp4"), cache=tab.tab_cache(hosted))
    assert (first.cache_hit, second.cache_hit) == (False, True)
    assert any(cache.root.iterdir())
    assert str(cache.root) in tab.cache_stats_text(hosted)
    cleared = tab.cache_action("clear", hosted)
    assert cleared.startswith("Cleared") and not cleared.startswith("Cleared 0 ")
    assert tab.tab_cache(hosted).stats().entries == 0
