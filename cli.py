"""Command line: ``wan2gp-structure-video guide|sample ...``.

Errors of the project print on one line and exit with status 2; a batch of several inputs goes on
after a failed input and exits with 1 if any failed.
"""
from __future__ import annotations

import argparse
import logging
import sys
import tempfile
from pathlib import Path
from typing import Callable, Optional, Sequence

from . import __version__
from .errors import StructureVideoError

VIDEO_SUFFIXES = (".mp4", ".mov", ".mkv", ".avi", ".webm", ".m4v", ".mpg", ".mpeg", ".gif", ".wmv", ".flv")
EXIT_OK, EXIT_SOME_FAILED, EXIT_USAGE = 0, 1, 2


def _add_guide_options(parser: argparse.ArgumentParser) -> None:
    from .pipeline.request import BACKENDS, GUIDE_TYPES, PRECISIONS, RAFT_MODELS, TEARDOWNS
    from .preprocessors.fit import FIT_MODES
    from .preprocessors.frame_plan import RANGE_UNITS, TREATMENTS

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
    target.add_argument("--resolution", default="832x480", metavar="WxH",
                        help="guide size, snapped down to multiples of 16 like Wan2GP (default 832x480)")
    target.add_argument("--frames", type=int, default=81, help="number of guide frames (default 81)")
    target.add_argument("--fps", type=float, default=16.0, help="guide frame rate (default 16)")
    guide = parser.add_argument_group("guidance")
    guide.add_argument("--type", dest="guide_type", default="flow", choices=GUIDE_TYPES,
                       help="flow: colour-wheel optical flow; canny: edges; raw: the fitted frames (default flow)")
    guide.add_argument("--treatment", default="adjust", choices=TREATMENTS,
                       help="adjust: spread the frames over the whole video (or range); clip: keep the source's "
                            "timing, resampled to --fps, looping when short (default adjust)")
    guide.add_argument("--fit", default="crop", choices=FIT_MODES,
                       help="crop: centre-crop to the target aspect then resize (keeps motion undistorted); "
                            "pad: letterbox; stretch: resize ignoring the aspect (default crop)")
    guide.add_argument("--start", type=float, help="start of the source range (inclusive)")
    guide.add_argument("--end", type=float, help="end of the source range (exclusive)")
    guide.add_argument("--range-unit", default="frames", choices=RANGE_UNITS,
                       help="unit of --start/--end (default frames)")
    guide.add_argument("--motion-strength", type=float, default=1.0,
                       help="multiplies the motion before colouring: >1 stronger, <1 gentler guidance (default 1)")
    guide.add_argument("--max-motion", type=float, metavar="PX",
                       help="flow magnitude in pixels that maps to full colour (default: a clip-wide percentile)")
    guide.add_argument("--percentile", type=float, default=99.0, dest="scale_percentile",
                       help="percentile of the clip's flow magnitudes that maps to full colour (default 99)")
    guide.add_argument("--canny-intensity", type=float, default=1.0,
                       help="canny only: >1 finds more edges, <1 fewer (default 1)")
    flow = parser.add_argument_group("flow backend and memory")
    flow.add_argument("--backend", default="auto", choices=BACKENDS,
                      help="auto: RAFT when its weights are found locally, else OpenCV DIS (default auto)")
    flow.add_argument("--raft-model", default="large", choices=RAFT_MODELS, help="RAFT size (default large)")
    flow.add_argument("--raft-weights", metavar="PATH",
                      help="RAFT weights file, princeton-vl (raft-things.pth) or torchvision layout")
    flow.add_argument("--iterations", type=int, default=20, help="RAFT refinement iterations (default 20)")
    flow.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N (default auto)")
    flow.add_argument("--batch-size", type=int,
                      help="frame pairs per RAFT batch (default: fitted to free GPU memory; 2 on the CPU)")
    flow.add_argument("--precision", default="auto", choices=PRECISIONS,
                      help="RAFT precision: auto = fp16 autocast on CUDA, fp32 on the CPU")
    flow.add_argument("--teardown", default="unload", choices=TEARDOWNS,
                      help="after extraction: unload (weights to RAM), release (destroy) or keep on the GPU")
    cache = parser.add_argument_group("flow cache")
    _add_cache_location(cache)
    cache.add_argument("--no-cache", action="store_true",
                       help="neither read nor write the flow cache (flows are computed in a temporary folder)")


def _add_cache_location(group) -> None:
    group.add_argument("--cache-dir", metavar="DIR",
                       help="flow cache folder (default: the user cache folder, e.g. ~/.cache/wan2gp-structure-video)")
    group.add_argument("--cache-max-gb", type=float, default=10.0,
                       help="size limit of the cache; least recently used entries go first (default 10)")


def _add_common(parser: argparse.ArgumentParser, default: object) -> None:
    """-v/-q, accepted before or after the command (``default`` is SUPPRESS on the commands)."""
    parser.add_argument("-v", "--verbose", action="store_true", default=default,
                        help="log details (memory reports, backend choice)")
    parser.add_argument("-q", "--quiet", action="store_true", default=default, help="no progress bars")


def build_parser() -> argparse.ArgumentParser:
    """The whole command line (every option documented in ``--help``)."""
    parser = argparse.ArgumentParser(
        prog="wan2gp-structure-video",
        description="Turn a structure video into a VACE control video (flow, canny or raw) fitted to a "
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
    _add_cache_location(cache)
    _add_common(cache, argparse.SUPPRESS)
    sample = commands.add_parser("sample", help="write the generated sample video",
                                 description="Write the deterministic sample structure video (no download).")
    sample.add_argument("out", metavar="OUT.mp4")
    sample.add_argument("--resolution", default="640x360", metavar="WxH")
    sample.add_argument("--frames", type=int, default=130)  # sample_video.SAMPLE_FRAMES: 5.4 s at 24 fps
    sample.add_argument("--fps", type=float, default=24.0)
    _add_common(sample, argparse.SUPPRESS)
    app = commands.add_parser("app", help="run the Structure Video tab as a small web app",
                              description="Run the Structure Video tab (the Wan2GP plugin's UI) on its own; "
                                          "it listens on 127.0.0.1 unless --host says otherwise.")
    app.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    app.add_argument("--port", type=int, default=7860, help="port (default 7860)")
    app.add_argument("--share", action="store_true", help="also open a public gradio.live link (opt-in)")
    _add_common(app, argparse.SUPPRESS)
    return parser


def _tqdm_progress(quiet: bool):
    """A Progress whose updates drive one tqdm bar per stage."""
    from .progress import Progress

    if quiet:
        return Progress(), lambda: None
    from tqdm import tqdm

    bars: dict[str, "tqdm"] = {}

    def on_update(update) -> None:
        bar = bars.get(update.stage)
        if bar is None:
            for other in bars.values():
                other.close()
            bars.clear()
            bar = bars[update.stage] = tqdm(total=update.total, desc=update.stage, unit="frame",
                                            leave=False, dynamic_ncols=True, file=sys.stderr)
        bar.total = update.total
        bar.n = update.done
        bar.refresh()

    def close() -> None:
        for bar in bars.values():
            bar.close()
        bars.clear()

    return Progress(on_update), close


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


def _write_timeline(timeline, path: Path) -> None:
    suffix = path.suffix.lower()
    writers: dict[str, Callable[[Path], None]] = {".png": timeline.render_png, ".csv": timeline.to_csv,
                                                  ".json": timeline.to_json}
    if suffix not in writers:
        raise StructureVideoError(f"--timeline {path.name}: use a .png, .csv or .json path.")
    writers[suffix](path)


def run_guide(args: argparse.Namespace) -> int:
    """The ``guide`` command."""
    from .memory import get_default_pool
    from .pipeline import GuideRequest, RunContext, build_guide
    from .preprocessors.sample_video import write_sample_video

    inputs = list(args.inputs)
    temp_dir: Optional[tempfile.TemporaryDirectory] = None
    if args.sample:
        temp_dir = tempfile.TemporaryDirectory(prefix="sv-sample-")
        inputs.insert(0, str(write_sample_video(Path(temp_dir.name) / "sample_structure.mp4")))
    try:
        if not inputs:
            raise StructureVideoError("No input: give a structure video (or a folder), or --sample.")
        paths = _expand_inputs(inputs)
        many = len(paths) > 1
        if many and not args.out_dir:
            raise StructureVideoError(f"{len(paths)} inputs: use --out-dir DIR instead of --out.")
        if not many and not args.out and not args.out_dir:
            raise StructureVideoError("No output: add --out OUT.mp4 (or --out-dir DIR).")
        cache = None if args.no_cache else _open_cache(args)
        pool = get_default_pool()
        failures: list[tuple[Path, str]] = []
        try:
            for number, path in enumerate(paths, 1):
                if many:
                    print(f"Processing ({number}/{len(paths)}): {path.name}", file=sys.stderr, flush=True)
                out = Path(args.out) if args.out and not many else \
                    Path(args.out_dir) / f"{path.stem}_{args.guide_type}_guide.mp4"
                request = GuideRequest(
                    input=path, output=out, resolution=args.resolution, frames=args.frames, fps=args.fps,
                    guide_type=args.guide_type, treatment=args.treatment, fit=args.fit, start=args.start,
                    end=args.end, range_unit=args.range_unit, motion_strength=args.motion_strength,
                    max_motion=args.max_motion, scale_percentile=args.scale_percentile, backend=args.backend,
                    raft_model=args.raft_model, raft_weights=args.raft_weights, iterations=args.iterations,
                    device=args.device, batch_size=args.batch_size, precision=args.precision,
                    canny_intensity=args.canny_intensity,
                    teardown="keep" if many else args.teardown)  # load once for a batch of inputs
                progress, close_bars = _tqdm_progress(args.quiet)
                try:
                    result = build_guide(request, RunContext(progress=progress, cache=cache,
                                                             use_cache=cache is not None))
                except StructureVideoError as exc:
                    close_bars()
                    if not many:
                        raise
                    failures.append((path, str(exc)))
                    print(f"  failed: {exc}", file=sys.stderr, flush=True)
                    continue
                close_bars()
                for warning in result.warnings:
                    print(f"Note: {warning}", file=sys.stderr)
                if result.guide_type == "flow":
                    print(f"Flow backend: {result.backend_reason}; weights: {result.weights}", file=sys.stderr)
                if args.timeline:
                    _write_timeline(result.timeline, Path(args.timeline) if not many else
                                    Path(args.out_dir) / f"{path.stem}_timeline{Path(args.timeline).suffix}")
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


def _open_cache(args: argparse.Namespace):
    from .preprocessors.flow_cache import FlowCache

    if not args.cache_max_gb > 0:
        raise StructureVideoError(f"--cache-max-gb {args.cache_max_gb} must be positive.")
    return FlowCache(args.cache_dir, max_bytes=int(args.cache_max_gb * 2**30))


def run_cache(args: argparse.Namespace) -> int:
    """The ``cache`` command."""
    cache = _open_cache(args)
    if args.action == "prune":
        removed, freed = cache.prune()
        print(f"Pruned {removed} items, freed {freed / 2**20:.1f} MiB.")
    elif args.action == "clear":
        removed, freed = cache.clear()
        print(f"Cleared {removed} items, freed {freed / 2**20:.1f} MiB.")
    print(f"Cache: {cache.stats()}")
    return EXIT_OK


def run_sample(args: argparse.Namespace) -> int:
    """The ``sample`` command."""
    from .preprocessors.fit import parse_resolution
    from .preprocessors.sample_video import write_sample_video

    width, height = parse_resolution(args.resolution)
    path = write_sample_video(Path(args.out), width=width, height=height, frames=args.frames, fps=args.fps)
    print(f"Sample: {path}")
    return EXIT_OK


def run_app(args: argparse.Namespace) -> int:
    """The ``app`` command: the standalone Gradio app (needs gradio: ``pip install .[ui]``)."""
    try:
        from .ui.standalone import launch
    except ImportError as exc:
        raise StructureVideoError(f"The app needs Gradio ({exc}): pip install 'wan2gp-structure-video[ui]'.") from exc
    launch(args.host, args.port, args.share)
    return EXIT_OK


COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {"guide": run_guide, "cache": run_cache,
                                                            "sample": run_sample, "app": run_app}


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
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("error: interrupted; nothing partial was kept.", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
