"""Shared helpers of the robustness suite: generated bad inputs, output and cache consistency checks."""
from __future__ import annotations

import struct
import subprocess
from fractions import Fraction
from pathlib import Path
from typing import Callable, Optional

import numpy as np

from videogen import make_audio_only, make_png, make_truncated, make_video
from wan2gp_structure_video.preprocessors.cache.flow_cache import FlowCache
from wan2gp_structure_video.preprocessors.video.video_io import probe_video


def make_y4m(path: Path, width: int, height: int, frames: int, rate: str = "24:1", with_frames: bool = True) -> Path:
    """A raw YUV4MPEG2 file; ``with_frames=False`` writes only the header (a cheap "huge" video)."""
    with open(path, "wb") as handle:
        handle.write(f"YUV4MPEG2 W{width} H{height} F{rate} Ip A1:1 C420jpeg\n".encode())
        if with_frames:
            rng = np.random.default_rng(1)
            for index in range(frames):
                luma = np.roll(rng.integers(0, 256, (height, width), dtype=np.uint8), index * 2, axis=1)
                handle.write(b"FRAME\n" + luma.tobytes() + bytes([128]) * (width * height // 2))
    return path


def make_zero_duration_mp4(path: Path) -> Path:
    """An MP4 whose time-to-sample table says every frame lasts 0 ticks (fps metadata 0)."""
    make_video(path, 64, 48, frames=8, codec="mpeg4", pix_fmt="yuv420p")
    data = bytearray(path.read_bytes())
    at = data.find(b"stts")
    count = struct.unpack(">I", data[at + 8:at + 12])[0]
    for entry in range(count):
        offset = at + 12 + 8 * entry + 4
        data[offset:offset + 4] = b"\0\0\0\0"
    path.write_bytes(bytes(data))
    return path


def bad_input_builders(root: Path, good: Path) -> dict[str, Callable[[], Path]]:
    """Every input of the issue, built lazily under ``root``."""
    root.mkdir(parents=True, exist_ok=True)

    def zero_byte() -> Path:
        path = root / "zero.mp4"
        path.write_bytes(b"")
        return path

    def text_mp4() -> Path:
        path = root / "notes.mp4"
        path.write_text("this is not a video\n" * 20)
        return path

    def directory() -> Path:
        path = root / "a folder"
        path.mkdir(exist_ok=True)
        return path

    def nonascii() -> Path:
        folder = root / "dir with spaces ñ 動画"
        folder.mkdir(exist_ok=True)
        return make_video(folder / "vidéo é 動画 ü.mp4", 64, 48, frames=8)

    return {
        "zero-byte": zero_byte,
        "truncated-50": lambda: make_truncated(good, root / "truncated.mp4", 0.5),
        "text-as-mp4": text_mp4,
        "png": lambda: make_png(root / "image.png"),
        "audio-only": lambda: make_audio_only(root / "audio.mp4"),
        "one-frame": lambda: make_video(root / "one.mp4", 64, 48, frames=1),
        "two-frame": lambda: make_video(root / "two.mp4", 64, 48, frames=2),
        "odd-333x201": lambda: make_video(root / "odd.mp4", 333, 201, frames=6),
        "tiny-16x16": lambda: make_video(root / "tiny.mp4", 16, 16, frames=6),
        "huge-8192-header": lambda: make_y4m(root / "huge.y4m", 8192, 8192, 1, with_frames=False),
        "portrait": lambda: make_video(root / "portrait.mp4", 48, 96, frames=6),
        "square": lambda: make_video(root / "square.mp4", 64, 64, frames=6),
        "ultra-wide": lambda: make_video(root / "wide.mp4", 256, 32, frames=6),
        "fps-0-y4m": lambda: make_y4m(root / "fps0.y4m", 64, 48, 6, rate="0:1"),
        "fps-0-stts": lambda: make_zero_duration_mp4(root / "fps0.mp4"),
        "fps-1000": lambda: make_video(root / "fps1000.mkv", 64, 48, frames=6, codec="ffv1", fps=1000),
        "vfr": lambda: make_video(root / "vfr.mkv", 64, 48, frames=8, codec="ffv1", pts=[0, 1, 3, 4, 8, 9, 15, 16],
                                  time_base=Fraction(1, 10), fps=10),
        "rotation-90": lambda: make_video(root / "rot90.mp4", 64, 48, frames=6, rotation=90),
        "grayscale": lambda: make_video(root / "gray.mkv", 64, 48, frames=6, codec="ffv1", pix_fmt="gray"),
        "alpha": lambda: make_video(root / "alpha.mov", 64, 48, frames=6, codec="png", pix_fmt="rgba"),
        "non-ascii-spaces": nonascii,
        "nonexistent": lambda: root / "does not exist.mp4",
        "directory": directory,
        "url": lambda: Path("https://example.com/video.mp4"),
    }


#: What each input must give: "ok" (a correct guide), "error" (a typed one-line error) or "either".
EXPECTED = {
    "zero-byte": "error", "truncated-50": "either", "text-as-mp4": "error", "png": "error", "audio-only": "error",
    "one-frame": "error", "two-frame": "ok", "odd-333x201": "ok", "tiny-16x16": "ok", "huge-8192-header": "error",
    "portrait": "ok", "square": "ok", "ultra-wide": "ok", "fps-0-y4m": "ok", "fps-0-stts": "ok", "fps-1000": "ok",
    "vfr": "ok", "rotation-90": "ok", "grayscale": "ok", "alpha": "ok", "non-ascii-spaces": "ok",
    "nonexistent": "error", "directory": "error", "url": "error",
}


def reap(proc: "subprocess.Popen") -> None:
    """Kill ``proc`` if it still runs, wait for it, close its pipes (for ``finally`` blocks)."""
    if proc.poll() is None:
        proc.kill()
        proc.wait()
    for pipe in (proc.stdout, proc.stderr):
        if pipe is not None:
            pipe.close()


def leftovers(folder: Path) -> list[Path]:
    """Partial or temporary files anywhere under ``folder``."""
    return [p for p in Path(folder).rglob("*") if ".partial" in p.name or p.name.endswith(".tmp")]


def assert_cache_consistent(root: Path) -> FlowCache:
    """Every entry under ``root`` is whole and matches its checksum (re-hashed here, whatever its stamp),
    every stored render matches its record; no writer folder, partial or lock file is left behind."""
    import json

    from wan2gp_structure_video.preprocessors.cache.flow_cache import sha256_file

    cache = FlowCache(root)
    base = Path(root) / "v1"
    for folder in (base / "entries").glob("*/*"):
        manifest = json.loads((folder / "manifest.json").read_text())
        assert manifest["complete"] and manifest["key"] == folder.name, f"incomplete cache entry {folder}"
        assert sha256_file(folder / "flows.npy") == manifest["sha256"], f"corrupt cache entry {folder}"
        assert cache.lookup(folder.name) is not None, f"cache entry refused {folder}"
    for video in (base / "renders").glob("*.mp4"):
        record = json.loads(video.with_suffix(".json").read_text())
        assert sha256_file(video) == record["sha256"], f"corrupt cached render {video}"
    writers = list((base / "tmp").iterdir()) if (base / "tmp").exists() else []
    assert not writers, f"writer folders left: {writers}"
    assert not leftovers(base), f"partial files in the cache: {leftovers(base)}"
    locks = list((base / "locks").iterdir()) if (base / "locks").exists() else []
    assert not locks, f"lock files left: {locks}"
    assert not cache.stats().foreign, cache.stats()
    return cache


def assert_guide(path: Path, size: tuple[int, int], frames: int, fps: Optional[float] = None) -> None:
    info = probe_video(path)
    assert (info.width, info.height, info.frame_count) == (*size, frames), info
    if fps is not None:
        assert info.fps == fps
