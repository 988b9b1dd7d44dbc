"""The tab's handlers as plain functions (no browser, no server)."""
from __future__ import annotations

import threading

import numpy as np
import pytest

from wan2gp_structure_video.memory.timeline import ANON_SERIES

pytest.importorskip("gradio")

from wan2gp_structure_video.errors import CancelledError, InvalidVideoError  # noqa: E402
from wan2gp_structure_video.preprocessors.video.sample_video import write_sample_video  # noqa: E402
from wan2gp_structure_video.progress import Progress  # noqa: E402
from wan2gp_structure_video.ui import extract_panel as tab  # noqa: E402
from wan2gp_structure_video.ui.outputs import OutputFolder  # noqa: E402


@pytest.fixture
def source(tmp_path):
    # a seed no other test uses: flows cached by the browser / API tests would empty the memory chart
    return str(write_sample_video(tmp_path / "s.mp4", width=160, height=96, frames=12, fps=12, seed=3131))


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
    result = tab.run_extraction(request, progress=Progress(updates.append))
    assert result.frames == 6 and updates
    chart, note = tab.chart_value(result)
    assert list(chart.columns) == ["t", "series", "mib"] and len(chart) > 0 and note == ""
    assert ANON_SERIES in set(chart["series"])  # anonymous memory, not RSS (mapped flow files inflate RSS)
    details = tab.details_markdown(result)
    assert "Phases: " in details and "flow " in details  # the memory story: time per phase
    assert "Memory: " in details  # the batch-size note of the run (history)
    run = {"guide": str(result.output), "source": source, "fit": "crop", "indices": tab.plan_indices(request),
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


def _deps(tmp_path, plugin=None):
    from wan2gp_structure_video.ui.deps import TabDeps

    return TabDeps(plugin=plugin, outputs=OutputFolder(tmp_path / "outputs"))


def test_cancel_event_is_per_session(tmp_path):
    class Req:
        def __init__(self, key):
            self.session_hash = key

    deps = _deps(tmp_path)
    first = deps.cancel_event(Req("a"), fresh=True)
    deps.cancel_event(Req("a")).set()
    assert first.is_set() and not deps.cancel_event(Req("b"), fresh=True).is_set()
    assert not deps.cancel_event(Req("a"), fresh=True).is_set()


def test_cache_panel_and_sample(tmp_path):
    from wan2gp_structure_video.ui import cache_panel

    deps = _deps(tmp_path)
    assert "Flow cache" in cache_panel.stats_text(deps)
    assert "Cleared" in cache_panel.clear(deps)
    sample = tab.use_sample(deps)
    assert sample.endswith(".mp4") and sample.startswith(str(tmp_path / "outputs"))


def test_hosted_flow_cache_lives_under_the_host_output_folder(source, tmp_path, monkeypatch):
    from types import SimpleNamespace

    from wan2gp_structure_video.paths import HOME_ENV
    from wan2gp_structure_video.ui import cache_panel, host_bridge

    home = tmp_path / "explicit-home"
    monkeypatch.setenv(HOME_ENV, str(home))
    hosted = SimpleNamespace(server_config={"save_path": str(tmp_path / "outputs")})
    assert host_bridge.host_cache_dir(hosted) is None  # an explicit home wins over the host's folder
    monkeypatch.delenv(HOME_ENV)
    assert host_bridge.host_cache_dir(SimpleNamespace(server_config={})) is None  # standalone host
    assert host_bridge.host_cache_dir(SimpleNamespace()) is None

    deps = _deps(tmp_path, hosted)
    cache = tab.tab_cache(deps)
    assert cache.root == (tmp_path / "outputs" / host_bridge.HOST_CACHE_FOLDER).resolve()
    first = tab.run_extraction(_request(source, tmp_path / "a.mp4"), cache=cache)
    second = tab.run_extraction(_request(source, tmp_path / "b.mp4"), cache=tab.tab_cache(deps))
    assert (first.cache_hit, second.cache_hit) == (False, True)
    assert any(cache.root.iterdir())
    assert str(cache.root) in cache_panel.stats_text(deps)
    cleared = cache_panel.clear(deps)
    assert cleared.startswith("Cleared") and not cleared.startswith("Cleared 0 ")
    assert tab.tab_cache(deps).stats().entries == 0


def test_output_folder_is_hosted_or_user_data(tmp_path, monkeypatch):
    from types import SimpleNamespace

    from wan2gp_structure_video.paths import HOME_ENV
    from wan2gp_structure_video.ui.outputs import output_folder

    monkeypatch.setenv(HOME_ENV, str(tmp_path / "home"))
    assert output_folder(None).root == tmp_path / "home" / "outputs"
    assert output_folder(SimpleNamespace(server_config={})).root == tmp_path / "home" / "outputs"
    hosted = SimpleNamespace(server_config={"save_path": str(tmp_path / "wan_outputs")})
    assert output_folder(hosted).root == (tmp_path / "wan_outputs" / "structure_video").resolve()


def test_output_folder_stays_bounded_over_20_runs(source, tmp_path):
    """20 extractions through the tab's handler: the folder never holds more than ``keep`` files, the
    newest guide survives, stale partial files of dead writers and too old files go."""
    import os

    from wan2gp_structure_video.atomic_files import partial_path
    from wan2gp_structure_video.ui import outputs
    from wan2gp_structure_video.ui.deps import TabDeps

    folder = OutputFolder(tmp_path / "outputs", keep=5, max_age_s=3600)
    deps = TabDeps(plugin=None, outputs=folder)
    os.environ.pop("WAN2GP_STRUCTURE_VIDEO_ALLOWED_DIRS", None)
    folder.ensure()
    old = folder.root / "old_guide.mp4"
    old.write_bytes(b"x")
    os.utime(old, (0, 0))
    dead = partial_path(folder.root / "killed.mp4")
    dead.write_bytes(b"partial")
    os.rename(dead, str(dead).replace(f".{os.getpid()}.", ".999999999."))
    sample = tab.use_sample(deps)
    counts, last = [], None
    for index in range(20):
        out = tab.extract(deps, sample, "96x64", 3 + index % 3, 8, "canny", "adjust", "crop", 0, 0, "frames",
                          1.0, "dis", 4, 0)
        last = out[0]
        counts.append(sum(1 for p in folder.root.iterdir() if p.name != outputs.SAMPLE_NAME))
    assert max(counts) <= 5, counts
    assert os.path.exists(last) and not old.exists()
    assert not [p for p in folder.root.iterdir() if ".partial" in p.name]


class _Req:
    def __init__(self, key="s1"):
        self.session_hash = key


def test_errors_speak_the_ui_words():
    from wan2gp_structure_video.ui.wording import ui_words

    raft = ("No RAFT-things weights found (searched x): pass --raft-weights PATH, put raft-things.pth in "
            "Wan2GP's ckpts/flow/, or use --backend dis.")
    text = ui_words(raft)
    assert "--" not in text and "raft-things.pth in Wan2GP's ckpts/flow/" in text
    assert 'choose Flow backend "DIS (OpenCV, CPU, fast)"' in text
    assert ui_words("Video too short for flow: use --type canny or raw, or a longer video.") == (
        'Video too short for flow: choose Type "Canny edges" or "Raw frames", or a longer video.')
    cache = ui_words("Cannot write the flow cache: choose another folder with --cache-dir, or use --no-cache.")
    assert "--" not in cache and "Flow cache ▸ Clear" in cache
    assert ui_words("--end 20 is past the end; check --range-unit.") == '"Range end" 20 is past the end; check "Range unit".'
    assert ui_words("Resolution 'banana' is not WIDTHxHEIGHT.") == "Resolution 'banana' is not WIDTHxHEIGHT."


def test_batch_size_zero_is_automatic_and_negative_is_refused(source, tmp_path):
    from wan2gp_structure_video.errors import OptionError

    assert _request(source, tmp_path / "g.mp4", batch_size=0).batch_size is None
    assert _request(source, tmp_path / "g.mp4", batch_size=3).batch_size == 3
    with pytest.raises(OptionError, match="0 for automatic"):
        _request(source, tmp_path / "g.mp4", batch_size=-2)


def test_cancel_is_a_neutral_status_with_cleared_panels(tmp_path, monkeypatch):
    deps = _deps(tmp_path)
    sample = tab.use_sample(deps)

    def cancelled(*args, **kwargs):
        raise CancelledError("Cancelled by the user; nothing was written.")

    monkeypatch.setattr(tab, "run_extraction", cancelled)
    guide, details, preview, slider, chart, cache_info, status = tab.extract(
        deps, sample, "96x64", 3, 8, "canny", "adjust", "crop", 0, 0, "frames", 1.0, "dis", 4, 0, request=_Req())
    assert status == tab.CANCELLED == "Cancelled — nothing was written."
    assert (guide, details, preview, chart) == (None, "", None, None) and slider["visible"] is False
    assert "Flow cache" in cache_info
    cancel_button, status_after = tab.finish(deps, _Req())
    assert cancel_button["interactive"] is False and status_after == {"__type__": "update"}  # no error to show
    assert deps.run_for(_Req()) is None


def test_an_error_after_a_success_leaves_no_stale_result(tmp_path):
    import gradio as gr

    deps = _deps(tmp_path)
    sample = tab.use_sample(deps)
    args = ("96x64", 3, 8, "canny", "adjust", "crop", 0, 0, "frames", 1.0, "dis", 4, 0)
    first = tab.extract(deps, sample, *args, request=_Req())
    assert first[0] and first[-1].startswith("Done: 3 frames") and deps.run_for(_Req())["guide"] == first[0]
    cleared = tab.begin(deps)  # what the page shows as soon as Extract is clicked again
    assert cleared[:3] == (None, "", None) and cleared[4] is None and cleared[5] == tab.RUNNING
    assert cleared[6]["interactive"] is True  # Cancel is clickable while the run goes on
    with pytest.raises(gr.Error) as caught:
        tab.extract(deps, sample, "banana", *args[1:], request=_Req())
    assert "banana" in str(caught.value)
    assert deps.run_for(_Req()) is None  # Send / preview no longer reach the old guide
    cancel_button, status = tab.finish(deps, _Req())
    assert cancel_button["interactive"] is False and status.startswith("**Not extracted:**") and "banana" in status
    assert tab.finish(deps, _Req())[1] == {"__type__": "update"}  # shown once


def test_errors_raised_to_the_page_use_the_ui_words(tmp_path, monkeypatch):
    import gradio as gr

    from wan2gp_structure_video.errors import WeightsNotFoundError

    deps = _deps(tmp_path)
    sample = tab.use_sample(deps)

    def no_weights(*args, **kwargs):
        raise WeightsNotFoundError("No RAFT weights: pass --raft-weights PATH, put raft-things.pth in "
                                   "Wan2GP's ckpts/flow/, or use --backend dis.")

    monkeypatch.setattr(tab, "run_extraction", no_weights)
    with pytest.raises(gr.Error) as caught:
        tab.extract(deps, sample, "96x64", 3, 8, "flow", "adjust", "crop", 0, 0, "frames", 1.0, "raft", 4, 0,
                    request=_Req())
    assert "--" not in str(caught.value) and "Flow backend" in str(caught.value)


def test_a_non_video_upload_says_so_in_the_info_text(tmp_path, monkeypatch):
    deps = _deps(tmp_path)
    deps.outputs.ensure()
    bad = deps.outputs.root / "notes.txt"
    bad.write_text("not a video")
    text, poster = tab.on_upload(deps, str(bad))
    assert poster is None and text.startswith("**Cannot use this file.**") and "notes.txt" in text
    assert tab.NO_VIDEO not in text


def test_clearing_the_cache_asks_first(tmp_path):
    from wan2gp_structure_video.ui import cache_panel

    deps = _deps(tmp_path)
    row, text = cache_panel.ask_clear(deps)
    assert row["visible"] is True and text.startswith("Delete every cached entry?")
    row, text = cache_panel.keep_cache(deps)
    assert row["visible"] is False and text.startswith("Flow cache")
    row, text = cache_panel.confirm_clear(deps)
    assert row["visible"] is False and text.startswith("Cleared")
