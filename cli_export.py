"""The ``export`` command: ``wan2gp-structure-video export INPUT --type flow|depth --out DIR``.

Writes the raw rows an annotator stored (flows or depth maps) for a source range at the fitted size
(``pipeline.export``). It takes the ``guide`` command's options for choosing the range, the size, the
annotator and the cache (``cli_shared``) and checks them the same way (``cli_args``) before any heavy
import. Bad input: one line, exit status 2, nothing written.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path
from typing import Optional

from .cli_args import check_source_args
from .cli_shared import (add_backend_options, add_cache_options, add_depth_model_options, add_pose_model_options,
                         add_range_options,
                         add_size_option, console_progress, open_cache)
from .errors import OptionError, StructureVideoError
from .options import DEFAULTS, EXPORT_TYPES, automatic_batch_size


def add_export_command(commands: "argparse._SubParsersAction") -> argparse.ArgumentParser:
    """Register ``export`` on the CLI's sub-commands; returns its parser."""
    export = commands.add_parser(
        "export", help="write the raw flows or depth maps (float16 .npy, .flo, 16-bit PNG) of a source range",
        description="Write what the annotator stores for a source range at the fitted size, on the source "
                    "timeline: flows as float16 .npy (N-1, H, W, 2) in pixels (optionally one Middlebury .flo "
                    "per pair), depth as float16 .npy (N, H, W) and 16-bit PNGs, with an export.json sidecar. "
                    "Read from the cache when present, computed otherwise.")
    export.add_argument("input", nargs="?", metavar="INPUT", help="the structure video")
    export.add_argument("--sample", action="store_true", help="use the generated sample video as input")
    export.add_argument("--type", dest="guide_type", default=DEFAULTS["guide_type"], choices=EXPORT_TYPES,
                        help="flow: optical flow between consecutive frames; depth: Depth Anything V2 maps "
                             "(default flow)")
    export.add_argument("--out", "-o", metavar="DIR", required=True,
                        help="a new (or empty) folder for the export; written under a partial name and renamed "
                             "when complete")
    export.add_argument("--flo", action="store_true", help="flow: also one Middlebury .flo file per frame pair")
    export.add_argument("--no-png", action="store_true", help="depth: skip the 16-bit PNGs (only the .npy)")
    add_size_option(export)
    add_range_options(export.add_argument_group("source range"))
    add_depth_model_options(export.add_argument_group("depth model (--type depth)"))
    add_pose_model_options(export.add_argument_group("pose models (--type pose)"))
    add_backend_options(export.add_argument_group("flow backend and memory"))
    add_cache_options(export.add_argument_group("cache"))
    return export


def _check_out(out: Path) -> None:
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        what = "an existing file" if not out.is_dir() else "a folder that is not empty"
        raise OptionError(f"--out {out} is {what}: name a new or empty folder.")


def run_export(args: argparse.Namespace) -> int:
    """The ``export`` command."""
    if args.input and args.sample:
        raise OptionError("Give either INPUT or --sample, not both.")
    if not args.input and not args.sample:
        raise StructureVideoError("No input: give a structure video, or --sample.")
    args.inputs = [args.input] if args.input else []
    check_source_args(args)  # numbers, sizes, paths, weights, device: before torch, OpenCV or PyAV load
    if args.input and Path(args.input).expanduser().is_dir():
        raise OptionError(f"{args.input} is a folder: export takes one video file.")
    out = Path(args.out).expanduser()
    _check_out(out)
    cache = None if args.no_cache else open_cache(args)

    from .pipeline import GuideRequest, RunContext
    from .pipeline.export import export_rows

    temp_dir: Optional[tempfile.TemporaryDirectory] = None
    try:
        if args.sample:
            from .preprocessors.video.sample_video import write_sample_video

            temp_dir = tempfile.TemporaryDirectory(prefix="sv-sample-")
            source = write_sample_video(Path(temp_dir.name) / "sample_structure.mp4")
        else:
            source = Path(args.input).expanduser()
        request = GuideRequest(
            input=source, resolution=args.resolution, guide_type=args.guide_type, fit=args.fit, start=args.start,
            end=args.end, range_unit=args.range_unit, backend=args.backend, raft_model=args.raft_model,
            raft_weights=args.raft_weights, iterations=args.iterations,
            raft_warm_updates=args.raft_warm_updates, device=args.device,
            batch_size=automatic_batch_size(args.batch_size), precision=args.precision, teardown=args.teardown,
            depth_weights=args.depth_weights, depth_variant=args.depth_variant,
            depth_input_size=args.depth_input_size or None, pose_weights=args.pose_weights, cuts=args.cuts,
            allow_short=args.allow_short)
        progress, close_progress = console_progress(args.quiet)
        try:
            result = export_rows(request, out, flo=args.flo, png=not args.no_png,
                                 context=RunContext(progress=progress, cache=cache, use_cache=cache is not None))
        finally:
            close_progress()
        for note in result.run.warnings:
            print(f"Note: {note}", file=sys.stderr)
        print(result.summary(), flush=True)
        return 0
    finally:
        if temp_dir is not None:
            temp_dir.cleanup()
