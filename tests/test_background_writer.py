"""BackgroundGuideWriter: same file as GuideVideoWriter, bounded queue, atomic publish, errors surface."""
from __future__ import annotations

import threading
import time
from pathlib import Path

import numpy as np
import pytest

from wan2gp_structure_video.preprocessors.video import guide_writer as video_io
from wan2gp_structure_video.preprocessors.video.guide_writer import BackgroundGuideWriter, GuideVideoWriter
from wan2gp_structure_video.preprocessors.video.video_io import iter_frames

W, H = 96, 64


def _frames(count: int = 12) -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    base = rng.integers(0, 256, (H, W + count, 3), dtype=np.uint8)
    return [np.ascontiguousarray(base[:, i:i + W]) for i in range(count)]


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def test_same_video_as_the_plain_writer(tmp_path: Path) -> None:
    frames = _frames()
    with GuideVideoWriter(tmp_path / "plain.mp4", W, H, 16) as plain:
        for frame in frames:
            plain.write(frame)
    with BackgroundGuideWriter(tmp_path / "background.mp4", W, H, 16, queue_frames=2) as background:
        for frame in frames:
            background.write(frame)
    assert background.frames_written == background.frames_submitted == len(frames)
    a = np.stack(list(iter_frames(tmp_path / "plain.mp4")))
    b = np.stack(list(iter_frames(tmp_path / "background.mp4")))
    assert a.shape == (len(frames), H, W, 3) and np.array_equal(a, b)
    assert _leftovers(tmp_path) == ["background.mp4", "plain.mp4"]


@pytest.mark.parametrize("failure", [RuntimeError, KeyboardInterrupt])
def test_failure_in_the_block_leaves_nothing(tmp_path: Path, failure: type) -> None:
    target = tmp_path / "guide.mp4"
    with pytest.raises(failure):
        with BackgroundGuideWriter(target, W, H, 16) as writer:
            for frame in _frames(5):
                writer.write(frame)
            raise failure("stop")
    assert _leftovers(tmp_path) == []


def test_encoder_error_reaches_the_producer_and_nothing_is_published(tmp_path: Path, monkeypatch) -> None:
    original = GuideVideoWriter.write

    def failing_write(self, frame):
        if self.frames_written == 3:
            raise OSError(28, "No space left on device")
        original(self, frame)

    monkeypatch.setattr(video_io.GuideVideoWriter, "write", failing_write)
    with pytest.raises(OSError, match="No space left"):
        with BackgroundGuideWriter(tmp_path / "guide.mp4", W, H, 16, queue_frames=2) as writer:
            for frame in _frames(40):
                writer.write(frame)
    assert _leftovers(tmp_path) == []


def test_queue_is_bounded(tmp_path: Path, monkeypatch) -> None:
    original = GuideVideoWriter.write
    release = threading.Event()

    def slow_write(self, frame):
        release.wait(5)
        original(self, frame)

    monkeypatch.setattr(video_io.GuideVideoWriter, "write", slow_write)
    submitted = []
    with BackgroundGuideWriter(tmp_path / "guide.mp4", W, H, 16, queue_frames=3) as writer:
        producer = threading.Thread(target=lambda: [writer.write(f) for f in _frames(10)])
        producer.start()
        time.sleep(0.5)
        submitted.append(writer.frames_submitted)  # the encoder holds 1, the queue 3, the producer waits
        release.set()
        producer.join()
    assert submitted[0] <= 4
    assert writer.frames_written == 10


def test_misuse(tmp_path: Path) -> None:
    writer = BackgroundGuideWriter(tmp_path / "guide.mp4", W, H, 16)
    with pytest.raises(RuntimeError):
        writer.write(_frames(1)[0])
    with pytest.raises(ValueError):
        with BackgroundGuideWriter(tmp_path / "guide.mp4", W, H, 16) as writer:
            writer.write(np.zeros((H, W, 4), np.uint8))
    with pytest.raises(ValueError):
        BackgroundGuideWriter(tmp_path / "guide.mp4", W, H, 16, queue_frames=0)
    assert _leftovers(tmp_path) == []
