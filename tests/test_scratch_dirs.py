"""Scratch folders of uncached runs: named after their process, swept once that process is gone."""
from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from wan2gp_structure_video.errors import CacheError
from wan2gp_structure_video.pipeline import RunContext
from wan2gp_structure_video.scratch_dirs import GRACE_S, make_scratch_dir, scratch_owner_pid, sweep_dead_scratch


def dead_pid() -> int:
    """The id of a process that has exited (and been reaped)."""
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def planted(parent: Path, name: str, age_s: float, payload: bytes = b"x" * 1024) -> Path:
    """A folder holding one file, both last changed ``age_s`` seconds ago."""
    folder = parent / name
    folder.mkdir()
    (folder / "flows.npy").write_bytes(payload)
    then = time.time() - age_s
    for path in (folder / "flows.npy", folder):
        os.utime(path, (then, then))
    return folder


def test_the_name_carries_this_process_and_the_kind(tmp_path) -> None:
    folder = make_scratch_dir("run-cache", tmp_path)
    assert folder.parent == tmp_path and folder.is_dir()
    assert folder.name.startswith(f"sv-run-cache-{os.getpid()}-")
    assert scratch_owner_pid(folder.name) == os.getpid()
    assert scratch_owner_pid("sv-flows-8ffwxojm") is None  # older releases' names carry no process id
    with pytest.raises(ValueError):
        make_scratch_dir("../flows", tmp_path)


def test_only_old_folders_of_gone_processes_are_swept(tmp_path) -> None:
    gone = dead_pid()
    old = GRACE_S + 60
    swept = planted(tmp_path, f"sv-flows-{gone}-abcd_123", old)
    recent = planted(tmp_path, f"sv-depth-{gone}-abcd_124", GRACE_S / 2)  # maybe another container's live run
    live = planted(tmp_path, f"sv-flows-{os.getpid()}-abcd_125", old)
    unnamed = planted(tmp_path, "sv-flows-8ffwxojm", old)
    foreign = planted(tmp_path, f"notes-{gone}-abcd_126", old)
    lone_file = tmp_path / f"sv-flows-{gone}-abcd_127"
    lone_file.write_bytes(b"a file, not ours")

    assert sweep_dead_scratch(tmp_path) == [swept]
    assert not swept.exists()
    assert all(p.exists() for p in (recent, live, unnamed, foreign, lone_file))


def test_a_file_changed_recently_inside_keeps_its_folder(tmp_path) -> None:
    folder = planted(tmp_path, f"sv-flows-{dead_pid()}-abcd_123", GRACE_S + 60)
    sub = folder / "entries"
    sub.mkdir()
    (sub / "flows.npy").write_bytes(b"still being written")
    old = time.time() - GRACE_S - 60
    os.utime(sub, (old, old))
    os.utime(folder, (old, old))
    assert sweep_dead_scratch(tmp_path) == []
    assert folder.exists()


def test_a_link_named_like_a_scratch_folder_is_not_followed(tmp_path) -> None:
    target = tmp_path / "precious"
    target.mkdir()
    (target / "keep.txt").write_text("keep")
    link = tmp_path / f"sv-flows-{dead_pid()}-abcd_123"
    link.symlink_to(target, target_is_directory=True)
    old = time.time() - GRACE_S - 60
    os.utime(link, (old, old), follow_symlinks=False)
    assert sweep_dead_scratch(tmp_path) == []
    assert link.is_symlink() and (target / "keep.txt").read_text() == "keep"


def test_a_new_scratch_folder_sweeps_dead_ones_beside_it(tmp_path) -> None:
    stale = planted(tmp_path, f"sv-flows-{dead_pid()}-abcd_123", GRACE_S + 60)
    fresh = make_scratch_dir("flows", tmp_path)
    assert fresh.is_dir() and not stale.exists()


def test_an_unwritable_work_folder_is_a_one_line_cache_error(tmp_path) -> None:
    blocker = tmp_path / "a file"
    blocker.write_text("not a folder")
    with pytest.raises(CacheError) as caught:
        RunContext(work_dir=blocker).scratch_dir("flows")
    message = str(caught.value)
    assert "\n" not in message and "TMPDIR" in message and str(blocker) in message
