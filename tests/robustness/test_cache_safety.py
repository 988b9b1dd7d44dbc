"""Cache and output safety (issue "never delete outside the cache, never serve a corrupt guide, never leave
a partial file"): planted links, foreign objects, damaged stored renders, a writer killed during encode."""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from robustness.rbkit import assert_cache_consistent, assert_guide, leftovers, reap
from wan2gp_structure_video import GuideRequest, RunContext, build_guide
from wan2gp_structure_video.cli import main
from wan2gp_structure_video.preprocessors.cache.flow_cache import FlowCache
from wan2gp_structure_video.preprocessors.video.sample_video import write_sample_video
from wan2gp_structure_video.preprocessors.video.video_io import iter_frames

pytestmark = pytest.mark.skipif(not hasattr(os, "symlink") or sys.platform == "win32",
                                reason="needs POSIX symbolic links and signals")


@pytest.fixture(scope="module")
def sample(tmp_path_factory) -> Path:
    return write_sample_video(tmp_path_factory.mktemp("src") / "sample.mp4", 160, 96, frames=24, fps=24)


def _request(source: Path, out: Path, **kw) -> GuideRequest:
    return GuideRequest(source, out, **{"resolution": (128, 64), "frames": 16, "fps": 16, "backend": "dis", **kw})


def _decoded(path: Path) -> np.ndarray:
    return np.stack(list(iter_frames(path)))


def _victims(folder: Path) -> dict[Path, bytes]:
    """Files outside the cache that a cache operation must never touch."""
    (folder / "important").mkdir(parents=True)
    files = {folder / "important" / "data.txt": b"precious data\n", folder / "manifest.json": b'{"mine": true}\n',
             folder / "flows.npy": b"not a flow file\n", folder / "used": b"keep me\n"}
    for path, data in files.items():
        path.write_bytes(data)
    return files


def _assert_untouched(victims: dict[Path, bytes]) -> None:
    for path, data in victims.items():
        assert path.is_file() and path.read_bytes() == data, f"{path} was changed or deleted"


def _plant_issue_links(cache_root: Path, outside: Path) -> list[Path]:
    """The two links of the issue: an entry-prefix folder and an entry folder pointing outside."""
    entries = cache_root / "v1" / "entries"
    (entries / "ab").mkdir(parents=True, exist_ok=True)
    links = [entries / "zz", entries / "ab" / ("ab" + "c" * 62)]
    for link in links:
        link.symlink_to(outside, target_is_directory=True)
    return links


# ------------------------------------------------------------------------------------- 1. links
@pytest.mark.parametrize("operation", ["clear", "prune", "cli-clear", "cli-prune"])
def test_planted_links_survive_clear_and_prune(tmp_path, sample, operation) -> None:
    cache_root, outside = tmp_path / "cache", tmp_path / "outside"
    victims = _victims(outside)
    build_guide(_request(sample, tmp_path / "g.mp4"), RunContext(cache=FlowCache(cache_root)))
    links = _plant_issue_links(cache_root, outside)
    stats = FlowCache(cache_root).stats()
    if operation == "clear":
        removed, _ = FlowCache(cache_root).clear()
    elif operation == "prune":
        removed, _ = FlowCache(cache_root, max_bytes=1).prune()
    else:
        action = operation.split("-")[1]
        assert main(["cache", action, "--cache-dir", str(cache_root), "--cache-max-gb", "0.000001"]) == 0
        removed = 2
    _assert_untouched(victims)
    assert removed == 2  # the real entry and the real render
    assert stats.entries == 1 and len(stats.foreign) == 2 and "foreign" in str(stats)
    assert all(link.is_symlink() for link in links)  # reported, never deleted
    after = FlowCache(cache_root).stats()
    assert (after.entries, after.renders, len(after.foreign)) == (0, 0, 2)


@pytest.mark.parametrize("where", ["entry", "prefix"])
def test_a_guide_run_meeting_a_linked_entry_leaves_the_outside_alone(tmp_path, sample, where) -> None:
    cache_root, outside = tmp_path / "cache", tmp_path / "outside"
    first = build_guide(_request(sample, tmp_path / "a.mp4"), RunContext(cache=FlowCache(cache_root)))
    key = first.cache_key
    entry = cache_root / "v1" / "entries" / key[:2] / key
    shutil.rmtree(entry.parent)
    if where == "entry":  # v1/entries/<k[:2]>/<key> -> outside, holding an "invalid entry"
        victims = _victims(outside)
        entry.parent.mkdir()
        entry.symlink_to(outside, target_is_directory=True)
    else:  # v1/entries/<k[:2]> -> outside, holding <key>/ with an "invalid entry"
        victims = _victims(outside / key)
        entry.parent.symlink_to(outside, target_is_directory=True)
    cache = FlowCache(cache_root)
    try:
        again = build_guide(_request(sample, tmp_path / "b.mp4", motion_strength=2.0), RunContext(cache=cache))
    finally:
        _assert_untouched(victims)
    assert again.cache_hit is False and "left alone" in (cache.problem(key) or "")
    reference = build_guide(_request(sample, tmp_path / "ref.mp4", motion_strength=2.0), RunContext(use_cache=False))
    assert reference.frames == again.frames
    assert np.array_equal(_decoded(tmp_path / "b.mp4"), _decoded(tmp_path / "ref.mp4"))
    assert len(FlowCache(cache_root).stats().foreign) == 1
    FlowCache(cache_root).clear()
    _assert_untouched(victims)


def test_links_and_foreign_files_inside_the_cache_are_never_followed_or_deleted(tmp_path, sample) -> None:
    cache_root, outside = tmp_path / "cache", tmp_path / "outside"
    victims = _victims(outside)
    first = build_guide(_request(sample, tmp_path / "a.mp4"), RunContext(cache=FlowCache(cache_root)))
    base = cache_root / "v1"
    entry = base / "entries" / first.cache_key[:2] / first.cache_key
    (entry / "used").unlink()
    (entry / "used").symlink_to(outside / "used")  # a link inside a real entry: the whole entry is foreign
    foreign = [base / "renders" / "notes.txt", base / "sources" / "readme", base / "locks" / "x.lock",
               base / "tmp" / "someone-elses-folder", base / "stray.bin"]
    for path in foreign:
        if path.parent.name == "tmp":
            path.mkdir()
        else:
            path.write_bytes(b"foreign")
    render = next((base / "renders").glob("*.mp4"))
    render.with_suffix(".json").unlink()
    os.symlink(outside / "important" / "data.txt", render.with_suffix(".json"))  # a linked render record
    stats = FlowCache(cache_root).stats()
    assert len(stats.foreign) == len(foreign) + 2, stats.foreign
    build_guide(_request(sample, tmp_path / "b.mp4", motion_strength=1.5), RunContext(cache=FlowCache(cache_root)))
    FlowCache(cache_root).clear()
    FlowCache(cache_root, max_bytes=1).prune()
    _assert_untouched(victims)
    assert all(os.path.lexists(path) for path in foreign) and (entry / "used").is_symlink()


# ------------------------------------------------------------------------------------- 2. stored renders
@pytest.mark.parametrize("damage", ["truncate", "flip"])
def test_a_damaged_stored_render_is_detected_and_rendered_again(tmp_path, sample, damage) -> None:
    cache_root = tmp_path / "cache"
    clean = build_guide(_request(sample, tmp_path / "clean.mp4"), RunContext(use_cache=False))
    build_guide(_request(sample, tmp_path / "first.mp4"), RunContext(cache=FlowCache(cache_root)))
    (stored,) = (cache_root / "v1" / "renders").glob("*.mp4")
    time.sleep(0.15)
    assert build_guide(_request(sample, tmp_path / "hit.mp4"), RunContext(cache=FlowCache(cache_root))).render_cached
    data = bytearray(stored.read_bytes())
    if damage == "truncate":
        data = data[: len(data) // 2]
    else:
        data[len(data) // 2] ^= 0xFF
    stored.write_bytes(bytes(data))
    cache = FlowCache(cache_root)
    out = tmp_path / "out" / "g.mp4"
    again = build_guide(_request(sample, out), RunContext(cache=cache))
    assert not again.render_cached, "the damaged render was served"
    assert cache.problem(stored.stem), "the damage was not reported"
    assert any("cached guide was damaged" in note for note in again.warnings), again.warnings
    assert again.frames == clean.frames
    assert np.array_equal(_decoded(out), _decoded(tmp_path / "clean.mp4"))
    assert_cache_consistent(cache_root)  # the render stored again matches its record
    assert build_guide(_request(sample, tmp_path / "third.mp4"), RunContext(cache=FlowCache(cache_root))).render_cached


# ------------------------------------------------------------------------------------- 3. partial files
_SLOW_ENCODE = """
import sys, time
from pathlib import Path
from wan2gp_structure_video import GuideRequest, RunContext, build_guide
from wan2gp_structure_video.progress import Progress

src, out = sys.argv[1:3]

def slow(update):  # stop once the encoder has written its partial file (x264 buffers the first frames)
    if update.stage == "encode" and any(".partial" in p.name for p in Path(out).parent.iterdir()):
        print("encoding", flush=True)
        time.sleep(60)

build_guide(GuideRequest(src, out, resolution=(128, 64), frames=40, fps=16, backend="dis"),
            RunContext(use_cache=False, progress=Progress(slow)))
"""


def test_a_writer_killed_during_encode_leaves_no_partial_after_the_next_run(tmp_path, sample) -> None:
    out = tmp_path / "out" / "g.mp4"
    env = dict(os.environ, WAN2GP_STRUCTURE_VIDEO_HOME=str(tmp_path / "home"), TMPDIR=str(tmp_path))
    proc = subprocess.Popen([sys.executable, "-c", _SLOW_ENCODE, str(sample), str(out)], stdout=subprocess.PIPE,
                            text=True, env=env)
    try:
        line = proc.stdout.readline()
        assert line.startswith("encoding"), line
        partials = leftovers(out.parent)
        assert partials, "the writer had no partial file while encoding"
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        reap(proc)
    assert all(p.exists() for p in partials) and not out.exists()  # what the killed writer left
    build_guide(_request(sample, out, frames=40), RunContext(cache=FlowCache(tmp_path / "cache")))
    assert_guide(out, (128, 64), 40)
    assert not leftovers(out.parent), leftovers(out.parent)


_SLOW_EXTRACT = """
import sys, time
from pathlib import Path
from wan2gp_structure_video import GuideRequest, RunContext, build_guide
from wan2gp_structure_video.progress import Progress

src, out, work = sys.argv[1:4]

def slow(update):  # stop halfway through the flow extraction, its scratch folder half full
    if update.stage == "flow" and update.done * 2 >= update.total:
        print("extracting", flush=True)
        time.sleep(60)

build_guide(GuideRequest(src, out, resolution=(128, 64), frames=40, fps=16, backend="dis"),
            RunContext(use_cache=False, work_dir=Path(work), progress=Progress(slow)))
"""


def test_scratch_flows_of_a_killed_uncached_run_are_swept_by_the_next_one(tmp_path, sample) -> None:
    from wan2gp_structure_video.scratch_dirs import GRACE_S

    work = tmp_path / "work"
    work.mkdir()
    out = tmp_path / "g.mp4"
    proc = subprocess.Popen([sys.executable, "-c", _SLOW_EXTRACT, str(sample), str(out), str(work)],
                            stdout=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline()
        assert line.startswith("extracting"), line
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        reap(proc)
    left = list(work.iterdir())
    assert [p.name.split("-")[:3] for p in left] == [["sv", "flows", str(proc.pid)]], left
    assert (left[0] / "flows.npy").stat().st_size > 0
    old = time.time() - GRACE_S - 60  # as if the run had been killed a while ago
    for path in (left[0] / "flows.npy", left[0]):
        os.utime(path, (old, old))
    build_guide(_request(sample, out, frames=40), RunContext(use_cache=False, work_dir=work))
    assert_guide(out, (128, 64), 40)
    assert list(work.iterdir()) == []  # the dead run's flows are gone, and this run's own as well


def test_a_live_writers_partial_next_to_the_output_is_left_alone(tmp_path, sample) -> None:
    out = tmp_path / "g.mp4"
    live = tmp_path / f".g.mp4.{os.getppid()}.0123abcd.partial.mp4"  # our parent process: alive
    live.write_bytes(b"in progress")
    build_guide(_request(sample, out), RunContext(use_cache=False))
    assert live.exists() and out.exists()
