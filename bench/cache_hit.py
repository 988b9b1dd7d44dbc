"""Cache hit on a large flow entry: integrity work with the verified stamp vs a full re-hash, side by side.

Builds one entry of ``--mb`` MB (default 320: 200 flows at 832x480, float16), then times, in the same
run and on the same (page-cached) file:

- ``stamp``: what a new process pays on a hit — ``FlowCache(root).lookup(key)`` in a fresh instance
  (manifest, stamp, ``stat``, .npy header; the data is not read);
- ``rehash``: what it paid before the stamp — a full SHA-256 of the flows file.

Usage: python bench/cache_hit.py [--mb 320] [--repeat 7] [--dir /tmp/x]
"""
from __future__ import annotations

import argparse
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from wan2gp_structure_video.preprocessors.cache.cache_hashing import FINE_RACY_WINDOW_NS, sha256_file
from wan2gp_structure_video.preprocessors.cache.flow_cache import FlowCache, format_bytes, make_key
from wan2gp_structure_video.preprocessors.cache.row_store import FlowStoreWriter

HEIGHT, WIDTH = 480, 832


def _producer(rows: int):
    def produce(folder: Path):
        writer = FlowStoreWriter(folder / "flows.npy", rows, HEIGHT, WIDTH)
        rng = np.random.default_rng(0)
        for row in range(rows):
            writer.put(row, rng.standard_normal((HEIGHT, WIDTH, 2), dtype=np.float32))
        writer.close()
        return {"shape": [rows, HEIGHT, WIDTH, 2], "frame_rows": list(range(rows))}
    return produce


def _median_ms(action, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        action()
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=float, default=320.0, help="entry size in MB (default 320)")
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--dir", type=Path, default=None, help="where to build the cache (default: a temp folder)")
    args = parser.parse_args()
    rows = max(1, round(args.mb * 1e6 / (HEIGHT * WIDTH * 2 * 2)))
    work = Path(tempfile.mkdtemp(prefix="bench-cache-", dir=args.dir))
    try:
        root, key = work / "cache", make_key({"bench": "cache_hit", "rows": rows})
        started = time.perf_counter()
        entry, _ = FlowCache(root).get_or_create(key, _producer(rows), {})
        created_s = time.perf_counter() - started
        size = entry.rows_path.stat().st_size
        time.sleep(2 * FINE_RACY_WINDOW_NS / 1e9)
        first_ms = _median_ms(lambda: FlowCache(root).lookup(key), 1)  # stamps it if creation could not

        def stamped_hit() -> None:
            assert FlowCache(root).lookup(key) is not None

        stamp_ms = _median_ms(stamped_hit, args.repeat)
        rehash_ms = _median_ms(lambda: sha256_file(entry.rows_path), args.repeat)
        hit_ms = _median_ms(lambda: FlowCache(root).get_or_create(key, _producer(rows), {}), args.repeat)
        print(f"entry: {rows} flows of {WIDTH}x{HEIGHT}, {format_bytes(size)} ({size / 1e6:.0f} MB), "
              f"built in {created_s:.1f}s; first lookup after creation {first_ms:.1f} ms")
        print(f"integrity work on a hit, new FlowCache each time (median of {args.repeat}):")
        print(f"  verified stamp : {stamp_ms:8.2f} ms   (target <= 50 ms)")
        print(f"  full re-hash   : {rehash_ms:8.2f} ms   ({size / 2**20 / (rehash_ms / 1000):.0f} MiB/s, page-cached)")
        print(f"  ratio          : {rehash_ms / stamp_ms:8.0f} x")
        print(f"  whole get_or_create hit: {hit_ms:.2f} ms")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
