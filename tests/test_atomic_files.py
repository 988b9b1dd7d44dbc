"""atomic_files: publish-or-nothing writes and the sweep of dead writers' partial files."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest

from wan2gp_structure_video import atomic_files as af


def test_publishing_renames_on_success_and_keeps_the_media_suffix(tmp_path):
    target = tmp_path / "sub" / "guide.mp4"
    with af.publishing(target) as tmp:
        assert tmp.parent == target.parent and tmp.suffix == ".mp4" and af.is_partial_name(tmp.name)
        assert af.partial_writer_pid(tmp.name) == os.getpid()
        tmp.write_bytes(b"abc")
    assert target.read_bytes() == b"abc"
    assert sorted(p.name for p in target.parent.iterdir()) == ["guide.mp4"]


def test_publishing_keeps_the_old_file_and_removes_the_partial_on_error(tmp_path):
    target = tmp_path / "t.json"
    target.write_text("old")
    with pytest.raises(KeyboardInterrupt):
        with af.publishing(target) as tmp:
            tmp.write_text("half")
            raise KeyboardInterrupt
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["t.json"]


def test_publishing_without_a_written_file_fails_and_publishes_nothing(tmp_path):
    with pytest.raises(FileNotFoundError):
        with af.publishing(tmp_path / "x.txt"):
            pass
    assert list(tmp_path.iterdir()) == []


def test_write_and_copy_helpers(tmp_path):
    af.write_text_atomic(tmp_path / "a.txt", "héllo")
    af.copy_atomic(tmp_path / "a.txt", tmp_path / "b.txt")
    assert (tmp_path / "b.txt").read_text(encoding="utf-8") == "héllo"


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_sweep_removes_only_partials_of_dead_writers(tmp_path):
    dead = tmp_path / f".guide.mp4.{_dead_pid()}.0123abcd.partial.mp4"
    live = tmp_path / f".guide.mp4.{os.getpid()}.89abcdef.partial.mp4"
    other_name = tmp_path / f".other.mp4.{_dead_pid()}.0123abcd.partial.mp4"
    unrelated = tmp_path / "guide.mp4"
    for path in (dead, live, other_name, unrelated):
        path.write_bytes(b"x")
    removed = af.sweep_stale_partials(tmp_path, "guide.mp4")
    assert removed == [dead]
    assert live.exists() and other_name.exists() and unrelated.exists()
    assert af.sweep_stale_partials(tmp_path) == [other_name]


def test_sweep_never_follows_links(tmp_path):
    victim = tmp_path / "victim.txt"
    victim.write_text("keep")
    folder = tmp_path / "out"
    folder.mkdir()
    link = folder / f".guide.mp4.{_dead_pid()}.0123abcd.partial.mp4"
    link.symlink_to(victim)
    assert af.sweep_stale_partials(folder) == []
    assert victim.read_text() == "keep" and link.is_symlink()
