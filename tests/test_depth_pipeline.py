"""Depth guides end to end: CLI and API with a random-weight tiny Depth Anything V2 given by path.

CPU only, nothing downloaded: the model folder is written by transformers' ``save_pretrained``
from a tiny random configuration. Frames run at their own size (``depth_input_size=None``) to keep
the tests fast; one CLI test runs at the default 518.
"""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from wan2gp_structure_video import GuideRequest, RunContext, build_guide
from wan2gp_structure_video.cli import main
from wan2gp_structure_video.errors import OptionError, WeightsNotFoundError
from wan2gp_structure_video.memory import AnnotatorPool
from wan2gp_structure_video.pipeline import iter_guide_frames, request as request_module
from wan2gp_structure_video.pipeline import extraction as depth_extraction
from wan2gp_structure_video.pipeline.annotators.depth import DEPTH
from wan2gp_structure_video.pipeline.multi import Placement, build_composite_guide, build_segment_guides
from wan2gp_structure_video.preprocessors.cache.flow_cache import FlowCache
from wan2gp_structure_video.preprocessors.timeline.segments import SegmentWindow
from wan2gp_structure_video.preprocessors.video.guide_writer import write_frames
from wan2gp_structure_video.preprocessors.video.video_io import iter_frames

from videogen import make_video

transformers = pytest.importorskip("transformers")
from wan2gp_structure_video.preprocessors.weights import depth_weights  # noqa: E402
from wan2gp_structure_video.preprocessors.annotators.depth_model import DepthAnythingBackend, build_depth_model  # noqa: E402

TINY = depth_weights.DepthArchitecture("custom", hidden=32, layers=4, heads=2, out_indices=(1, 2, 3, 4), features=8,
                                       out_channels=(4, 8, 16, 32), image_size=70)
WIDTH, HEIGHT = 96, 64


@pytest.fixture(scope="module")
def tiny_weights(tmp_path_factory) -> str:
    """A transformers model folder with random weights (biases spread; the last conv lifted above the ReLU)."""
    model = build_depth_model(TINY, seed=0)
    generator = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for param in model.parameters():
            param.add_(torch.randn(param.shape, generator=generator) * 0.1)
        last = [m for m in model.modules() if isinstance(m, torch.nn.Conv2d) and m.out_channels == 1][-1]
        last.bias.add_(1.0)
    folder = tmp_path_factory.mktemp("tiny-depth")
    model.save_pretrained(folder)
    return str(folder)


@pytest.fixture()
def model_spy(monkeypatch):
    """Counts the frames the depth model sees."""
    calls: list[int] = []
    original = DepthAnythingBackend.compute

    def compute(self, frames):
        calls.append(len(frames))
        return original(self, frames)

    monkeypatch.setattr(DepthAnythingBackend, "compute", compute)
    return calls


def _ctx(tmp_path: Path, **kw) -> RunContext:
    return RunContext(cache=FlowCache(tmp_path / "cache"), pool=AnnotatorPool(offload="plain"), **kw)


def _request(source: Path, weights: str, out: Path | None = None, **kw) -> GuideRequest:
    options = dict(resolution=(WIDTH, HEIGHT), frames=9, fps=16.0, guide_type="depth", depth_weights=weights,
                   depth_input_size=None)
    options.update(kw)
    return GuideRequest(source, out, **options)


def _grey(frames: list[np.ndarray]) -> bool:
    return all(int(np.abs(f.astype(np.int16) - f[..., :1]).max()) <= 3 for f in frames)


def test_cli_writes_a_grey_depth_guide_of_the_right_size_and_count(tmp_path, tiny_weights, capsys) -> None:
    source = make_video(tmp_path / "src.mp4", WIDTH, HEIGHT, frames=12)
    out = tmp_path / "depth.mp4"
    code = main(["guide", str(source), "-o", str(out), "--type", "depth", "--depth-weights", tiny_weights,
                 "--resolution", "96x64", "--frames", "7", "--cache-dir", str(tmp_path / "cache"),
                 "--depth-contrast", "1.5", "-q"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert "type depth" in captured.out and "depth-anything-v2-custom" in captured.out and tiny_weights in captured.out
    frames = list(iter_frames(out))
    assert len(frames) == 7 and frames[0].shape == (HEIGHT, WIDTH, 3)
    assert _grey(frames)
    assert max(float(f.std()) for f in frames) > 5  # a depth picture, not a flat grey


def test_missing_weights_is_one_line_exit_2_and_nothing_written(tmp_path, monkeypatch, capsys) -> None:
    source = make_video(tmp_path / "src.mp4", WIDTH, HEIGHT, frames=4)
    cache = tmp_path / "cache"
    for extra in (["--depth-weights", str(tmp_path / "nowhere.pth")], []):
        out = tmp_path / "depth.mp4"
        monkeypatch.chdir(tmp_path)  # no ./ckpts here
        monkeypatch.setenv("WAN2GP_CKPTS", str(tmp_path / "empty-ckpts"))
        monkeypatch.delenv("WAN2GP_ROOT", raising=False)
        monkeypatch.setattr(depth_weights, "hub_cache_folder", lambda *a, **k: None)  # this machine's HF cache
        code = main(["guide", str(source), "-o", str(out), "--type", "depth", "--cache-dir", str(cache), "-q"]
                    + extra)
        err = capsys.readouterr().err
        assert code == 2 and err.count("\n") == 1 and err.startswith("error: ")
        assert ("--depth-weights" in err) and ("Depth" in err)
        assert not out.exists() and not list(tmp_path.glob("depth*"))
        assert not list((cache / "v1" / "entries").glob("*/*")) if cache.exists() else True
    with pytest.raises(WeightsNotFoundError):  # the API raises the same typed error; flow is never substituted
        build_guide(_request(source, None, tmp_path / "api.mp4"), _ctx(tmp_path))
    assert not (tmp_path / "api.mp4").exists()


def test_a_model_folder_whose_weights_do_not_fit_its_config_is_one_line_exit_2(tmp_path, tiny_weights,
                                                                               capsys) -> None:
    """transformers raises a RuntimeError with a many-line size report for such a folder: the CLI says one line."""
    other = depth_weights.DepthArchitecture("custom", hidden=16, layers=4, heads=2, out_indices=(1, 2, 3, 4),
                                            features=8, out_channels=(4, 8, 16, 32), image_size=70)
    build_depth_model(other, seed=0).save_pretrained(tmp_path / "other")
    mismatched = tmp_path / "mismatched"
    mismatched.mkdir()
    (mismatched / "config.json").write_bytes((Path(tiny_weights) / "config.json").read_bytes())
    (mismatched / "model.safetensors").write_bytes((tmp_path / "other" / "model.safetensors").read_bytes())
    source = make_video(tmp_path / "src.mp4", WIDTH, HEIGHT, frames=4)
    out = tmp_path / "depth.mp4"
    capsys.readouterr()  # save_pretrained's own progress
    code = main(["guide", str(source), "-o", str(out), "--type", "depth", "--depth-weights", str(mismatched),
                 "--no-cache", "-q"])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and err.startswith("error: "), err
    assert str(mismatched) in err and "config.json" in err
    assert not out.exists()


def test_near_is_bright_and_the_pipeline_keeps_the_models_orientation(tmp_path, tiny_weights, monkeypatch) -> None:
    """With a stand-in model whose inverse depth is the frame's brightness, bright source pixels
    (near) come out bright and the left-to-right ramp stays a ramp."""
    ramp = np.repeat(np.repeat(np.linspace(20, 235, WIDTH, dtype=np.float32)[None, :, None], HEIGHT, 0), 3, 2)
    source = tmp_path / "ramp.mp4"
    write_frames(source, [ramp.astype(np.uint8)] * 6, 16.0, crf=10, preset="veryfast")
    monkeypatch.setattr(DepthAnythingBackend, "compute",
                        lambda self, frames: frames.astype(np.float32).mean(axis=-1))
    frames = list(iter_guide_frames(_request(source, tiny_weights, frames=5), _ctx(tmp_path)))
    columns = frames[2][..., 0].astype(np.float32).mean(axis=0)
    assert columns[-4:].mean() > 240 and columns[:4].mean() < 15  # near (large) white, far black
    assert np.all(np.diff(columns[2:-2]) >= -2)


def test_a_constant_scene_gives_a_constant_guide(tmp_path, tiny_weights) -> None:
    still = make_video(tmp_path / "still_src.mp4", WIDTH, HEIGHT, frames=1)
    frame = next(iter_frames(still))
    source = tmp_path / "still.mp4"
    write_frames(source, [frame] * 10, 24.0, crf=0, preset="veryfast")  # lossless: every frame decodes alike
    for smoothing in (0.0, 2.0):
        frames = list(iter_guide_frames(_request(source, tiny_weights, frames=12, depth_smoothing=smoothing),
                                        _ctx(tmp_path)))
        assert len(frames) == 12 and frames[0].std() > 5
        spread = max(int(np.abs(f.astype(np.int16) - frames[0]).max()) for f in frames)
        assert spread == 0, spread  # not one pixel pulses


def test_rerendering_with_another_contrast_smoothing_or_frame_count_does_not_run_the_model(
        tmp_path, tiny_weights, model_spy) -> None:
    source = make_video(tmp_path / "src.mp4", WIDTH, HEIGHT, frames=12)
    ctx = _ctx(tmp_path)
    first = build_guide(_request(source, tiny_weights, tmp_path / "a.mp4"), ctx)
    assert sum(model_spy) == 12 and first.cache_hit is False  # every source frame once (stride 1)
    model_spy.clear()
    variants = [dict(depth_contrast=2.0), dict(depth_smoothing=3.0), dict(frames=5),  # stride 2: served by stride 1
                dict(frames=20, fps=8.0, treatment="clip")]
    outputs = []
    for number, options in enumerate(variants):
        result = build_guide(_request(source, tiny_weights, tmp_path / f"b{number}.mp4", **options), ctx)
        assert result.cache_hit is True and "depth maps from cache" in result.summary()
        outputs.append(list(iter_frames(result.output)))
    assert model_spy == []
    base = list(iter_frames(first.output))
    assert len(outputs[2]) == 5 and len(outputs[3]) == 20
    assert float(np.mean(outputs[0][4])) < float(np.mean(base[4])) - 5  # contrast 2 darkens the mid tones
    # Another treatment / frame count shows the same source frames' depth: frame 0 is source frame 0 in all.
    assert int(np.abs(outputs[2][0].astype(np.int16) - base[0]).max()) <= 3
    # A new model identity (variant of the weights) or fit does run the model.
    build_guide(_request(source, tiny_weights, tmp_path / "c.mp4", fit="pad", resolution=(64, 64)), ctx)
    assert sum(model_spy) == 12


def test_extraction_streams_one_batch_at_a_time(tmp_path, tiny_weights, monkeypatch) -> None:
    source = make_video(tmp_path / "src.mp4", WIDTH, HEIGHT, frames=30)
    decoded = {"n": 0, "max_ahead": 0}
    stored = {"n": 0}
    original_frames = depth_extraction.iter_node_frames
    original_compute = DepthAnythingBackend.compute

    def counting_frames(*args, **kw):
        for frame in original_frames(*args, **kw):
            decoded["n"] += 1
            decoded["max_ahead"] = max(decoded["max_ahead"], decoded["n"] - stored["n"])
            yield frame

    def counting_compute(self, frames):
        result = original_compute(self, frames)
        stored["n"] += len(frames)
        return result

    monkeypatch.setattr(depth_extraction, "iter_node_frames", counting_frames)
    monkeypatch.setattr(DepthAnythingBackend, "compute", counting_compute)
    result = build_guide(_request(source, tiny_weights, tmp_path / "g.mp4", frames=30, batch_size=3), _ctx(tmp_path))
    assert decoded["n"] == 30 and result.batch_size == 3
    # never more than one batch of frames held, plus the few decoded ahead on the reader thread
    # (and the one it is handing over): bounded, whatever the clip's length
    assert decoded["max_ahead"] <= 3 + DEPTH.prefetch + 1


def test_out_of_memory_backs_off_to_identical_output(tmp_path, tiny_weights, monkeypatch) -> None:
    source = make_video(tmp_path / "src.mp4", WIDTH, HEIGHT, frames=8)
    request = _request(source, tiny_weights, frames=8, batch_size=4)
    # Back-off retries the same frames at batch size 1: the output of a batch-size-1 run, bit for bit.
    reference = list(iter_guide_frames(replace(request, batch_size=1),
                                       RunContext(use_cache=False, pool=AnnotatorPool(offload="plain"))))
    original = DepthAnythingBackend.compute
    failures = []

    def flaky(self, frames):
        if len(frames) > 1:
            failures.append(len(frames))
            raise torch.OutOfMemoryError("CUDA out of memory (simulated)")
        return original(self, frames)

    monkeypatch.setattr(DepthAnythingBackend, "compute", flaky)
    backed_off = list(iter_guide_frames(request, RunContext(use_cache=False, pool=AnnotatorPool(offload="plain"))))
    assert failures and len(backed_off) == len(reference) == 8
    for a, b in zip(reference, backed_off):
        np.testing.assert_array_equal(a, b)


def test_the_pool_holds_the_depth_model_and_tears_it_down(tmp_path, tiny_weights) -> None:
    source = make_video(tmp_path / "src.mp4", WIDTH, HEIGHT, frames=4)
    pool = AnnotatorPool(offload="plain")
    ctx = RunContext(pool=pool, use_cache=False)
    for teardown in ("keep", "keep"):
        list(iter_guide_frames(_request(source, tiny_weights, frames=4, teardown=teardown), ctx))
    name = f"depth|{depth_weights.find_depth_weights(None, tiny_weights).identity()}"
    assert pool.is_built(name) and pool.construct_count(name) == 1  # built once, kept between requests
    list(iter_guide_frames(_request(source, tiny_weights, frames=4, teardown="release"), ctx))
    assert not pool.is_built(name)


def test_segments_equal_the_whole_guide_and_run_the_model_once(tmp_path, tiny_weights, model_spy) -> None:
    source = make_video(tmp_path / "src.mp4", WIDTH, HEIGHT, frames=16)
    request = _request(source, tiny_weights, frames=17, depth_smoothing=2.0)
    run = build_segment_guides(request, [SegmentWindow(0, 9), SegmentWindow(8, 9)], tmp_path / "segments",
                               RunContext(use_cache=False, pool=AnnotatorPool(offload="plain")))
    assert sum(model_spy) == 16  # the 16 source frames once, for both segments
    whole = list(iter_guide_frames(request, _ctx(tmp_path)))
    pieces = [list(iter_frames(r.output)) for r in run.segments]
    assert [len(p) for p in pieces] == [9, 9]
    for got, expected in zip(pieces[0] + pieces[1][1:], whole):  # no brightness step (H.264 loses detail)
        assert abs(float(got.mean()) - float(expected.mean())) < 1.0
    ctx = _ctx(tmp_path)
    for start, length in ((0, 9), (8, 9)):  # before encoding, a segment is exactly its slice of the whole guide
        window = list(iter_guide_frames(replace(request, window_start=start, window_frames=length), ctx))
        for got, expected in zip(window, whole[start:start + length]):
            np.testing.assert_array_equal(got, expected)


def test_composite_with_depth_fills_gaps_with_black(tmp_path, tiny_weights) -> None:
    source = make_video(tmp_path / "src.mp4", WIDTH, HEIGHT, frames=6)
    out = tmp_path / "composite.mp4"
    result = build_composite_guide(out, 10, [Placement(source, 0, 4), Placement(source, 6, 4)],
                                   resolution=(WIDTH, HEIGHT), guide_type="depth", depth_weights=tiny_weights,
                                   depth_input_size=None,
                                   context=RunContext(use_cache=False, pool=AnnotatorPool(offload="plain")))
    frames = list(iter_frames(out))
    assert result.frames == 10 and len(frames) == 10
    assert max(float(frames[k].mean()) for k in (4, 5)) < 3 and float(frames[2].mean()) > 20
    assert _grey(frames)


def test_depth_options_are_checked() -> None:
    assert request_module.DEPTH_VARIANTS == depth_weights.DEPTH_VARIANTS
    base = GuideRequest("x.mp4", guide_type="depth")
    for bad in (dict(depth_contrast=0.0), dict(depth_contrast=float("nan")), dict(depth_smoothing=-1.0),
                dict(depth_variant="vitg"), dict(depth_input_size=7), dict(depth_input_size=True)):
        with pytest.raises(OptionError):
            replace(base, **bad).validated()
    assert replace(base, depth_variant="vits", depth_input_size=None).validated().guide_type == "depth"


def test_the_host_adapter_reads_the_variant_locates_and_downloads_depth_weights(tmp_path, monkeypatch) -> None:
    import sys
    from types import SimpleNamespace

    from wan2gp_structure_video.ui import host_bridge

    from ui_helpers import fake_host_files

    monkeypatch.delitem(sys.modules, "wgp", raising=False)
    ckpts = tmp_path / "ckpts"
    plugin, downloads = fake_host_files(ckpts, server_config={"depth_anything_v2_variant": "vitb"})
    assert host_bridge.host_depth_variant(plugin) == "vitb"
    assert host_bridge.host_depth_weights_path(plugin) is None
    found = host_bridge.download_host_depth_weights(plugin)
    assert downloads == [("DeepBeepMeep/Wan2.1", ["depth"], [["depth_anything_v2_vitb.pth"]])]
    assert found == str(ckpts / "depth" / "depth_anything_v2_vitb.pth")
    plugin.server_config["depth_anything_v2_variant"] = "da3_metric_large"  # not a V2 size: the pipeline's default
    assert host_bridge.host_depth_variant(plugin) is None
    assert host_bridge.host_depth_variant(SimpleNamespace()) is None  # standalone


def test_the_tab_offers_depth_and_passes_the_hosts_variant(tmp_path) -> None:
    pytest.importorskip("gradio")
    from wan2gp_structure_video.ui import extract_panel, tab

    assert "depth" in [value for _, value in tab.GUIDE_TYPE_CHOICES]
    request = extract_panel.make_request("in.mp4", tmp_path / "o.mp4", "832x480", 81, 16, "depth", "adjust", "crop",
                                         0, 0, "frames", 1.0, "auto", 20, 0, depth_variant="vits")
    assert request.guide_type == "depth" and request.depth_variant == "vits"
    assert request.validated().depth_variant == "vits"


def test_the_tabs_depth_contrast_and_smoothing_reach_the_guide(tmp_path, tiny_weights, monkeypatch) -> None:
    """Extract in the tab with type Depth: the weights found in the (local) Hugging Face cache, the
    contrast and smoothing controls change the guide; a bad value is refused in the tab's words."""
    gr = pytest.importorskip("gradio")
    from wan2gp_structure_video.ui import extract_panel
    from wan2gp_structure_video.ui.deps import TabDeps
    from wan2gp_structure_video.ui.outputs import OutputFolder

    from wan2gp_structure_video.pipeline.annotators import depth as build_module

    monkeypatch.setattr(depth_weights, "hub_cache_folder", lambda *args, **kw: tiny_weights)
    monkeypatch.setenv("WAN2GP_STRUCTURE_VIDEO_ALLOWED_DIRS", str(tmp_path))
    smoothing_seen: list[float] = []
    original_scale = build_module.depth_scale

    def depth_scale(depth, indices, smoothing):
        smoothing_seen.append(smoothing)
        return original_scale(depth, indices, smoothing)

    monkeypatch.setattr(build_module, "depth_scale", depth_scale)
    source = make_video(tmp_path / "src.mp4", WIDTH, HEIGHT, frames=12)
    deps = TabDeps(plugin=None, outputs=OutputFolder(tmp_path / "outputs"))

    class Session:
        session_hash = "depth-tab"

    deps_details: list[str] = []

    def extract(contrast: float, smoothing: int) -> list[np.ndarray]:
        out = extract_panel.extract(deps, str(source), f"{WIDTH}x{HEIGHT}", 9, 16, "depth", "adjust", "crop", 0, 0,
                                    "frames", 1.0, "auto", 20, 0, contrast, smoothing, request=Session())
        assert out[-1].startswith("Done: 9 frames"), out[-1]
        deps_details.append(out[1])
        return list(iter_frames(out[0]))

    neutral, contrasty = extract(1.0, 0), extract(2.5, 0)
    extract(1.0, 3)
    assert "Brightness: contrast 1, brightness range smoothed over 3 frames" in deps_details[-1]
    assert _grey(neutral) and len(neutral) == 9
    # contrast > 1 darkens the far part: the mean brightness drops
    assert np.mean(contrasty) < np.mean(neutral) - 2
    assert smoothing_seen == [0.0, 0.0, 3.0]  # the smoothing control reaches the clip's brightness range
    with pytest.raises(gr.Error, match="depth contrast"):
        extract_panel.extract(deps, str(source), f"{WIDTH}x{HEIGHT}", 9, 16, "depth", "adjust", "crop", 0, 0,
                              "frames", 1.0, "auto", 20, 0, 0.0, 0, request=Session())


def test_depth_finds_the_cut_and_gives_each_shot_its_range(tmp_path, tiny_weights) -> None:
    from videogen import cut_frames, write_rgb_video

    source = write_rgb_video(tmp_path / "cut.mp4", cut_frames("astronaut", "coffee", 16, 8, width=WIDTH, height=HEIGHT))
    ctx = _ctx(tmp_path)
    result = build_guide(_request(source, tiny_weights, tmp_path / "d.mp4", frames=16), ctx)
    assert result.cuts == [8] and "one brightness range for each shot" in result.depth_brightness
    assert "1 hard cut at source frame 8" in result.summary()
    off = build_guide(_request(source, tiny_weights, tmp_path / "e.mp4", frames=16, cuts="off"), ctx)
    assert off.cuts == [] and off.flows_from_cache is False and off.cache_hit  # the same maps, read back
    assert "one brightness range for the whole clip" in off.depth_brightness
