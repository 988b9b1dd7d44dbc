"""What the ``guide`` and ``export`` commands share: the option choices, the options that choose the
source range, fitted size, annotator and cache, and the helpers that turn them into run objects.

Standard library only (the CLI builds its parser from it, and ``--help`` must answer at once).
"""
from __future__ import annotations

import argparse
import sys
from typing import Any

from .errors import StructureVideoError
from .options import AUTO_BATCH_SIZE, CHOICES, DEFAULT_RESOLUTION, DEFAULTS



def add_size_option(group: Any) -> None:
    """--resolution: the fitted size (the guide's, or an export's)."""
    group.add_argument("--resolution", default=DEFAULT_RESOLUTION, metavar="WxH",
                       help="guide size, snapped down to multiples of 16 like Wan2GP (default 832x480)")


def add_range_options(group: Any) -> None:
    """--fit, --start, --end, --range-unit, --cuts, --allow-short: which source frames, fitted how."""
    group.add_argument("--fit", default=DEFAULTS["fit"], choices=CHOICES["fit"],
                       help="crop: centre-crop to the target aspect then resize (keeps motion undistorted); "
                            "pad: letterbox; stretch: resize ignoring the aspect (default crop)")
    group.add_argument("--start", type=float, help="start of the source range (inclusive)")
    group.add_argument("--end", type=float, help="end of the source range (exclusive)")
    group.add_argument("--range-unit", default=DEFAULTS["range_unit"], choices=CHOICES["range_unit"],
                       help="unit of --start/--end (default frames)")
    group.add_argument("--cuts", default=DEFAULTS["cuts"], choices=CHOICES["cuts"],
                       help="auto: find hard cuts between shots; flow never draws a cut as motion, depth gets one "
                            "brightness range per shot; off: treat the source as one shot (default auto)")
    group.add_argument("--allow-short", action="store_true",
                       help="accept a damaged or cut-short video (fewer frames than its container announces): "
                            "a Note, and the guide from the frames that decode (default: error, exit 2)")


def add_contour_model_options(group: Any) -> None:
    """--contour-weights: Wan2GP's contour network (the contour and scribble guides)."""
    group.add_argument("--contour-weights", metavar="PATH",
                       help="Wan2GP's contour network weights, scribble/netG_A_latest.pth (default: found in "
                            "Wan2GP's ckpts/ folders; nothing is downloaded)")


def add_pose_model_options(group: Any) -> None:
    """--pose-weights: the two DWPose ONNX files (the pose guide and export)."""
    group.add_argument("--pose-weights", metavar="DIR",
                       help="folder holding Wan2GP's DWPose models pose/yolox_l.onnx and pose/dw-ll_ucoco_384.onnx "
                            "(default: found in Wan2GP's ckpts/ folders; nothing is downloaded)")


def add_depth_model_options(group: Any) -> None:
    """--depth-weights, --depth-variant, --depth-input-size: which depth model, run at which size."""
    group.add_argument("--depth-weights", metavar="PATH",
                       help="Depth Anything V2 weights: Wan2GP's depth_anything_v2_<variant>.pth (original layout) or "
                            "a transformers model folder (default: Wan2GP's ckpts/depth/, then the Hugging Face cache; "
                            "nothing is downloaded)")
    group.add_argument("--depth-variant", choices=CHOICES["depth_variant"],
                       help="which Depth Anything V2 size to look for first (default vitl, as Wan2GP)")
    group.add_argument("--depth-input-size", type=int, default=DEFAULTS["depth_input_size"], metavar="PX",
                       help="the model sees frames scaled so both sides reach this size (multiples of 14, as "
                            "Wan2GP: default 518); 0 = the frame's own size (faster on the CPU)")


def add_backend_options(group: Any) -> None:
    """The flow backend and how the annotator runs (device, batch size, precision, teardown)."""
    group.add_argument("--backend", default=DEFAULTS["backend"], choices=CHOICES["backend"],
                       help="auto: RAFT when its weights are found locally, else OpenCV DIS (default auto)")
    group.add_argument("--raft-model", default=DEFAULTS["raft_model"], choices=CHOICES["raft_model"],
                       help="RAFT size (default large)")
    group.add_argument("--raft-weights", metavar="PATH",
                       help="RAFT weights file, princeton-vl (raft-things.pth) or torchvision layout")
    group.add_argument("--iterations", type=int, default=DEFAULTS["iterations"], help="RAFT refinement iterations (default 20)")
    group.add_argument("--raft-warm-updates", type=int, metavar="N",
                       help="RAFT warm start: a pair that follows the previous one starts from that pair's flow "
                            "carried forward and runs N updates (the first pair runs --iterations); default off. "
                            "Not validated against a cold start with real weights yet: bench/raft_warm_start.py "
                            "measures the difference on your footage")
    group.add_argument("--device", default=DEFAULTS["device"], help="auto, cpu, cuda or cuda:N (default auto)")
    group.add_argument("--batch-size", type=int, default=AUTO_BATCH_SIZE,
                       help="frame pairs per RAFT batch; 0 (the default) = automatic: fitted to free GPU memory, "
                            "2 on the CPU")
    group.add_argument("--precision", default=DEFAULTS["precision"], choices=CHOICES["precision"],
                       help="RAFT precision: auto = fp16 autocast on CUDA, fp32 on the CPU")
    group.add_argument("--teardown", default=DEFAULTS["teardown"], choices=CHOICES["teardown"],
                       help="after extraction: unload (weights to RAM), release (destroy) or keep on the GPU")


def add_cache_options(group: Any) -> None:
    """--cache-dir, --cache-max-gb and --no-cache."""
    add_cache_location(group)
    group.add_argument("--no-cache", action="store_true",
                       help="neither read nor write the flow cache (flows are computed in a temporary folder)")


def add_cache_location(group: Any) -> None:
    """--cache-dir and --cache-max-gb (also the ``cache`` command's)."""
    group.add_argument("--cache-dir", metavar="DIR",
                       help="flow cache folder (default: the user cache folder, e.g. ~/.cache/wan2gp-structure-video)")
    group.add_argument("--cache-max-gb", type=float, default=10.0,
                       help="size limit of the cache; least recently used entries go first (default 10)")


def console_progress(quiet: bool):
    """A Progress drawn on stderr (bars on a terminal, plain lines elsewhere), and its closer."""
    from .progress import ConsoleProgress, Progress

    if quiet:
        return Progress(), lambda: None
    console = ConsoleProgress(sys.stderr)
    return Progress(console), console.close


def open_cache(args: argparse.Namespace):
    """The flow cache the options name (created on first write)."""
    from .preprocessors.cache.flow_cache import FlowCache

    if not args.cache_max_gb > 0:
        raise StructureVideoError(f"--cache-max-gb {args.cache_max_gb} must be positive.")
    return FlowCache(args.cache_dir, max_bytes=int(args.cache_max_gb * 2**30))
