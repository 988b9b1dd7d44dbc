"""Depth Anything V2 (transformers' ``DepthAnythingForDepthEstimation``) on batches of frames.

Model: built from a :class:`~..weights.depth_weights.DepthArchitecture` and loaded from the weights
:mod:`..weights.depth_weights` found (original layout renamed, or transformers layout), on the CPU; the
annotator pool places it. Works with transformers 4.54 (Wan2GP's pin) and 5.x.

Input, as Wan2GP's own depth annotator: RGB scaled to [0, 1], resized (bicubic) so that both sides
are at least ``input_size`` (518) pixels with the aspect ratio kept and each side a multiple of 14
(the ViT's patch), normalised with ImageNet's mean and standard deviation; the prediction is
resized back (bilinear, corners aligned). ``input_size=None`` runs at the frame's own size instead,
padded (edge pixels repeated) up to multiples of 14 and cropped back.

Output: relative inverse depth (disparity, arbitrary scale), near = large. The DINOv2 position
embeddings are interpolated the original way (scale factor ``(n + 0.1) / 37``), as the weights were
trained and as Wan2GP runs them; transformers interpolates to an exact size, which shifts
non-square inputs slightly.
"""
from __future__ import annotations

import contextlib
import logging
import math
import types
from typing import Any, Optional, Union

import numpy as np
import torch
import torch.nn.functional as F

from ...errors import OptionError, WeightsError
from ..weights.depth_weights import (DepthArchitecture, DepthWeightsSource, VARIANTS, architecture_from_shapes,
                            convert_original_state_dict, detect_depth_layout, read_depth_state_dict,
                            rename_attention)
from .flow_base import check_frame_batch
from ...options import PRECISIONS
from .flow_raft import _autocast_dtype

logger = logging.getLogger(__name__)

PATCH = 14
DEFAULT_INPUT_SIZE = 518
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
INSTALL_HINT = "install it with pip install 'wan2gp-structure-video[depth]' (Wan2GP already ships it)"
DEPTH_ESTIMATE_MARGIN = 1.25


def _transformers() -> Any:
    try:
        import transformers
    except ImportError as exc:
        raise OptionError(f"Depth guides need the transformers package: {INSTALL_HINT}.") from exc
    return transformers


# --------------------------------------------------------------------------- sizes

def model_input_size(height: int, width: int, input_size: Optional[int] = DEFAULT_INPUT_SIZE) -> tuple[int, int]:
    """The size the model runs at for an ``height`` × ``width`` frame (both multiples of 14).

    ``input_size`` given: Wan2GP's rule — scale so both sides reach at least ``input_size``,
    keep the aspect ratio, round each side to a multiple of 14 (up when rounding would fall under
    ``input_size``). None: each side of the frame itself rounded up to a multiple of 14.
    """
    if height < 1 or width < 1:
        raise ValueError(f"empty frame size {height}x{width}")
    if input_size is None:
        return -(-height // PATCH) * PATCH, -(-width // PATCH) * PATCH
    if input_size < PATCH:
        raise OptionError(f"Depth input size {input_size} must be at least {PATCH}.")
    scale = max(input_size / height, input_size / width)

    def side(n: float) -> int:
        rounded = int(round(n / PATCH)) * PATCH
        return rounded if rounded >= input_size else int(math.ceil(n / PATCH)) * PATCH

    return side(height * scale), side(width * scale)


def estimate_bytes_per_frame(height: int, width: int, *, variant: str = "vitl",
                             input_size: Optional[int] = DEFAULT_INPUT_SIZE,
                             bytes_per_value: int = 4) -> int:
    """Peak working memory of one frame in the model, in bytes (activations, not weights).

    At the model size H×W (P = H·W/196 tokens): the ViT keeps its four tapped layers (4·P·C) and
    one layer's working set (about 12·P·C with SDPA attention); the DPT head peaks at its finest
    fusion level (8× the patch grid: 64·P pixels, about 4 feature maps of F channels) or in the
    full-size head (H·W pixels: the upsampled F/2 maps, their source and three 32-channel maps,
    about F + 96 values a pixel), plus the frame's own input and output; then a 25 % margin.
    Calibrated against the CPU peak of ``vits``: 303 MiB a frame at 832×480 (model size 518×896;
    estimate 371 MiB), 81 MiB at 416×240 with ``input_size=None`` (estimate 85 MiB). fp32 values
    by default, so autocast stays below it; not yet checked on a GPU.
    """
    arch = VARIANTS[variant]
    mh, mw = model_input_size(int(height), int(width), input_size)
    pixels = mh * mw
    tokens = pixels / (PATCH * PATCH) + 1
    backbone = tokens * arch.hidden * (4 + 12)
    fusion = 64 * (tokens - 1) * arch.features * 4
    head = pixels * (arch.features + 96)
    frame = (pixels + int(height) * int(width)) * 4
    return int(DEPTH_ESTIMATE_MARGIN * (max(backbone, fusion, head) + frame) * bytes_per_value)


# --------------------------------------------------------------------------- building and loading

def depth_config(arch: DepthArchitecture) -> Any:
    """transformers' ``DepthAnythingConfig`` for ``arch`` (relative depth, DINOv2 backbone)."""
    transformers = _transformers()
    backbone = transformers.Dinov2Config(
        image_size=arch.image_size, patch_size=PATCH, hidden_size=arch.hidden, num_hidden_layers=arch.layers,
        num_attention_heads=arch.heads, mlp_ratio=4, layerscale_value=1.0, layer_norm_eps=1e-6,
        out_indices=list(arch.out_indices), reshape_hidden_states=False, apply_layernorm=True)
    return transformers.DepthAnythingConfig(
        backbone_config=backbone, patch_size=PATCH, reassemble_hidden_size=arch.hidden,
        reassemble_factors=[4, 2, 1, 0.5], neck_hidden_sizes=list(arch.out_channels),
        fusion_hidden_size=arch.features, head_hidden_size=32, head_in_index=-1,
        depth_estimation_type="relative")


def attention_generation(model: torch.nn.Module) -> str:
    """``"5.x"`` or ``"4.x"``: which attention names the installed transformers uses in ``model``."""
    return "5.x" if any(".attention.q_proj." in key for key in model.state_dict()) else "4.x"


def _original_interpolate_pos_encoding(self: Any, embeddings: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """DINOv2's own position-embedding interpolation (scale factor with a 0.1 offset)."""
    num_patches = embeddings.shape[1] - 1
    num_positions = self.position_embeddings.shape[1] - 1
    if num_patches == num_positions and height == width:
        return self.position_embeddings
    patch = self.patch_embeddings.patch_size
    patch_h, patch_w = (patch, patch) if isinstance(patch, int) else patch
    positions = self.position_embeddings.float()
    side = int(math.sqrt(num_positions))
    dim = positions.shape[-1]
    rows, cols = height // patch_h + 0.1, width // patch_w + 0.1
    grid = positions[:, 1:].reshape(1, side, side, dim).permute(0, 3, 1, 2)
    grid = F.interpolate(grid, scale_factor=(rows / side, cols / side), mode="bicubic", align_corners=False)
    grid = grid.permute(0, 2, 3, 1).reshape(1, -1, dim)
    return torch.cat((positions[:, :1], grid), dim=1).to(embeddings.dtype)


def use_original_interpolation(model: torch.nn.Module) -> torch.nn.Module:
    """Make ``model``'s DINOv2 embeddings interpolate position embeddings the original way."""
    embeddings = model.backbone.embeddings
    embeddings.interpolate_pos_encoding = types.MethodType(_original_interpolate_pos_encoding, embeddings)
    return model


def _ready(model: torch.nn.Module) -> torch.nn.Module:
    model.float()
    model.eval()
    model.requires_grad_(False)
    return use_original_interpolation(model)


def build_depth_model(arch: DepthArchitecture, *, seed: Optional[int] = None, empty: bool = False) -> torch.nn.Module:
    """transformers' model for ``arch``: random weights (from ``seed``), or on ``meta`` when ``empty``."""
    transformers = _transformers()
    config = depth_config(arch)
    if empty:
        with torch.device("meta"):
            return transformers.DepthAnythingForDepthEstimation(config)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0 if seed is None else seed)
        model = transformers.DepthAnythingForDepthEstimation(config)
    return _ready(model)


def load_state_dict_into(model: torch.nn.Module, state_dict: dict[str, Any], where: Any) -> torch.nn.Module:
    """Load a transformers-named state dict strictly (every key used), in place of ``meta`` tensors."""
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state_dict))
    unexpected = sorted(set(state_dict) - set(expected))
    wrong = sorted(k for k in set(expected) & set(state_dict) if tuple(expected[k].shape) != tuple(state_dict[k].shape))
    if missing or unexpected or wrong:
        detail = "; ".join(part for part in (
            f"{len(missing)} missing (e.g. {missing[0]})" if missing else "",
            f"{len(unexpected)} unexpected (e.g. {unexpected[0]})" if unexpected else "",
            f"{len(wrong)} of another shape (e.g. {wrong[0]})" if wrong else "") if part)
        raise WeightsError(f"Depth weights {where} do not fit the model ({detail}): pass Depth Anything V2 weights.")
    model.load_state_dict(state_dict, strict=True, assign=True)
    leftover = [name for name, tensor in list(model.named_parameters()) + list(model.named_buffers())
                if tensor.is_meta]
    if leftover:
        raise WeightsError(f"Depth weights {where} leave {len(leftover)} tensor(s) unset (e.g. {leftover[0]}).")
    return model


def model_from_state_dict(state_dict: dict[str, Any], where: Any = "state dict") -> torch.nn.Module:
    """A ready model (CPU, fp32, eval) from an original- or transformers-layout state dict."""
    arch = architecture_from_shapes(state_dict)
    model = build_depth_model(arch, empty=True)
    generation = attention_generation(model)
    if detect_depth_layout(state_dict) == "original":
        named = convert_original_state_dict(state_dict, generation=generation)
    else:
        named = rename_attention(state_dict, generation=generation)
    return _ready(load_state_dict_into(model, named, where))


def load_depth_model(source: Optional[DepthWeightsSource], *, variant: str = "vitl", seed: int = 0) -> torch.nn.Module:
    """A ready depth model on the CPU (fp32, eval, gradients off); ``source`` None → random ``variant``."""
    if source is None or source.path is None:
        name = source.variant if source is not None else variant
        if name not in VARIANTS:
            raise OptionError(f"Depth variant {name!r} is unknown: use one of {', '.join(VARIANTS)}.")
        model = build_depth_model(VARIANTS[name], seed=source.seed if source is not None else seed)
        logger.info("Depth Anything V2 %s with random weights", name)
        return model
    if source.is_folder:
        transformers = _transformers()
        progress_bars = transformers.utils.logging.is_progress_bar_enabled()
        transformers.utils.logging.disable_progress_bar()  # our own progress says "load"; no second bar on stderr
        try:
            model = transformers.DepthAnythingForDepthEstimation.from_pretrained(source.path, local_files_only=True)
        except (OSError, ValueError, RuntimeError) as exc:
            # RuntimeError: weights of other sizes than config.json says (with a size report over many lines)
            reason = ("its weights have other sizes than its config.json says" if isinstance(exc, RuntimeError)
                      else (str(exc).strip().splitlines() or [""])[0])
            raise WeightsError(f"Cannot load the depth model folder {source.path} ({reason}): pass a transformers "
                               "DepthAnything folder whose weights fit its config.json, or a .pth file.") from exc
        finally:
            if progress_bars:
                transformers.utils.logging.enable_progress_bar()
        model = _ready(model)
    else:
        model = model_from_state_dict(read_depth_state_dict(source.path), source.path)
    logger.info("Depth Anything V2 %s loaded from %s (%s, %s layout)", source.variant, source.path, source.origin,
                source.layout)
    return model


# --------------------------------------------------------------------------- inference

class DepthAnythingBackend:
    """Relative inverse depth with a loaded Depth Anything V2 model that already sits on ``device``."""

    def __init__(self, model: torch.nn.Module, device: Union[str, torch.device] = "cpu", *, precision: str = "auto",
                 input_size: Optional[int] = DEFAULT_INPUT_SIZE, name: str = "depth-anything-v2") -> None:
        if precision not in PRECISIONS:
            raise OptionError(f"Precision {precision!r} is unknown: use one of {', '.join(PRECISIONS)}.")
        if input_size is not None and (isinstance(input_size, bool) or not isinstance(input_size, int)
                                       or input_size < PATCH):
            raise OptionError(f"Depth input size {input_size!r} must be a whole number of at least {PATCH}.")
        self.model = model
        self._device = torch.device(device)
        self.device = str(self._device)
        self.precision = precision
        self.input_size = input_size
        self.name = name
        self._autocast = _autocast_dtype(precision, self._device)

    estimate_bytes_per_frame = staticmethod(estimate_bytes_per_frame)

    def _to_model_input(self, frames: np.ndarray, size: tuple[int, int]) -> torch.Tensor:
        """uint8 (B, H, W, 3) → normalised float (B, 3, H', W') at the model size, on the device."""
        tensor = torch.from_numpy(np.ascontiguousarray(frames)).to(self._device)
        tensor = tensor.permute(0, 3, 1, 2).float().div_(255.0)
        height, width = tensor.shape[-2:]
        if self.input_size is None:
            pad_h, pad_w = size[0] - height, size[1] - width
            if pad_h or pad_w:
                tensor = F.pad(tensor, (0, pad_w, 0, pad_h), mode="replicate")
        elif (height, width) != size:
            tensor = F.interpolate(tensor, size=size, mode="bicubic", align_corners=False)
        mean = torch.tensor(IMAGENET_MEAN, device=self._device).view(1, 3, 1, 1)
        std = torch.tensor(IMAGENET_STD, device=self._device).view(1, 3, 1, 1)
        return tensor.sub_(mean).div_(std)

    def compute(self, frames: np.ndarray) -> np.ndarray:
        """Inverse depth of a batch: (B, H, W, 3) uint8 RGB → (B, H, W) float32, near = large."""
        _, height, width = check_frame_batch(frames)
        size = model_input_size(height, width, self.input_size)
        autocast = (torch.autocast(device_type=self._device.type, dtype=self._autocast)
                    if self._autocast is not None else contextlib.nullcontext())
        with torch.inference_mode():
            pixels = self._to_model_input(frames, size)
            with autocast:
                depth = self.model(pixel_values=pixels).predicted_depth
            del pixels
            depth = depth.float()
            if self.input_size is None:
                depth = depth[:, :height, :width]
            elif depth.shape[-2:] != (height, width):
                depth = F.interpolate(depth[:, None], size=(height, width), mode="bilinear", align_corners=True)[:, 0]
            result = depth.to("cpu").contiguous().numpy().copy()  # owns its memory, no view of a batch
            del depth
        return result
