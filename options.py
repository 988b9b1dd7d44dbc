"""The option vocabulary, in one place: names, choices, defaults, limits and file-format names.

The command line, ``GuideRequest``, the tab and the preprocessors all read their choices and bounds
here, so a new choice or a changed limit is one edit. Standard library only (and the leaf
``errors``): the CLI's argument checks import it before torch, OpenCV, PyAV or Gradio load.
Each constant name has one meaning across the package (a test scans for a name bound to two values).
"""
from __future__ import annotations

from typing import Any, Optional

from .errors import OptionError

# Choices ------------------------------------------------------------------------------------------------
GUIDE_TYPES = ("flow", "canny", "raw", "depth", "gray", "contour", "scribble", "pose")
#: adjust: spread the source over the whole guide; clip: keep the source's timing.
TREATMENTS = ("adjust", "clip")
FIT_MODES = ("crop", "pad", "stretch")
RANGE_UNITS = ("frames", "seconds")
BACKENDS = ("auto", "raft", "dis")
RAFT_MODELS = ("large", "small")
PRECISIONS = ("auto", "fp32", "fp16", "bf16")
TEARDOWNS = ("keep", "unload", "release")
#: Depth Anything V2 sizes; Wan2GP uses vitl unless its config says otherwise.
DEPTH_VARIANTS = ("vits", "vitb", "vitl")
DEFAULT_DEPTH_VARIANT = "vitl"
#: auto = find hard cuts between shots (never drawn as motion, one depth range per shot); off = ignore.
CUT_MODES = ("auto", "off")
#: What ``export`` writes: the rows an annotator stores (canny, raw and gray store none).
EXPORT_TYPES = ("flow", "depth", "pose")
#: Device names besides ``cuda:N``.
DEVICES = ("auto", "cpu", "cuda")
#: ``raft_weights`` / ``depth_weights`` value that builds the model with random weights (tests and benchmarks only).
RANDOM_WEIGHTS = "random"

#: Every option with a fixed set of values, by its ``GuideRequest`` field (= the CLI's ``dest``).
CHOICES: dict[str, tuple[str, ...]] = {
    "guide_type": GUIDE_TYPES, "treatment": TREATMENTS, "fit": FIT_MODES, "range_unit": RANGE_UNITS,
    "backend": BACKENDS, "raft_model": RAFT_MODELS, "precision": PRECISIONS, "teardown": TEARDOWNS,
    "depth_variant": DEPTH_VARIANTS, "cuts": CUT_MODES,
}

# Defaults (by GuideRequest field) -----------------------------------------------------------------------
#: Wan2GP's default target size; the CLI and the tab show it as text.
DEFAULT_SIZE = (832, 480)
DEFAULT_RESOLUTION = f"{DEFAULT_SIZE[0]}x{DEFAULT_SIZE[1]}"
DEFAULTS: dict[str, Any] = {
    "frames": 81, "fps": 16.0, "guide_type": "flow", "treatment": "adjust", "fit": "crop",
    "range_unit": "frames", "motion_strength": 1.0, "scale_percentile": 99.0, "backend": "auto",
    "raft_model": "large", "iterations": 20, "device": "auto", "precision": "auto", "canny_intensity": 1.0,
    "teardown": "unload", "depth_contrast": 1.0, "depth_smoothing": 0.0, "depth_input_size": 518, "cuts": "auto",
}

# Limits -------------------------------------------------------------------------------------------------
#: A guide's sides: Wan2GP's sizes are multiples of 16, within these bounds.
GUIDE_MIN_SIDE, GUIDE_MAX_SIDE, GUIDE_SIZE_MULTIPLE = 64, 4096, 16
MAX_FRAMES = 100_000
#: The highest guide (and sample) frame rate a request may ask for.
MAX_GUIDE_FPS = 240.0
MAX_ITERATIONS = 100
MAX_MOTION_STRENGTH = 100.0
#: The highest ``max_motion`` (pixels mapped to full colour).
MAX_MOTION_PIXELS = 1e5
MAX_CANNY_INTENSITY = 10.0
MAX_DEPTH_CONTRAST = 10.0
MAX_DEPTH_SMOOTHING = 1000.0
#: Depth input size bounds (the model's patch is 14 pixels).
DEPTH_INPUT_SIZES = (14, 4096)
#: ``batch_size`` 0 on the command line and in the tab: fitted to free memory (None for the pipeline).
AUTO_BATCH_SIZE = 0

# File formats -------------------------------------------------------------------------------------------
#: A cache entry's files: the stored rows of any annotator (named ``flows.npy`` since the first release, so
#: every earlier entry keeps its name), its manifest, the integrity stamp and the last-used marker.
ROWS_FILE, MANIFEST_FILE, STAMP_FILE, USED_FILE = "flows.npy", "manifest.json", "verified.json", "used"


def is_device_name(text: object) -> bool:
    """auto, cpu, cuda or cuda:N."""
    return isinstance(text, str) and (text in DEVICES or (text.startswith("cuda:") and text[5:].isdigit()))


def automatic_batch_size(value: int, label: str = "--batch-size") -> Optional[int]:
    """The "0 = automatic" rule: 0 → None (the pipeline fits it to free memory); negative is an error
    that names ``label`` (the CLI's option or the tab's control)."""
    if value < 0:
        raise OptionError(f"{label} {value}: give a positive number of frame pairs, or 0 for automatic.")
    return None if value == AUTO_BATCH_SIZE else value
