"""The ``guide`` and ``export`` commands' argument checks, in the standard library only.

A wrong number, size, path, URL or device must answer at once, in the command line's words, before
torch, OpenCV, PyAV or Gradio load (6-36 s). The bounds are ``options``' (those ``GuideRequest``
checks too). Only ``--device cuda`` asks torch, and only when the machine has a GPU driver at all.
"""
from __future__ import annotations

import math
import os
import re
import sys
from pathlib import Path
from typing import Any, Optional, Sequence

from .errors import OptionError
from .paths import is_url
from .options import (DEPTH_INPUT_SIZES, GUIDE_MAX_SIDE, GUIDE_MIN_SIDE, MAX_CANNY_INTENSITY, MAX_DEPTH_CONTRAST,
                      MAX_DEPTH_SMOOTHING, MAX_FRAMES, MAX_GUIDE_FPS, MAX_ITERATIONS, MAX_MOTION_PIXELS,
                      MAX_MOTION_STRENGTH, RANDOM_WEIGHTS, is_device_name)

_SIZE = re.compile(r"\s*(\d+)\s*[xX*×]\s*(\d+)\s*")


def _number(option: str, value: Optional[float], low: float, high: float, low_open: bool = False,
            what: str = "a number") -> None:
    """``low <= value <= high`` (``low < value`` when ``low_open``) and finite, else a one-line error."""
    if value is None:
        return
    ok = math.isfinite(value) and (value > low if low_open else value >= low) and value <= high
    if not ok:
        bound = "above" if low_open else "from"
        raise OptionError(f"{option} {value:g}: give {what} {bound} {low:g} up to {high:g}.")


def _whole(option: str, value: int, low: int, high: int, what: str) -> None:
    if not low <= value <= high:
        raise OptionError(f"{option} {value}: give {low} to {high} {what}.")


def check_resolution(text: str) -> tuple[int, int]:
    """``--resolution WxH`` parsed, each side within the bounds Wan2GP's sizes need."""
    match = _SIZE.fullmatch(str(text))
    if not match:
        raise OptionError(f"--resolution {text!r} is not WIDTHxHEIGHT: write it like 832x480.")
    width, height = int(match.group(1)), int(match.group(2))
    low, high = GUIDE_MIN_SIDE, GUIDE_MAX_SIDE
    if not (low <= width <= high and low <= height <= high):
        raise OptionError(f"--resolution {text}: give {low} to {high} pixels on each side, e.g. 832x480.")
    return width, height


def check_input_texts(inputs: Sequence[str]) -> None:
    """Each INPUT is a local file or folder that exists (a URL is named as one, never mangled by Path)."""
    for text in inputs:
        if is_url(text):
            raise OptionError(f"{text} is a URL: download it first, then pass the local file.")
        path = Path(text).expanduser()
        if not path.exists():
            raise OptionError(f"{text} does not exist: check the path of the structure video.")


#: What each weights option expects, for the message when its path is wrong.
_WEIGHTS_KIND = {"--raft-weights": "a RAFT weights file (raft-things.pth)",
                 "--depth-weights": "a Depth Anything V2 weights file (.pth) or a transformers model folder",
                 "--contour-weights": "Wan2GP's contour weights file (scribble/netG_A_latest.pth)",
                 "--pose-weights": "a folder holding Wan2GP's pose/yolox_l.onnx and pose/dw-ll_ucoco_384.onnx"}


def _check_weights(option: str, value: Optional[str]) -> None:
    if value is None or value == RANDOM_WEIGHTS:
        return
    if is_url(value):
        raise OptionError(f"{option} {value} is a URL: download it first, then pass the local file.")
    if not Path(value).expanduser().exists():
        raise OptionError(f"{option} {value} does not exist: give the path of {_WEIGHTS_KIND[option]}.")


def _gpu_driver_present() -> bool:
    """False when this machine surely has no GPU driver (Linux without NVIDIA's or ROCm's device files):
    then torch need not be imported to know that CUDA is unavailable."""
    if not sys.platform.startswith("linux"):
        return True
    return os.path.exists("/proc/driver/nvidia/version") or os.path.exists("/dev/kfd")


def check_device(text: str) -> None:
    """``--device``: auto, cpu, cuda or cuda:N, and a CUDA device only where CUDA is there."""
    if not is_device_name(text):
        raise OptionError(f"--device {text}: use auto, cpu, cuda or cuda:N.")
    if not text.startswith("cuda"):
        return
    count = 0
    if _gpu_driver_present():
        try:
            import torch
        except ImportError:
            raise OptionError(f"--device {text}: torch is not installed: use --device cpu or auto.") from None
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if count == 0:
        raise OptionError(f"--device {text}: CUDA is not available on this machine: use --device cpu or auto.")
    index = int(text[5:]) if ":" in text else 0
    if index >= count:
        raise OptionError(f"--device {text}: this machine has {count} CUDA device{'s' if count > 1 else ''} "
                          f"(cuda:0{f' to cuda:{count - 1}' if count > 1 else ''}).")


def check_source_args(args: Any) -> None:
    """The options ``guide`` and ``export`` share (input, size, range, annotator, cache), before any heavy import."""
    check_input_texts(args.inputs)
    check_resolution(args.resolution)
    for option, value in (("--start", args.start), ("--end", args.end)):
        _number(option, value, 0.0, math.inf)
    if args.start is not None and args.end is not None and args.end <= args.start:
        raise OptionError(f"--end {args.end:g} is not after --start {args.start:g}: give an end after the start.")
    _whole("--iterations", args.iterations, 1, MAX_ITERATIONS, "iterations")
    if args.raft_warm_updates is not None:
        _whole("--raft-warm-updates", args.raft_warm_updates, 1, args.iterations, "updates (at most --iterations)")
    if args.depth_input_size != 0:
        _whole("--depth-input-size", args.depth_input_size, *DEPTH_INPUT_SIZES, "pixels (or 0: the frame's own size)")
    if not args.no_cache:
        _number("--cache-max-gb", args.cache_max_gb, 0.0, math.inf, low_open=True, what="gigabytes")
    _check_weights("--raft-weights", args.raft_weights)
    _check_weights("--depth-weights", args.depth_weights)
    _check_weights("--contour-weights", getattr(args, "contour_weights", None))
    _check_weights("--pose-weights", getattr(args, "pose_weights", None))
    check_device(args.device)


def check_guide_args(args: Any) -> None:
    """Every ``guide`` option a user can get wrong, checked before any heavy import."""
    check_source_args(args)
    _whole("--frames", args.frames, 1, MAX_FRAMES, "frames")
    _number("--fps", args.fps, 0.0, MAX_GUIDE_FPS, low_open=True, what="a frame rate")
    _number("--motion-strength", args.motion_strength, 0.0, MAX_MOTION_STRENGTH)
    _number("--max-motion", args.max_motion, 0.0, MAX_MOTION_PIXELS, low_open=True, what="pixels")
    _number("--percentile", args.scale_percentile, 0.0, 100.0, low_open=True)
    _number("--canny-intensity", args.canny_intensity, 0.0, MAX_CANNY_INTENSITY, low_open=True)
    _number("--depth-contrast", args.depth_contrast, 0.0, MAX_DEPTH_CONTRAST, low_open=True)
    _number("--depth-smoothing", args.depth_smoothing, 0.0, MAX_DEPTH_SMOOTHING, what="frames")
