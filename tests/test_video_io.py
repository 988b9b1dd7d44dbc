"""Streaming decode, probing (sizes, fps, rotation, damaged files) and the guide writer."""
from __future__ import annotations

import time
from fractions import Fraction

import av
import numpy as np
import pytest

from videogen import (make_alpha_video, make_audio_only, make_fps_metadata_video, make_gray_video, make_jpeg,
                      make_one_frame, make_png, make_text_mp4, make_truncated, make_vfr_video, make_video, read_mark)
from wan2gp_structure_video.preprocessors.video import video_io
from wan2gp_structure_video.errors import InvalidVideoError
from wan2gp_structure_video.preprocessors.cache.cache_hashing import FileStamp
from wan2gp_structure_video.preprocessors.video.sample_video import sample_frames, write_sample_video
from wan2gp_structure_video.preprocessors.video.guide_writer import GuideVideoWriter, write_frames
from wan2gp_structure_video.preprocessors.video.video_io import iter_frames, iter_planned_frames, probe_video


@pytest.mark.parametrize("width, height", [(64, 48), (333, 201), (48, 96), (64, 64), (16, 16)])
def test_probe_and_decode_sizes(tmp_path, width, height) -> None:
    path = make_video(tmp_path / f"v{width}x{height}.mp4", width, height, frames=7, fps=12)
    info = probe_video(path)
    assert (info.width, info.height, info.frame_count, info.fps, info.rotation) == (width, height, 7, 12.0, 0)
    assert info.codec == "h264" and info.duration == pytest.approx(7 / 12)
    frames = list(iter_frames(path, info))
    assert len(frames) == 7 and all(f.shape == (height, width, 3) and f.dtype == np.uint8 for f in frames)
    assert [read_mark(f) for f in frames] == list(range(7))


def test_planned_frames_repeats_and_backward_jumps(tmp_path) -> None:
    path = make_video(tmp_path / "v.mp4", frames=12)
    info = probe_video(path)
    indices = [0, 0, 3, 3, 4, 11, 2, 5]
    frames = list(iter_planned_frames(path, indices, info))
    assert [read_mark(f) for f in frames] == indices
    assert frames[0] is frames[1]  # repeats share the decoded frame; nothing else is kept


def test_planned_frames_past_the_end_repeat_the_last(tmp_path, caplog) -> None:
    path = make_video(tmp_path / "v.mp4", frames=5)
    info = probe_video(path)
    frames = list(iter_planned_frames(path, [3, 4, 7, 9], info))
    assert [read_mark(f) for f in frames] == [3, 4, 4, 4] and "repeating its last frame" in caplog.text


@pytest.mark.parametrize("rotation", [90, 180, 270])
def test_rotation_metadata_is_honoured(tmp_path, rotation) -> None:
    path = make_video(tmp_path / "r.mp4", 64, 48, frames=3, rotation=rotation)
    info = probe_video(path)
    assert info.rotation == rotation
    assert (info.width, info.height) == ((48, 64) if rotation in (90, 270) else (64, 48))
    frame = next(iter_frames(path, info))
    assert frame.shape == (info.height, info.width, 3)
    # The marked top-left block of the stored frame moves to the corner the rotation takes it to.
    corner = {90: frame[3:6, -6:-3], 180: frame[-6:-3, -6:-3], 270: frame[-6:-3, 3:6]}[rotation]
    assert abs(float(corner.mean()) - 20) < 6


def test_grayscale_and_alpha_sources_give_rgb(tmp_path) -> None:
    gray = make_video(tmp_path / "g.mkv", 40, 30, frames=3, codec="ffv1", pix_fmt="gray")
    alpha = make_video(tmp_path / "a.mov", 40, 30, frames=3, codec="png", pix_fmt="rgba")
    for path in (gray, alpha):
        frames = list(iter_frames(path))
        assert len(frames) == 3 and frames[0].shape == (30, 40, 3)


def test_variable_frame_rate_and_odd_fps_metadata(tmp_path) -> None:
    vfr = make_video(tmp_path / "vfr.mkv", frames=6, codec="ffv1", pts=[0, 1, 3, 4, 8, 9],
                     time_base=Fraction(1, 10), fps=10)
    info = probe_video(vfr)
    assert info.frame_count == 6 and 0 < info.fps <= 1000
    fast = make_video(tmp_path / "fast.mkv", frames=4, codec="ffv1", fps=1000)
    assert probe_video(fast).fps == pytest.approx(1000, rel=0.01)


def test_writer_round_trip_is_h264_yuv420p_with_exact_count_and_fps(tmp_path) -> None:
    out = tmp_path / "guide.mp4"
    frames = [np.full((32, 48, 3), 10 * i, np.uint8) for i in range(9)]
    assert write_frames(out, frames, 16) == 9
    info = probe_video(out)
    assert (info.frame_count, info.fps, info.width, info.height, info.codec) == (9, 16.0, 48, 32, "h264")
    with av.open(str(out)) as container:
        assert container.streams.video[0].codec_context.pix_fmt == "yuv420p"
    assert [p.name for p in tmp_path.iterdir()] == ["guide.mp4"]


def test_writer_leaves_nothing_on_error(tmp_path) -> None:
    out = tmp_path / "guide.mp4"
    with pytest.raises(RuntimeError, match="stop"):
        with GuideVideoWriter(out, 32, 32, 16) as writer:
            writer.write(np.zeros((32, 32, 3), np.uint8))
            raise RuntimeError("stop")
    with pytest.raises(ValueError, match="uint8"):
        with GuideVideoWriter(out, 32, 32, 16) as writer:
            writer.write(np.zeros((16, 32, 3), np.uint8))
    with pytest.raises(ValueError, match="no frames"):
        with GuideVideoWriter(out, 32, 32, 16):
            pass
    with pytest.raises(ValueError, match="even"):
        GuideVideoWriter(out, 33, 32, 16)
    assert list(tmp_path.iterdir()) == []


def test_bad_inputs_give_clear_errors(tmp_path) -> None:
    text = tmp_path / "notes.mp4"
    text.write_text("this is not a video\n" * 10)
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    cases = {
        tmp_path / "missing.mp4": "does not exist",
        tmp_path: "is a folder",
        "https://example.com/clip.mp4": "URL",
        empty: "empty",
        text: "not a readable video",
        make_png(tmp_path / "still.png"): "image",
        make_audio_only(tmp_path / "sound.mp4"): "no video stream",
    }
    for path, expected in cases.items():
        with pytest.raises(InvalidVideoError, match=expected) as caught:
            probe_video(path)
        assert "\n" not in str(caught.value)


def test_truncated_file_decodes_what_is_there(tmp_path) -> None:
    full = make_video(tmp_path / "full.mp4", 64, 48, frames=30)
    cut = make_truncated(full, tmp_path / "cut.mp4", 0.5)
    try:
        info = probe_video(cut)
    except InvalidVideoError as error:  # acceptable: a clear error
        assert "video" in str(error)
        return
    frames = list(iter_planned_frames(cut, list(range(info.frame_count)), info))
    assert len(frames) == info.frame_count and frames[0].shape == (48, 64, 3)


def test_non_ascii_path_with_spaces(tmp_path) -> None:
    folder = tmp_path / "vidéos à tester"
    folder.mkdir()
    path = make_video(folder / "clip ünïcode 映像.mp4", frames=4)
    assert probe_video(path).frame_count == 4


def test_sample_video_is_deterministic_and_moves(tmp_path) -> None:
    a = list(sample_frames(96, 64, 6, seed=3))
    b = list(sample_frames(96, 64, 6, seed=3))
    assert all(np.array_equal(x, y) for x, y in zip(a, b))
    assert np.abs(a[0].astype(int) - a[5].astype(int)).mean() > 5
    info = probe_video(write_sample_video(tmp_path / "s.mp4", 96, 64, frames=6, fps=12))
    assert (info.frame_count, info.fps, info.width, info.height) == (6, 12.0, 96, 64)
    with pytest.raises(ValueError):
        write_sample_video(tmp_path / "bad.mp4", 95, 64)


def test_portrait_full_size_probe_and_decode(tmp_path) -> None:
    path = make_video(tmp_path / "portrait.mp4", 360, 640, frames=3, fps=30)
    info = probe_video(path)
    assert (info.width, info.height, info.frame_count, info.fps) == (360, 640, 3, 30.0)
    assert [read_mark(f) for f in iter_frames(path, info)] == [0, 1, 2]


def test_one_frame_video_is_valid(tmp_path) -> None:
    info = probe_video(make_one_frame(tmp_path / "one.mp4"))
    assert info.frame_count == 1 and info.fps == 24.0
    assert [read_mark(f) for f in iter_planned_frames(info.path, [0, 0, 3], info)] == [0, 0, 0]


def test_iter_frames_closes_the_container_when_abandoned(tmp_path, monkeypatch) -> None:
    path = make_video(tmp_path / "v.mp4", frames=8)
    opened = []
    real_open = video_io._open

    class Tracked:
        """Delegates to the real container and records whether it was closed."""

        def __init__(self, container) -> None:
            self.container, self.closed = container, False

        def __getattr__(self, name):
            return getattr(self.container, name)

        def close(self) -> None:
            self.closed = True
            self.container.close()

    def tracking_open(file):
        opened.append(Tracked(real_open(file)))
        return opened[-1]

    monkeypatch.setattr(video_io, "_open", tracking_open)
    generator = iter_frames(path)
    next(generator)
    generator.close()
    planned = iter_planned_frames(path, [0, 5, 1], probe_video(path))
    next(planned)
    next(planned)
    planned.close()
    assert len(opened) >= 4 and all(container.closed for container in opened)


def test_image_with_video_name_and_jpeg_are_rejected(tmp_path) -> None:
    png = make_png(tmp_path / "still.png")
    disguised = tmp_path / "still.mp4"
    disguised.write_bytes(png.read_bytes())
    for path in (disguised, make_jpeg(tmp_path / "photo.jpg")):
        with pytest.raises(InvalidVideoError, match="is an image"):
            probe_video(path)


def test_text_file_named_mp4_is_rejected_helpfully(tmp_path) -> None:
    with pytest.raises(InvalidVideoError, match="not a readable video.*MP4"):
        probe_video(make_text_mp4(tmp_path / "notes.mp4"))


def test_fps_header_beyond_limit_falls_back_with_warning(tmp_path, caplog) -> None:
    path = make_fps_metadata_video(tmp_path / "absurd.mp4", 5000, frames=5)
    info = probe_video(path)
    assert info.fps == 24.0 and info.frame_count == 5 and "no usable frame rate" in caplog.text
    slow = probe_video(make_fps_metadata_video(tmp_path / "slow.mkv", 0.5))
    assert slow.fps == pytest.approx(0.5) and slow.duration == pytest.approx(8.0)


def test_frame_rate_helper_rejects_unusable_values() -> None:
    for value in (None, 0, -5, float("nan"), float("inf"), 1001, "abc"):
        assert video_io._rate(value) == 0.0
    assert video_io._rate(Fraction(30000, 1001)) == pytest.approx(29.97, abs=0.001)


def test_oversized_and_tiny_frames_are_rejected(tmp_path, monkeypatch) -> None:
    path = make_video(tmp_path / "v.mp4", 64, 48, frames=2)
    monkeypatch.setattr(video_io, "MAX_PIXELS", 64 * 48 - 1)
    with pytest.raises(InvalidVideoError, match="re-encode it at a smaller size"):
        probe_video(path)
    monkeypatch.setattr(video_io, "MAX_PIXELS", 7680 * 4320)
    monkeypatch.setattr(video_io, "SOURCE_MIN_SIDE", 49)
    with pytest.raises(InvalidVideoError, match="at least"):
        probe_video(path)


def test_vfr_video_counts_every_frame(tmp_path) -> None:
    path = make_vfr_video(tmp_path / "vfr.mkv", [0, 1, 3, 4, 8, 9, 15])
    info = probe_video(path)
    assert info.frame_count == 7 and 0 < info.fps <= 1000
    assert [read_mark(f) for f in iter_frames(path, info)] == list(range(7))


def test_gray_and_alpha_helpers_keep_content(tmp_path) -> None:
    gray = next(iter_frames(make_gray_video(tmp_path / "g.mkv")))
    assert gray.shape == (30, 40, 3) and np.array_equal(gray[..., 0], gray[..., 1])
    alpha = list(iter_frames(make_alpha_video(tmp_path / "a.mov", frames=4)))
    assert [read_mark(f) for f in alpha] == [0, 1, 2, 3] and alpha[0].shape == (30, 40, 3)


def test_truncated_mp4_with_index_first_pads_with_last_frame(tmp_path, caplog) -> None:
    full = make_video(tmp_path / "full.mp4", 64, 48, frames=30, gop=1, faststart=True)
    cut = make_truncated(full, tmp_path / "cut.mp4", 0.5)
    info = probe_video(cut)
    assert 0 < info.frame_count < 30
    frames = list(iter_planned_frames(cut, list(range(info.frame_count)) + [29], info))
    assert len(frames) == info.frame_count + 1
    marks = [read_mark(f) for f in frames]
    decoded = len(list(iter_frames(cut, info)))
    assert marks[:decoded] == list(range(decoded)) and set(marks[decoded:]) == {decoded - 1}
    assert "repeating its last frame" in caplog.text


def test_truncated_mkv_decodes_the_frames_before_the_cut(tmp_path) -> None:
    cut = make_truncated(make_video(tmp_path / "full.mkv", frames=30, codec="ffv1"), tmp_path / "cut.mkv", 0.5)
    info = probe_video(cut)
    frames = list(iter_planned_frames(cut, range(info.frame_count), info))
    assert len(frames) == info.frame_count and read_mark(frames[0]) == 0


@pytest.mark.parametrize("fps", [16, 24000 / 1001, 30000 / 1001, 12.5, 60])
def test_writer_fps_round_trips_exactly(tmp_path, fps) -> None:
    out = tmp_path / "g.mp4"
    write_frames(out, (np.full((16, 16, 3), 8 * i, np.uint8) for i in range(5)), fps)
    info = probe_video(out)
    assert info.frame_count == 5 and info.fps == pytest.approx(float(Fraction(fps).limit_denominator(1001)), abs=1e-9)


def test_writer_rejects_bad_fps_and_frames(tmp_path) -> None:
    for fps in (0, -1, float("nan"), 5000):
        with pytest.raises(ValueError, match="fps"):
            GuideVideoWriter(tmp_path / "g.mp4", 16, 16, fps)
    with pytest.raises(ValueError, match="uint8"):
        with GuideVideoWriter(tmp_path / "g.mp4", 16, 16, 16) as writer:
            writer.write(np.zeros((16, 16, 3), np.float32))
    with pytest.raises(ValueError, match="no frames"):
        write_frames(tmp_path / "g.mp4", [], 16)
    assert list(tmp_path.iterdir()) == []


def test_sample_video_file_matches_generator_and_validates(tmp_path) -> None:
    path = write_sample_video(tmp_path / "s.mp4", 64, 48, frames=5, fps=8, seed=1)
    decoded = list(iter_frames(path))
    expected = list(sample_frames(64, 48, 5, seed=1))
    assert len(decoded) == 5
    assert all(np.abs(d.astype(int) - e.astype(int)).mean() < 12 for d, e in zip(decoded, expected))
    assert not np.array_equal(expected[0], next(iter(sample_frames(64, 48, 1, seed=2))))
    for bad in (dict(width=8), dict(frames=0)):
        with pytest.raises(ValueError):
            list(sample_frames(**{"width": 64, "height": 48, "frames": 3, **bad}))


def test_an_unchanged_file_is_probed_once_an_edited_one_again(tmp_path, monkeypatch) -> None:
    """Re-targets and segments probe the same source again and again: answered from memory while the
    file is unchanged; replaced by another video of the same name, it is read anew."""
    path = make_video(tmp_path / "source.mp4", 64, 48, frames=7, fps=12)
    while FileStamp.of(path).racy(time.time_ns()):  # just written: a change in the same tick could go unseen
        time.sleep(0.05)
    opened: list[object] = []
    real_open = video_io._open
    monkeypatch.setattr(video_io, "_open", lambda file: opened.append(file) or real_open(file))
    first = probe_video(path)
    reads = len(opened)
    assert reads >= 1 and probe_video(str(path)) is first and len(opened) == reads
    make_video(tmp_path / "other.mp4", 80, 64, frames=9, fps=12).replace(path)  # same name, new file
    second = probe_video(path)
    assert len(opened) > reads and (second.width, second.frame_count) == (80, 9)
    path.unlink()
    with pytest.raises(InvalidVideoError, match="does not exist"):
        probe_video(path)  # a file that went away is an error, not an answer from memory
