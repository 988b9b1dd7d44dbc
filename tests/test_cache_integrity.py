"""Flow cache integrity without re-reading: verified stamps, checked renders, lock files, stats wording."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from wan2gp_structure_video.cli import main
from wan2gp_structure_video.preprocessors.cache import cache_hashing
from wan2gp_structure_video.preprocessors.cache.cache_hashing import FileStamp, stamp_record
from wan2gp_structure_video.preprocessors.cache.cache_layout import CacheLayout
from wan2gp_structure_video.preprocessors.cache.cache_locks import key_lock
from wan2gp_structure_video.preprocessors.cache.flow_cache import CacheStats, FlowCache, format_bytes, make_key
from wan2gp_structure_video.preprocessors.cache.row_store import FlowStoreWriter

PAST_RACY_WINDOW = 0.15  # seconds: a stamp is trusted only once the file's last change is this old


def _producer(rows=3, height=8, width=12, calls=None):
    def produce(folder: Path):
        if calls is not None:
            calls.append(1)
        writer = FlowStoreWriter(folder / "flows.npy", rows, height, width)
        for row in range(rows):
            writer.put(row, np.full((height, width, 2), 1.0 + row, np.float32))
        writer.close()
        return {"shape": [rows, height, width, 2], "frame_rows": list(range(rows))}
    return produce


@pytest.fixture()
def hash_calls(monkeypatch):
    """Every file the cache hashes, in order."""
    calls: list[str] = []
    original = cache_hashing.sha256_file

    def counting(path):
        calls.append(Path(path).name)
        return original(path)

    monkeypatch.setattr(cache_hashing, "sha256_file", counting)
    return calls


def _rewrite_same_size(path: Path, keep_mtime: bool) -> None:
    before = os.stat(path)
    blob = bytearray(path.read_bytes())
    blob[len(blob) // 2] ^= 0xFF
    with open(path, "r+b") as handle:  # in place: same inode, same size
        handle.write(bytes(blob))
    if keep_mtime:  # forge the old mtime back (ctime cannot be forged)
        os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    after = os.stat(path)
    assert (after.st_size, after.st_ino) == (before.st_size, before.st_ino)
    assert not keep_mtime or after.st_mtime_ns == before.st_mtime_ns


# ------------------------------------------------------------------------------------- verified stamps
def test_a_hit_in_a_new_process_does_not_rehash_the_flows(tmp_path, hash_calls):
    key = make_key({"stamp": 1})
    FlowCache(tmp_path).get_or_create(key, _producer(), {})
    time.sleep(PAST_RACY_WINDOW)
    assert FlowCache(tmp_path).lookup(key) is not None  # verifies (fully, or through the stamp) once
    assert (tmp_path / "v1" / "entries" / key[:2] / key / "verified.json").is_file()
    hash_calls.clear()
    for _ in range(3):  # new instances, as the CLI and the tab make per run
        entry, hit = FlowCache(tmp_path).get_or_create(key, _producer(), {})
        assert hit and float(entry.rows()[2, 0, 0, 0]) == 3.0
    assert hash_calls == []


@pytest.mark.parametrize("forge_mtime", [False, True], ids=["rewrite", "rewrite-with-forged-mtime"])
def test_a_stamped_entry_rewritten_in_place_is_still_detected(tmp_path, hash_calls, forge_mtime, caplog):
    key = make_key({"forge": forge_mtime})
    FlowCache(tmp_path).get_or_create(key, _producer(), {})
    time.sleep(PAST_RACY_WINDOW)
    assert FlowCache(tmp_path).lookup(key) is not None
    data = tmp_path / "v1" / "entries" / key[:2] / key / "flows.npy"
    _rewrite_same_size(data, keep_mtime=forge_mtime)
    hash_calls.clear()
    cache = FlowCache(tmp_path)
    calls = []
    entry, hit = cache.get_or_create(key, _producer(calls=calls), {})
    assert hash_calls[0] == "flows.npy" and "checksum mismatch" in caplog.text
    assert cache.problem(key) == "checksum mismatch"  # what the caller tells the user
    assert not hit and calls == [1] and float(entry.rows()[1, 0, 0, 0]) == 2.0
    assert FlowCache(tmp_path).lookup(key) is not None


def test_a_stamp_is_not_trusted_within_the_racy_window():
    now = time.time_ns()
    fresh = FileStamp(size=10, mtime_ns=now - 1_000, ctime_ns=now - 1_000, ino=1)
    assert fresh.racy(now) and stamp_record(fresh, "ab" * 32, now) is None
    old = FileStamp(size=10, mtime_ns=now - 10**9, ctime_ns=now - 10**9 + 7, ino=1)
    assert not old.racy(now) and stamp_record(old, "ab" * 32, now)["ino"] == 1
    coarse = FileStamp(size=10, mtime_ns=(now // 10**9 - 1) * 10**9, ctime_ns=(now // 10**9 - 1) * 10**9, ino=1)
    assert coarse.racy(now)  # whole-second timestamps: the window is 2 s


class _Payload:
    """Unpickling this creates a marker file."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


def test_a_forged_stamp_still_cannot_make_a_pickle_load(tmp_path):
    """The stamp vouches against accidents; the .npy header is checked on every hit anyway."""
    key = make_key({"pickle-stamp": 1})
    cache = FlowCache(tmp_path)
    entry, _ = cache.get_or_create(key, _producer(), {})
    marker = tmp_path / "PWNED"
    array = np.empty(1, dtype=object)
    array[0] = _Payload(marker)
    np.save(entry.rows_path, array, allow_pickle=True)
    manifest = json.loads((entry.path / "manifest.json").read_text())
    digest = cache_hashing.sha256_file(entry.rows_path)
    manifest.update(bytes=entry.rows_path.stat().st_size, sha256=digest)
    (entry.path / "manifest.json").write_text(json.dumps(manifest))
    stamp = FileStamp.of(entry.rows_path)
    (entry.path / "verified.json").write_text(json.dumps({"sha256": digest, "size": stamp.size,
                                                          "mtime_ns": stamp.mtime_ns, "ctime_ns": stamp.ctime_ns,
                                                          "ino": stamp.ino}))
    assert FlowCache(tmp_path).lookup(key) is None and not marker.exists()


def test_source_hash_is_remembered_by_stamp(tmp_path, hash_calls):
    video = tmp_path / "v.mp4"
    video.write_bytes(os.urandom(50_000))
    os.utime(video, ns=(time.time_ns() - 10**9, time.time_ns() - 10**9))
    time.sleep(PAST_RACY_WINDOW)
    first = FlowCache(tmp_path / "c").content_hash(video)
    assert FlowCache(tmp_path / "c").content_hash(video) == first and hash_calls == ["v.mp4"]
    _rewrite_same_size(video, keep_mtime=True)
    assert FlowCache(tmp_path / "c").content_hash(video) != first


# ------------------------------------------------------------------------------------- renders
def _guide_like(path: Path, size: int = 200_000) -> Path:
    path.write_bytes(os.urandom(size))
    return path


@pytest.mark.parametrize("damage", ["truncate", "flip", "flip-forged-mtime", "no-record"])
def test_a_damaged_render_is_refused_removed_and_reported(tmp_path, damage, caplog):
    cache = FlowCache(tmp_path / "c")
    key = make_key({"render": damage})
    stored = cache.store_render(key, _guide_like(tmp_path / "g.mp4"))
    time.sleep(PAST_RACY_WINDOW)
    assert cache.lookup_render(key) == stored and cache.problem(key) is None  # verified, and stamped
    assert json.loads(stored.with_suffix(".json").read_text())["stamp"] is not None
    if damage == "truncate":
        with open(stored, "r+b") as handle:
            handle.truncate(stored.stat().st_size // 2)
    elif damage == "no-record":
        stored.with_suffix(".json").unlink()
    else:
        _rewrite_same_size(stored, keep_mtime=damage == "flip-forged-mtime")
    again = FlowCache(tmp_path / "c")
    assert again.lookup_render(key) is None
    assert again.problem(key) and "invalid" in caplog.text
    assert not stored.exists() and not stored.with_suffix(".json").exists()
    assert again.stats().renders == 0


def test_a_verified_render_is_served_without_rehashing(tmp_path, hash_calls):
    cache = FlowCache(tmp_path / "c")
    key = make_key({"render": "fast"})
    cache.store_render(key, _guide_like(tmp_path / "g.mp4"))
    time.sleep(PAST_RACY_WINDOW)
    assert cache.lookup_render(key) is not None
    hash_calls.clear()
    assert FlowCache(tmp_path / "c").lookup_render(key) is not None and hash_calls == []


def test_render_folder_sweep_keeps_live_writers(tmp_path):
    cache = FlowCache(tmp_path / "c")
    key = make_key({"render": "sweep"})
    cache.store_render(key, _guide_like(tmp_path / "g.mp4"))
    renders = tmp_path / "c" / "v1" / "renders"
    dead = renders / f".{key}.mp4.{_dead_pid()}.0123abcd.partial.mp4"
    live = renders / f".{key}.mp4.{os.getpid()}.89abcdef.partial.mp4"
    dead.write_bytes(b"x")
    live.write_bytes(b"y")
    assert not cache.stats().foreign  # partial files are the cache's own
    cache.store_render(make_key({"render": "other"}), _guide_like(tmp_path / "h.mp4"))
    assert not dead.exists() and live.exists()


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


# ------------------------------------------------------------------------------------- lock files
def test_lock_files_do_not_pile_up(tmp_path):
    cache = FlowCache(tmp_path)
    for index in range(5):
        cache.get_or_create(make_key({"lock": index}), _producer(), {})
    assert list((tmp_path / "v1" / "locks").iterdir()) == []


def test_clear_removes_lock_files_left_by_killed_processes_but_not_held_ones(tmp_path):
    cache = FlowCache(tmp_path)
    cache.get_or_create(make_key({"a": 1}), _producer(), {})
    locks = tmp_path / "v1" / "locks"
    stale = [locks / f"{make_key({'stale': i})}.lock" for i in range(3)]
    for path in stale:
        path.write_bytes(b"")  # what a process killed while holding its lock leaves
    held_key = make_key({"held": 1})
    with key_lock(CacheLayout(tmp_path), held_key, timeout=1):
        cache.clear()
        assert sorted(p.name for p in locks.iterdir()) == [f"{held_key}.lock"]
    assert list(locks.iterdir()) == []  # the holder removes its own file on release
    assert cache.stats().entries == 0


def test_cli_clear_leaves_no_lock_files(tmp_path, capsys):
    cache = FlowCache(tmp_path / "c")
    cache.get_or_create(make_key({"cli": 1}), _producer(), {})
    (tmp_path / "c" / "v1" / "locks" / f"{make_key({'left': 1})}.lock").write_bytes(b"")
    assert main(["cache", "clear", "--cache-dir", str(tmp_path / "c")]) == 0
    assert "Cleared 1 item," in capsys.readouterr().out
    assert list((tmp_path / "c" / "v1" / "locks").iterdir()) == []


_LOCK_WORKER = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    from wan2gp_structure_video.preprocessors.cache.cache_layout import CacheLayout
    from wan2gp_structure_video.preprocessors.cache.cache_locks import key_lock
    root, key, counter, rounds = Path(sys.argv[1]), sys.argv[2], Path(sys.argv[3]), int(sys.argv[4])
    layout = CacheLayout(root)
    for _ in range(rounds):
        with key_lock(layout, key, timeout=60):
            value = int(counter.read_text())
            time.sleep(0.002)
            counter.write_text(str(value + 1))
""")


def test_lock_removed_on_release_still_excludes_across_processes(tmp_path):
    """Holders unlink the lock file before releasing it; waiters must re-check the file they locked.
    A lost update in this read-modify-write counter would show a broken lock."""
    (tmp_path / "v1" / "locks").mkdir(parents=True)
    counter = tmp_path / "counter"
    counter.write_text("0")
    key = make_key({"stress": 1})
    procs = [subprocess.Popen([sys.executable, "-c", _LOCK_WORKER, str(tmp_path), key, str(counter), "40"])
             for _ in range(3)]
    assert all(p.wait(timeout=240) == 0 for p in procs)
    assert counter.read_text() == "120"
    assert list((tmp_path / "v1" / "locks").iterdir()) == []


def test_lock_threads_of_one_process(tmp_path):
    (tmp_path / "v1" / "locks").mkdir(parents=True)
    layout, key, total = CacheLayout(tmp_path), make_key({"threads": 1}), [0]

    def work():
        for _ in range(50):
            with key_lock(layout, key, timeout=60):
                value = total[0]
                time.sleep(0.0005)
                total[0] = value + 1

    threads = [threading.Thread(target=work) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert total[0] == 200


# ------------------------------------------------------------------------------------- stats wording
def test_stats_creates_nothing_and_speaks_plainly(tmp_path, capsys):
    new = tmp_path / "NEW"
    assert main(["cache", "stats", "--cache-dir", str(new), "--cache-max-gb", "0.05"]) == 0
    out = capsys.readouterr().out
    assert not new.exists()
    assert "0 flow entries" in out and "of 51.2 MiB" in out and "0.0 GiB" not in out
    assert main(["cache", "prune", "--cache-dir", str(new)]) == 0 and not new.exists()
    assert main(["cache", "clear", "--cache-dir", str(new)]) == 0 and not new.exists()
    one = str(CacheStats(new, 1, 1, 3 * 2**30, 10 * 2**30))
    assert one.startswith("1 flow entry, 1 rendered guide, 3.0 GiB of 10.0 GiB")
    assert str(CacheStats(new, 2, 0, 1536, 2**20)).startswith("2 flow entries, 0 rendered guides, 1.5 KiB of 1.0 MiB")
    assert [format_bytes(n) for n in (0, 512, 2**20 * 51.2, 2**40)] == ["0 B", "512 B", "51.2 MiB", "1024.0 GiB"]


def test_nested_partials_of_dead_writers_are_swept_with_their_final_name(tmp_path):
    from wan2gp_structure_video.atomic_files import partial_target, sweep_stale_partials

    dead = _dead_pid()
    outer = f".g.mp4.{dead}.0123abcd.partial.mp4"  # a writer publishing through another writer's partial file
    nested = tmp_path / f".{outer}.{dead}.89abcdef.partial.mp4"
    other = tmp_path / f"..h.mp4.{dead}.0123abcd.partial.mp4.{dead}.89abcdef.partial.mp4"
    live = tmp_path / f"..g.mp4.{os.getpid()}.0123abcd.partial.mp4.{os.getpid()}.89abcdef.partial.mp4"
    for path in (nested, other, live):
        path.write_bytes(b"x")
    assert partial_target(nested.name) == "g.mp4" and partial_target("g.mp4") is None
    assert sweep_stale_partials(tmp_path, "g.mp4") == [nested]
    assert other.exists() and live.exists()
