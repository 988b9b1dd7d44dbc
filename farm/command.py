"""The ``farm`` command: ``wan2gp-structure-video farm jobs.jsonl --out-dir guides/ [--address ...]``.

Only the standard library is imported here (the CLI builds its parser from it); options are checked
before Ray or the pipeline load. Exit status: 0 when every guide was written, 1 when some request
failed (each reported with its line), 2 for a bad command line or jobs file (nothing run).
"""
from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

from ..errors import OptionError, StructureVideoError
from ..options import DEFAULTS, TEARDOWNS



def add_farm_command(commands: "argparse._SubParsersAction") -> argparse.ArgumentParser:
    """Register ``farm`` on the CLI's sub-commands; returns its parser."""
    farm = commands.add_parser(
        "farm", help="run a jobs file of guide requests on Ray (many sources, many machines)",
        description="Run every request of a jobs file (JSON Lines, one GuideRequest per line) on a Ray cluster "
                    "or a local Ray instance: each annotator key is extracted once in the whole job, into a "
                    "cache shared by every machine; guides are rendered as Ray tasks.")
    farm.add_argument("jobs", metavar="JOBS.jsonl", help="one JSON object per line with GuideRequest fields "
                      "(\"input\" required; relative paths are taken against this file's folder)")
    farm.add_argument("--out-dir", metavar="DIR", help="folder for the guides of lines without \"output\" "
                      "(<line>_<name>_<type>_guide.mp4)")
    farm.add_argument("--address", metavar="ADDR", help="join a Ray cluster: auto (this machine is part of it) "
                      "or ray://HEAD:10001; default: start a local Ray instance")
    farm.add_argument("--cache-dir", metavar="SHARED", help="the shared cache folder, mounted at the same path "
                      "on every machine (required with --address; default: the user cache folder)")
    farm.add_argument("--gpus-per-worker", type=float, default=1.0,
                      help="GPUs per extraction worker when the cluster has GPUs (default 1)")
    farm.add_argument("--workers", type=int, metavar="N",
                      help="extraction workers (default: GPUs / --gpus-per-worker, or one per CPU without GPUs)")
    farm.add_argument("--teardown", default=DEFAULTS["teardown"], choices=TEARDOWNS,
                      help="what each worker does with its annotator at the end (default unload)")
    return farm


def check_farm_args(args: argparse.Namespace) -> None:
    """Everything that can be checked before Ray loads; a one-line :class:`OptionError` otherwise."""
    jobs = Path(args.jobs).expanduser()
    if not jobs.is_file():
        raise OptionError(f"Jobs file {jobs} not found: give the path of a .jsonl file.")
    if args.out_dir is not None and Path(args.out_dir).expanduser().is_file():
        raise OptionError(f"--out-dir {args.out_dir} is an existing file: name a folder (it is created if missing).")
    if args.workers is not None and args.workers < 1:
        raise OptionError(f"--workers {args.workers}: give at least 1.")
    if not (math.isfinite(args.gpus_per_worker) and args.gpus_per_worker > 0):
        raise OptionError(f"--gpus-per-worker {args.gpus_per_worker:g}: give a number above 0 (e.g. 1 or 0.5).")
    if args.address is not None and args.address != "auto" and ":" not in args.address:
        raise OptionError(f"--address {args.address}: use auto or ray://HOST:PORT (e.g. ray://head:10001).")
    if args.address is not None and args.cache_dir is None:
        raise OptionError("--address needs --cache-dir: a folder on storage every machine mounts at the same path.")


def run_farm_command(args: argparse.Namespace) -> int:
    """The ``farm`` command."""
    check_farm_args(args)
    try:
        import ray  # noqa: F401
    except ImportError:
        raise StructureVideoError("The farm needs Ray: pip install 'wan2gp-structure-video[farm]'.") from None
    from .driver import run_farm
    from .jobs import read_jobs

    jobs = read_jobs(args.jobs, args.out_dir)
    quiet = getattr(args, "quiet", False)
    report = run_farm(jobs, cache_dir=args.cache_dir, address=args.address, workers=args.workers,
                      gpus_per_worker=args.gpus_per_worker, teardown=args.teardown,
                      on_progress=None if quiet else lambda line: print(line, file=sys.stderr, flush=True))
    for outcome in report.requests:
        if outcome.ok:
            print(f"line {outcome.line}: {outcome.summary}", flush=True)
    print(report.summary(), file=sys.stderr)
    if report.failed:
        print(f"{len(report.failed)} of {len(report.requests)} requests failed:", file=sys.stderr)
        for outcome in report.failed:
            print(f"  line {outcome.line}: {outcome.error}", file=sys.stderr)
        return 1
    return 0
