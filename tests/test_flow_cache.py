"""Flow cache: keys, atomic entries, corruption, single-flight across threads and processes, LRU."""
from __future__ import annotations

import json
import multiprocessing
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from wan2gp_structure_video.errors import CacheError
from wan2gp_structure_video.preprocessors.cache.flow_cache import FlowCache, make_key
from wan2gp_structure_video.preprocessors.cache.row_store import FlowStoreWriter


def _producer(rows=3, height=8, width=12, value=1.0, calls=None, delay=0.0):
    def produce(folder: Path):
        if calls is not None:
            calls.append(1)
        if delay:
            time.sleep(delay)
        writer = FlowStoreWriter(folder / "flows.npy", rows, height, width)
        for row in range(rows):
            writer.put(row, np.full((height, width, 2), value + row, np.float32))
        writer.close()
        return {"shape": [rows, height, width, 2], "frame_rows": list(range(rows))}
    return produce


def _entry_file(cache: FlowCache, key: str, name: str) -> Path:
    return cache.root / "v1" / "entries" / key[:2] / key / name


def test_make_key_is_stable_and_sensitive():
    base = {"content": "ab" * 32, "frames": 81, "fit": "crop"}
    assert make_key(base) == make_key(dict(reversed(list(base.items()))))
    for change in ({"frames": 82}, {"fit": "pad"}, {"content": "cd" * 32}, {"extra": 1}):
        assert make_key({**base, **change}) != make_key(base)


def test_create_then_hit(tmp_path):
    cache = FlowCache(tmp_path)
    key = make_key({"a": 1})
    calls = []
    entry, hit = cache.get_or_create(key, _producer(calls=calls), {"a": 1})
    assert not hit and calls == [1]
    again, hit = FlowCache(tmp_path).get_or_create(key, _producer(calls=calls), {"a": 1})
    assert hit and calls == [1]
    rows = again.rows()
    assert rows.shape == (3, 8, 12, 2) and float(rows[2, 0, 0, 0]) == 3.0
    assert again.manifest["params"] == {"a": 1} and again.manifest["frame_rows"] == [0, 1, 2]


def test_same_content_under_another_name_has_the_same_hash(tmp_path):
    cache = FlowCache(tmp_path / "c")
    a, b = tmp_path / "a.mp4", tmp_path / "renamed copy.mp4"
    a.write_bytes(os.urandom(10000))
    b.write_bytes(a.read_bytes())
    assert cache.content_hash(a) == cache.content_hash(b)
    b.write_bytes(os.urandom(10000))
    os.utime(b, ns=(1, 1))  # new content: size is equal but mtime differs, so it is hashed again
    assert cache.content_hash(a) != cache.content_hash(b)


@pytest.mark.parametrize("damage", ["truncate", "flip", "no_manifest", "bad_manifest", "no_data"])
def test_corrupt_entries_are_detected_and_recomputed(tmp_path, damage, caplog):
    key = make_key({"damage": damage})
    FlowCache(tmp_path).get_or_create(key, _producer(), {})
    data, manifest = _entry_file(FlowCache(tmp_path), key, "flows.npy"), _entry_file(FlowCache(tmp_path), key,
                                                                                     "manifest.json")
    if damage == "truncate":
        with open(data, "rb+") as handle:
            handle.truncate(data.stat().st_size // 2)
    elif damage == "flip":
        blob = bytearray(data.read_bytes())
        blob[-10] ^= 0xFF
        data.write_bytes(bytes(blob))
    elif damage == "no_manifest":
        manifest.unlink()
    elif damage == "bad_manifest":
        manifest.write_text("{not json")
    else:
        data.unlink()
    fresh = FlowCache(tmp_path)  # a new process would not trust the old verification
    assert fresh.lookup(key) is None
    assert "invalid" in caplog.text
    calls = []
    entry, hit = fresh.get_or_create(key, _producer(calls=calls), {})
    assert not hit and calls == [1] and float(entry.rows()[1, 0, 0, 0]) == 2.0


def test_failed_producer_leaves_nothing(tmp_path):
    cache = FlowCache(tmp_path)
    key = make_key({"fail": 1})

    def produce(folder):
        (folder / "flows.npy").write_bytes(b"partial")
        raise OSError(28, "No space left on device")

    with pytest.raises(CacheError, match="free disk space"):
        cache.get_or_create(key, produce, {})
    assert cache.lookup(key) is None
    assert not any((tmp_path / "v1" / "tmp").iterdir())
    assert not any((tmp_path / "v1" / "entries").rglob("*"))


def test_keys_cannot_escape_the_cache(tmp_path):
    cache = FlowCache(tmp_path)
    for evil in ("../../etc/passwd", "a" * 63 + "/", "A" * 64, ""):
        with pytest.raises(ValueError):
            cache.lookup(evil)
        with pytest.raises(ValueError):
            cache.render_path(evil)


def test_threads_compute_once(tmp_path):
    cache = FlowCache(tmp_path)
    key = make_key({"threads": 1})
    calls: list[int] = []
    results = []
    barrier = threading.Barrier(8)

    def worker():
        barrier.wait()
        entry, _ = cache.get_or_create(key, _producer(calls=calls, delay=0.2), {})
        results.append(float(entry.rows()[0, 0, 0, 0]))

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert calls == [1] and results == [1.0] * 8


_CHILD = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    import numpy as np
    from wan2gp_structure_video.preprocessors.cache.flow_cache import FlowCache
    from wan2gp_structure_video.preprocessors.cache.row_store import FlowStoreWriter
    root, key, marker, delay = sys.argv[1], sys.argv[2], Path(sys.argv[3]), float(sys.argv[4])
    def produce(folder):
        with open(marker, "a") as handle:
            handle.write("x")
        writer = FlowStoreWriter(folder / "flows.npy", 2, 4, 4)
        for row in range(2):
            writer.put(row, np.ones((4, 4, 2), np.float32))
            time.sleep(delay)
        writer.close()
        return {"shape": [2, 4, 4, 2]}
    entry, hit = FlowCache(root).get_or_create(key, produce, {})
    print("hit" if hit else "computed", flush=True)
""")


def test_two_processes_compute_once(tmp_path):
    key = make_key({"procs": 1})
    marker = tmp_path / "calls.txt"
    procs = [subprocess.Popen([sys.executable, "-c", _CHILD, str(tmp_path / "cache"), key, str(marker), "0.5"],
                              stdout=subprocess.PIPE, text=True) for _ in range(2)]
    outputs = sorted(p.communicate(timeout=120)[0].strip() for p in procs)
    assert all(p.returncode == 0 for p in procs)
    assert marker.read_text() == "x" and outputs == ["computed", "hit"]


def test_writer_killed_mid_write_leaves_nothing_valid(tmp_path):
    key = make_key({"killed": 1})
    marker = tmp_path / "calls.txt"
    proc = subprocess.Popen([sys.executable, "-c", _CHILD, str(tmp_path / "cache"), key, str(marker), "30"])
    deadline = time.time() + 60
    while not marker.exists() and time.time() < deadline:
        time.sleep(0.05)
    time.sleep(0.3)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    cache = FlowCache(tmp_path / "cache")
    assert cache.lookup(key) is None  # nothing half-written is read as valid
    calls = []
    entry, hit = cache.get_or_create(key, _producer(rows=2, height=4, width=4, calls=calls), {})
    assert not hit and calls == [1] and entry.rows().shape == (2, 4, 4, 2)
    assert not any((tmp_path / "cache" / "v1" / "tmp").iterdir())  # the dead writer's folder was swept


def test_lru_eviction_order_size_bound_and_in_use(tmp_path):
    probe = FlowCache(tmp_path / "probe")
    entry, _ = probe.get_or_create(make_key({"probe": 1}), _producer(rows=4, height=32, width=32), {})
    one = sum(f.stat().st_size for f in entry.path.iterdir())
    cache = FlowCache(tmp_path / "c", max_bytes=int(one * 3.5))
    keys = [make_key({"i": i}) for i in range(5)]
    for i, key in enumerate(keys[:3]):
        cache.get_or_create(key, _producer(rows=4, height=32, width=32), {})
        os.utime(_entry_file(cache, key, "used"), (1000 + i, 1000 + i))
    with cache.use(cache.lookup(keys[0])):  # the oldest, but in use
        os.utime(_entry_file(cache, keys[0], "used"), (1000, 1000))
        cache.get_or_create(keys[3], _producer(rows=4, height=32, width=32), {})
        assert cache.lookup(keys[0]) is not None  # in use: kept although least recently used
        assert cache.lookup(keys[1]) is None  # the least recently used not in use went first
    assert cache.stats().total_bytes <= cache.max_bytes
    assert cache.stats().entries == 3
    removed, freed = cache.clear()
    assert removed == 3 and freed > 0 and cache.stats().entries == 0


def test_planted_pickle_is_never_loaded(tmp_path):
    cache = FlowCache(tmp_path)
    key = make_key({"pickle": 1})
    cache.get_or_create(key, _producer(), {})
    data = _entry_file(cache, key, "flows.npy")
    import pickle
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    np.save(data, np.array([Evil()], dtype=object), allow_pickle=True)
    manifest_path = _entry_file(cache, key, "manifest.json")
    manifest = json.loads(manifest_path.read_text())
    from wan2gp_structure_video.preprocessors.cache.flow_cache import sha256_file
    manifest.update(bytes=data.stat().st_size, sha256=sha256_file(data))  # even a "valid" planted entry
    manifest_path.write_text(json.dumps(manifest))
    entry = FlowCache(tmp_path).lookup(key)
    if entry is not None:  # lookup refuses a non-flow array (the entry is removed and recomputed)
        with pytest.raises((ValueError, CacheError)):
            entry.rows()
    assert not marker.exists()
    del pickle
