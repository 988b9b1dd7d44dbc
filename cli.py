"""Command line: ``wan2gp-structure-video guide|export|sample|cache|app|farm ...``.

Errors of the project, and wrong arguments, print on one line and exit with status 2, before any
work starts (output paths are checked before anything is decoded); a batch of several inputs goes
on after a failed input and exits with 1 if any failed.

Only the standard library is imported until a command runs, so ``--help``, ``--version`` and
argument errors answer at once; torch, torchvision, gradio and matplotlib load only in the
commands that use them.
"""
from __future__ import annotations

import argparse
import logging
import math
import sys
import tempfile
from pathlib import Path
from typing import Callable, NoReturn, Optional, Sequence

from . import __version__
from .cli_args import check_guide_args
from .cli_export import add_export_command, run_export
from .cli_outputs import check_output_file, check_output_folder, check_timeline_writer, write_timeline
from .cli_shared import (add_backend_options, add_size_option, add_cache_location, add_cache_options,
                         add_contour_model_options, add_depth_model_options, add_pose_model_options,
                         add_range_options,
                         console_progress as _console_progress, open_cache as _open_cache)
from .ports import check_port
from .errors import OptionError, StructureVideoError, plain_words
from .farm.command import add_farm_command, run_farm_command
from .options import CHOICES, DEFAULTS, MAX_GUIDE_FPS, automatic_batch_size

VIDEO_SUFFIXES = (".mp4", ".mov", ".mkv", ".avi", ".webm", ".m4v", ".mpg", ".mpeg", ".gif", ".wmv", ".flv")
TIMELINE_SUFFIXES = (".png", ".csv", ".json")
EXIT_OK, EXIT_SOME_FAILED, EXIT_USAGE = 0, 1, 2
#: Bounds of the ``sample`` command (those of preprocessors.video.sample_video and the guide writer).
SAMPLE_SIDES, SAMPLE_MAX_FRAMES, SAMPLE_MAX_FPS = (16, 4096), 10_000, MAX_GUIDE_FPS


class _Parser(argparse.ArgumentParser):
    """An argument parser whose errors are one line (not the whole usage) and exit with status 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"error: {message} (see: {self.prog} --help)\n")


def _add_guide_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("inputs", nargs="*", metavar="INPUT",
                        help="structure video(s), or a folder of videos (processed one after another)")
    parser.add_argument("--sample", action="store_true",
                        help="use a generated sample video as input (no download): try the tool in one command")
    out = parser.add_argument_group("output")
    out.add_argument("--out", "-o", metavar="OUT.mp4", help="guide video path (one input)")
    out.add_argument("--out-dir", metavar="DIR",
                     help="folder for the guide videos of several inputs (<name>_<type>_guide.mp4)")
    out.add_argument("--timeline", metavar="PATH",
                     help="also write the memory timeline of the run: .png chart, .csv or .json")
    target = parser.add_argument_group("target (what the generation needs)")
    add_size_option(target)
    target.add_argument("--frames", type=int, default=DEFAULTS["frames"], help="number of guide frames (default 81)")
    target.add_argument("--fps", type=float, default=DEFAULTS["fps"], help="guide frame rate (default 16)")
    guide = parser.add_argument_group("guidance")
    guide.add_argument("--type", dest="guide_type", default=DEFAULTS["guide_type"], choices=CHOICES["guide_type"],
                       help="flow: colour-wheel optical flow; canny: OpenCV edges; raw: the fitted frames; "
                            "depth: Depth Anything V2 depth, grey, near = bright; gray: the fitted frames in "
                            "gray levels, as Wan2GP's Gray; contour: Wan2GP's learned edges (its \"Canny\"); "
                            "scribble: Wan2GP's \"Shapes\"; pose: DWPose skeletons on black (default flow)")
    guide.add_argument("--treatment", default=DEFAULTS["treatment"], choices=CHOICES["treatment"],
                       help="adjust: spread the frames over the whole video (or range); clip: keep the source's "
                            "timing, resampled to --fps, looping when short (default adjust)")
    add_range_options(guide)
    guide.add_argument("--motion-strength", type=float, default=DEFAULTS["motion_strength"],
                       help="multiplies the motion before colouring: >1 stronger, <1 gentler guidance (default 1)")
    guide.add_argument("--max-motion", type=float, metavar="PX",
                       help="flow magnitude in pixels that maps to full colour (default: a clip-wide percentile)")
    guide.add_argument("--percentile", type=float, default=DEFAULTS["scale_percentile"], dest="scale_percentile",
                       help="percentile of the clip's flow magnitudes that maps to full colour (default 99)")
    guide.add_argument("--canny-intensity", type=float, default=DEFAULTS["canny_intensity"],
                       help="canny only: >1 finds more edges, <1 fewer (default 1)")
    add_contour_model_options(parser.add_argument_group("Wan2GP's contour model (--type contour, scribble)"))
    pose = parser.add_argument_group("pose (--type pose)")
    add_pose_model_options(pose)
    pose.add_argument("--pose-hands", action="store_true", help="draw the hands too (Wan2GP's own pose guide does)")
    pose.add_argument("--no-pose-filter", dest="pose_filter", action="store_false",
                      help="draw the raw keypoints (default: tracks smoothed by a One-Euro filter against jitter)")
    depth = parser.add_argument_group("depth (--type depth)")
    add_depth_model_options(depth)
    depth.add_argument("--depth-contrast", type=float, default=DEFAULTS["depth_contrast"],
                       help="gamma-like: 1 neutral, >1 darkens the far part and spreads the near part, <1 lifts "
                            "the far part (default 1)")
    depth.add_argument("--depth-smoothing", type=float, default=DEFAULTS["depth_smoothing"], metavar="FRAMES",
                       help="0: one brightness range for the whole clip (no flicker); >0: the range follows the "
                            "scene, smoothed over that many frames (default 0)")
    add_backend_options(parser.add_argument_group("flow backend and memory"))
    add_cache_options(parser.add_argument_group("flow cache"))


def _add_common(parser: argparse.ArgumentParser, default: object) -> None:
    """-v/-q, accepted before or after the command (``default`` is SUPPRESS on the commands)."""
    parser.add_argument("-v", "--verbose", action="store_true", default=default,
                        help="log details (memory reports, backend choice)")
    parser.add_argument("-q", "--quiet", action="store_true", default=default, help="no progress bars")


def build_parser() -> argparse.ArgumentParser:
    """The whole command line (every option documented in ``--help``)."""
    parser = _Parser(
        prog="wan2gp-structure-video",
        description="Turn a structure video into a VACE control video (flow, canny, raw, depth or gray) fitted to a "
                    "generation's resolution, frame count and fps.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    _add_common(parser, False)
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    guide = commands.add_parser("guide", help="make guide video(s)",
                                description="Make a VACE guide video from structure video(s).")
    _add_guide_options(guide)
    _add_common(guide, argparse.SUPPRESS)
    cache = commands.add_parser("cache", help="inspect or trim the flow cache",
                                description="Inspect or trim the flow cache.")
    cache.add_argument("action", choices=("stats", "prune", "clear"),
                       help="stats: entries and size; prune: evict least recently used entries down to "
                            "--cache-max-gb; clear: remove every entry not in use")
    add_cache_location(cache)
    _add_common(cache, argparse.SUPPRESS)
    sample = commands.add_parser("sample", help="write the generated sample video",
                                 description="Write the deterministic sample structure video (no download).")
    sample.add_argument("out", metavar="OUT.mp4", help="where to write the sample (an .mp4 path)")
    sample.add_argument("--resolution", default="640x360", metavar="WxH",
                        help=f"even width and height, {SAMPLE_SIDES[0]} to {SAMPLE_SIDES[1]} each (default 640x360)")
    sample.add_argument("--frames", type=int, default=130,
                        help=f"1 to {SAMPLE_MAX_FRAMES} frames (default 130: 5.4 s at 24 fps)")
    sample.add_argument("--fps", type=float, default=24.0,
                        help=f"frame rate, above 0 and up to {SAMPLE_MAX_FPS:g} (default 24)")
    _add_common(sample, argparse.SUPPRESS)
    app = commands.add_parser("app", help="run the Structure Video tab as a small web app",
                              description="Run the Structure Video tab (the Wan2GP plugin's UI) on its own; "
                                          "it listens on 127.0.0.1 unless --host says otherwise.")
    app.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    app.add_argument("--port", type=int, default=7860,
                     help="port (default 7860); if it is in use the error names a free one")
    app.add_argument("--share", action="store_true", help="also open a public gradio.live link (opt-in)")
    _add_common(app, argparse.SUPPRESS)
    _add_common(add_export_command(commands), argparse.SUPPRESS)
    _add_common(add_farm_command(commands), argparse.SUPPRESS)
    return parser


def _expand_inputs(inputs: Sequence[str]) -> list[Path]:
    paths: list[Path] = []
    for text in inputs:
        path = Path(text).expanduser()
        if path.is_dir():
            found = sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in VIDEO_SUFFIXES)
            if not found:
                raise StructureVideoError(f"Folder {path} holds no videos ({', '.join(VIDEO_SUFFIXES)}).")
            paths.extend(found)
        else:
            paths.append(path)
    return paths


def _range_note(args: argparse.Namespace, result) -> Optional[str]:
    """A line saying that ``--end`` was past the end of the video and was clamped, or None."""
    source = result.source or {}
    frame_count, fps = source.get("frame_count"), source.get("fps")
    if args.end is None or not frame_count or not fps:
        return None
    asked = args.end * fps if args.range_unit == "seconds" else args.end
    if round(asked) <= frame_count:
        return None
    name = Path(str(source.get("path", "the video"))).name
    length = f"{frame_count / fps:.2f} s" if args.range_unit == "seconds" else f"{frame_count} frames"
    return (f"--end {args.end:g} {args.range_unit} is past the end of {name} ({length}): "
            "the range was clamped to the end of the video.")


def _guide_outputs(args: argparse.Namespace, paths: Sequence[Path], many: bool) -> list[tuple[Path, Optional[Path]]]:
    """The guide and timeline paths of every input, checked before any work."""
    timeline = Path(args.timeline).expanduser() if args.timeline else None
    if timeline is not None:
        check_output_file(timeline, "--timeline", TIMELINE_SUFFIXES)
        check_timeline_writer(timeline)
    if many or args.out_dir:
        folder = Path(args.out_dir).expanduser()
        check_output_folder(folder, "--out-dir")
        return [(folder / f"{path.stem}_{args.guide_type}_guide.mp4",
                 folder / f"{path.stem}_timeline{timeline.suffix}" if timeline is not None else None)
                for path in paths]
    out = Path(args.out).expanduser()
    check_output_file(out, "--out", (".mp4",))
    return [(out, timeline)]


def run_guide(args: argparse.Namespace) -> int:
    """The ``guide`` command."""
    inputs = list(args.inputs)
    if not inputs and not args.sample:
        raise StructureVideoError("No input: give a structure video (or a folder), or --sample.")
    check_guide_args(args)  # numbers, sizes, paths, URLs, device: before torch, OpenCV or PyAV load
    batch_size = automatic_batch_size(args.batch_size)
    paths = _expand_inputs(inputs)
    count = len(paths) + (1 if args.sample else 0)
    many = count > 1
    if many and not args.out_dir:
        raise StructureVideoError(f"{count} inputs: use --out-dir DIR instead of --out.")
    if not many and not args.out and not args.out_dir:
        raise StructureVideoError("No output: add --out OUT.mp4 (or --out-dir DIR).")
    if args.out and args.out_dir:
        raise OptionError("Give either --out (one input) or --out-dir (a folder of guides), not both.")
    if not args.no_cache and not args.cache_max_gb > 0:
        raise StructureVideoError(f"--cache-max-gb {args.cache_max_gb} must be positive.")
    sample_name = Path("sample_structure.mp4")
    outputs = _guide_outputs(args, ([sample_name] if args.sample else []) + paths, many)

    from .memory import get_default_pool
    from .pipeline import GuideRequest, RunContext, build_guide

    temp_dir: Optional[tempfile.TemporaryDirectory] = None
    if args.sample:
        from .preprocessors.video.sample_video import write_sample_video

        temp_dir = tempfile.TemporaryDirectory(prefix="sv-sample-")
        paths.insert(0, write_sample_video(Path(temp_dir.name) / sample_name.name))
    try:
        cache = None if args.no_cache else _open_cache(args)
        pool = get_default_pool()
        failures: list[tuple[Path, str]] = []
        backend_noted = False
        try:
            for number, (path, (out, timeline)) in enumerate(zip(paths, outputs), 1):
                if many:
                    print(f"Processing ({number}/{len(paths)}): {path.name}", file=sys.stderr, flush=True)
                request = GuideRequest(
                    input=path, output=out, resolution=args.resolution, frames=args.frames, fps=args.fps,
                    guide_type=args.guide_type, treatment=args.treatment, fit=args.fit, start=args.start,
                    end=args.end, range_unit=args.range_unit, motion_strength=args.motion_strength,
                    max_motion=args.max_motion, scale_percentile=args.scale_percentile, backend=args.backend,
                    raft_model=args.raft_model, raft_weights=args.raft_weights, iterations=args.iterations,
                    raft_warm_updates=args.raft_warm_updates,
                    device=args.device, batch_size=batch_size, precision=args.precision,
                    canny_intensity=args.canny_intensity, depth_weights=args.depth_weights,
                    contour_weights=args.contour_weights, pose_weights=args.pose_weights,
                    pose_hands=args.pose_hands, pose_filter=args.pose_filter,
                    depth_variant=args.depth_variant, depth_contrast=args.depth_contrast,
                    depth_smoothing=args.depth_smoothing, depth_input_size=args.depth_input_size or None,
                    cuts=args.cuts, allow_short=args.allow_short,
                    teardown="keep" if many else args.teardown)  # load once for a batch of inputs
                progress, close_progress = _console_progress(args.quiet)
                try:
                    result = build_guide(request, RunContext(progress=progress, cache=cache,
                                                             use_cache=cache is not None))
                except StructureVideoError as exc:
                    if not many:
                        raise
                    failures.append((path, str(exc)))
                    print(f"  failed: {exc}", file=sys.stderr, flush=True)
                    continue
                finally:
                    close_progress()
                notes = list(result.warnings)
                range_note = _range_note(args, result)
                if range_note:
                    notes.append(range_note)
                for note in notes:
                    print(f"Note: {note}", file=sys.stderr)
                # Which backend computed the flows: once per run, only when flows were computed.
                if result.guide_type == "flow" and not args.quiet and not result.cache_hit and not backend_noted:
                    print(f"Flow backend: {result.backend_reason}; weights: {result.weights}", file=sys.stderr)
                    backend_noted = True
                if result.guide_type == "depth" and not args.quiet and not result.cache_hit and not backend_noted:
                    print(f"Depth model: {result.backend_reason}; weights: {result.weights}", file=sys.stderr)
                    backend_noted = True
                if timeline is not None:
                    write_timeline(result.timeline, timeline)
                print(result.summary(verbose=args.verbose), flush=True)
        finally:
            if many and args.teardown != "keep":
                pool.release() if args.teardown == "release" else pool.unload_all()
        if failures:
            print(f"{len(failures)} of {len(paths)} inputs failed:", file=sys.stderr)
            for path, reason in failures:
                print(f"  {path.name}: {reason}", file=sys.stderr)
            return EXIT_SOME_FAILED
        return EXIT_OK
    finally:
        if temp_dir is not None:
            temp_dir.cleanup()


def run_cache(args: argparse.Namespace) -> int:
    """The ``cache`` command."""
    if not args.cache_max_gb > 0:  # before the cache's imports, like every argument error
        raise OptionError(f"--cache-max-gb {args.cache_max_gb:g}: give a size above 0 gigabytes.")
    from .preprocessors.cache.flow_cache import format_bytes

    cache = _open_cache(args)  # opening creates nothing: stats on a new folder leaves it absent
    if args.action in ("prune", "clear"):
        removed, freed = cache.prune() if args.action == "prune" else cache.clear()
        print(f"{'Pruned' if args.action == 'prune' else 'Cleared'} {removed} item{'' if removed == 1 else 's'}, "
              f"freed {format_bytes(freed)}.")
    print(f"Cache: {cache.stats()}")
    return EXIT_OK


def _sample_size(text: str) -> tuple[int, int]:
    import re

    match = re.fullmatch(r"\s*(\d+)\s*[xX*×]\s*(\d+)\s*", text)
    low, high = SAMPLE_SIDES
    if not match:
        raise OptionError(f"--resolution {text!r} is not WIDTHxHEIGHT: write it like 640x360.")
    width, height = int(match.group(1)), int(match.group(2))
    if not (low <= width <= high and low <= height <= high) or width % 2 or height % 2:
        raise OptionError(f"--resolution {text}: the sample needs even sides of {low} to {high} pixels, "
                          "e.g. 640x360.")
    return width, height


def run_sample(args: argparse.Namespace) -> int:
    """The ``sample`` command (options checked before anything is written)."""
    width, height = _sample_size(args.resolution)
    if not 1 <= args.frames <= SAMPLE_MAX_FRAMES:
        raise OptionError(f"--frames {args.frames}: give 1 to {SAMPLE_MAX_FRAMES} frames.")
    if not (math.isfinite(args.fps) and 0 < args.fps <= SAMPLE_MAX_FPS):
        raise OptionError(f"--fps {args.fps:g}: give a frame rate above 0 and up to {SAMPLE_MAX_FPS:g}.")
    out = Path(args.out).expanduser()
    check_output_file(out, "OUT", (".mp4",))
    from .preprocessors.video.sample_video import write_sample_video

    path = write_sample_video(out, width=width, height=height, frames=args.frames, fps=args.fps)
    print(f"Sample: {path}")
    return EXIT_OK


def run_app(args: argparse.Namespace) -> int:
    """The ``app`` command: the standalone Gradio app (needs gradio: ``pip install .[ui]``)."""
    check_port(args.host, args.port)
    try:
        from .ui.standalone import launch
    except ImportError as exc:
        raise StructureVideoError(f"The app needs Gradio ({exc}): pip install 'wan2gp-structure-video[ui]'.") from exc
    launch(args.host, args.port, args.share)
    return EXIT_OK


COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {"guide": run_guide, "cache": run_cache,
                                                            "sample": run_sample, "app": run_app,
                                                            "export": run_export, "farm": run_farm_command}


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Entry point of the ``wan2gp-structure-video`` console script."""
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    if args.command is None:
        parser.print_help()
        return EXIT_USAGE
    try:
        return COMMANDS[args.command](args)
    except StructureVideoError as exc:
        print(f"error: {plain_words(str(exc))}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        # Progress displays are closed by then (their ``finally``), so this starts on its own line.
        print("error: interrupted; nothing partial was kept.", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
