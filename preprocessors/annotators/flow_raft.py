"""RAFT optical flow (torchvision's modules, our refinement loop: :mod:`.raft_loop`) on batches of pairs.

Only the batch being computed lives on the device: frames go up as uint8, are normalised and
padded there, and every device tensor is released before :meth:`RaftFlowBackend.compute` returns.
"""
from __future__ import annotations

import contextlib
import logging
import math
from typing import Optional, Union

import numpy as np
import torch
import torch.nn.functional as F

from ...errors import OptionError
from ...options import PRECISIONS
from .flow_base import check_pair_batch
from .raft_loop import forward_project, has_raft_modules, refine

logger = logging.getLogger(__name__)

#: torchvision's RAFT needs sides divisible by 8 and refuses anything under 128.
RAFT_SIZE_MULTIPLE = 8
RAFT_MIN_SIDE = 128
RAFT_ESTIMATE_MARGIN = 1.2


def padded_size(height: int, width: int) -> tuple[int, int]:
    """The size RAFT actually runs at: each side rounded up to a multiple of 8, at least 128."""
    def side(n: int) -> int:
        return max(RAFT_MIN_SIDE, -(-n // RAFT_SIZE_MULTIPLE) * RAFT_SIZE_MULTIPLE)
    return side(height), side(width)


def padding_for(height: int, width: int) -> tuple[int, int, int, int]:
    """``(left, right, top, bottom)`` replicate padding, split evenly, that reaches :func:`padded_size`."""
    ph, pw = padded_size(height, width)
    top, left = (ph - height) // 2, (pw - width) // 2
    return left, pw - width - left, top, ph - height - top


def estimate_bytes_per_pair(height: int, width: int, *, iterations: int = 20, bytes_per_value: int = 4) -> int:
    """Peak working memory of one frame pair in torchvision's RAFT, in bytes, at the padded size.

    The all-pairs correlation volume V holds (⌈H/8⌉·⌈W/8⌉)² values. torchvision briefly holds it
    twice while building it (the product and its scaled copy), then keeps it with its pooled
    pyramid (4/3 V) through the update loop, where the other activations are about 520 B per
    full-resolution pixel plus the 8 B full-size flow it keeps for every iteration. The peak is the
    larger of the two phases, plus a 20 % margin (allocator slack, workspaces). Calibrated against
    the CPU peak memory of raft_large from 448×256 to 1920×1080, which it bounds; fp32 values
    (``bytes_per_value=4``), so fp16 autocast stays below it. RAFT-small needs less. Our loop
    (:mod:`.raft_loop`) keeps no per-update full-size flow, so the estimate now errs on the safe side.
    """
    ph, pw = padded_size(int(height), int(width))
    pixels = ph * pw
    cells = math.ceil(ph / 8) * math.ceil(pw / 8)
    volume = cells * cells * bytes_per_value
    scale = bytes_per_value / 4
    build = 2 * volume + 100 * pixels * scale
    loop = volume * 4 / 3 + (520 + 8 * max(1, int(iterations))) * pixels * scale
    return int(RAFT_ESTIMATE_MARGIN * max(build, loop))


def _autocast_dtype(precision: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype for ``precision`` on ``device``; None means plain fp32."""
    if device.type != "cuda" or precision == "fp32":
        if precision in ("fp16", "bf16") and device.type != "cuda":
            logger.debug("RAFT on %s runs in fp32 (%s asked; reduced precision is for CUDA)", device, precision)
        return None
    return torch.bfloat16 if precision == "bf16" else torch.float16


class RaftFlowBackend:
    """Dense flow with a loaded torchvision RAFT model that already sits on ``device``."""

    def __init__(self, model: torch.nn.Module, device: Union[str, torch.device] = "cpu", *,
                 iterations: int = 20, precision: str = "auto", name: str = "raft-large",
                 warm_iterations: Optional[int] = None) -> None:
        if precision not in PRECISIONS:
            raise OptionError(f"Precision {precision!r} is unknown: use one of {', '.join(PRECISIONS)}.")
        if isinstance(iterations, bool) or not isinstance(iterations, int) or iterations < 1:
            raise OptionError(f"RAFT iterations {iterations!r} must be a whole number of at least 1.")
        self.model = model
        self._device = torch.device(device)
        self.device = str(self._device)
        self.iterations = iterations
        self.precision = precision
        self.name = name
        self._autocast = _autocast_dtype(precision, self._device)
        if warm_iterations is not None and (isinstance(warm_iterations, bool) or not isinstance(warm_iterations, int)
                                            or warm_iterations < 1):
            raise OptionError(f"RAFT warm-start iterations {warm_iterations!r} must be a whole number of at least 1.")
        #: Updates of a pair that starts from the previous pair's flow (None: every pair starts cold).
        self.warm_iterations = warm_iterations if has_raft_modules(model) else None
        self._carry: Optional[tuple[np.ndarray, torch.Tensor]] = None  # (last second frame, its projected flow)
        #: The last batch's last frame and its feature map (kept on the CPU between calls): the next
        #: batch of consecutive pairs starts with that frame.
        self._last_features: Optional[tuple[np.ndarray, torch.Tensor]] = None

    estimate_bytes_per_pair = staticmethod(estimate_bytes_per_pair)

    def _to_model_input(self, frames: np.ndarray, pad: tuple[int, int, int, int]) -> torch.Tensor:
        """uint8 (B, H, W, 3) → padded float (B, 3, H', W') in [-1, 1], on the device."""
        tensor = torch.from_numpy(np.ascontiguousarray(frames)).to(self._device)
        tensor = tensor.permute(0, 3, 1, 2).float()
        # torchvision's RAFT expects [-1, 1] (its weights' transforms: x/255, then (x - 0.5) / 0.5).
        # princeton-vl RAFT takes 0..255 and maps it inside forward() with 2 * (x / 255) - 1, the
        # same [-1, 1]; its converted weights therefore expect exactly this input too.
        tensor = tensor.div_(255.0).sub_(0.5).div_(0.5)
        if any(pad):
            tensor = F.pad(tensor, pad, mode="replicate")
        return tensor

    def compute(self, first: np.ndarray, second: np.ndarray) -> np.ndarray:
        """Flow first → second for a batch: (B, H, W, 3) uint8 each → (B, H, W, 2) float32 pixels."""
        _, height, width = check_pair_batch(first, second)
        left, right, top, bottom = pad = padding_for(height, width)
        autocast = (torch.autocast(device_type=self._device.type, dtype=self._autocast)
                    if self._autocast is not None else contextlib.nullcontext())
        try:
            with torch.inference_mode():
                image1 = self._to_model_input(first, pad)
                image2 = self._to_model_input(second, pad)
                with autocast:
                    flow = self._run(first, second, image1, image2)
                del image1, image2
                flow = flow[:, :, top:top + height, left:left + width].float().permute(0, 2, 3, 1)
                result = flow.to("cpu").contiguous().numpy().copy()  # owns its memory, no view of a batch
                del flow
        finally:
            self._drop_correlation_pyramid()
        return result

    def _run(self, first: np.ndarray, second: np.ndarray, image1: torch.Tensor, image2: torch.Tensor) -> torch.Tensor:
        """The full-size flows of the batch: our loop (one upsampling) on torchvision's RAFT modules;
        with warm start, pair by pair, each from the previous pair's flow when it follows it."""
        if not has_raft_modules(self.model):
            return self.model(image1, image2, num_flow_updates=self.iterations)[-1]
        if self.warm_iterations is None:  # the maps go to refine alone: freed once the volume is built
            return refine(self.model, image1, image2, self.iterations,
                          features=list(self._features(first, second, image1, image2)))[1]
        fmap1, fmap2 = self._features(first, second, image1, image2)
        flows = []
        for k in range(image1.shape[0]):
            carry = self._carry
            follows = carry is not None and np.array_equal(carry[0], first[k])
            low, full = refine(self.model, image1[k:k + 1], image2[k:k + 1],
                               self.warm_iterations if follows else self.iterations,
                               flow_init=carry[1].to(image1.device) if follows else None,
                               features=[fmap1[k:k + 1], fmap2[k:k + 1]])
            self._carry = (np.array(second[k], copy=True), forward_project(low).to("cpu"))
            flows.append(full)
        return torch.cat(flows)

    def _features(self, first: np.ndarray, second: np.ndarray, image1: torch.Tensor,
                  image2: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Both images' feature maps, every distinct frame encoded once.

        Consecutive pairs share a frame (pair k's second is pair k+1's first, and the previous
        batch's last frame starts this one): its map is reused instead of encoded again, a third
        of the encoders' work on video. The feature encoder normalises each image on its own
        (instance norm), so a map does not depend on the batch it was computed in."""
        reused: dict[int, torch.Tensor] = {}
        last = self._last_features
        if last is not None and np.array_equal(last[0], first[0]):
            reused[0] = last[1].to(image1.device)
        follows = [k for k in range(1, len(first)) if np.array_equal(first[k], second[k - 1])]
        encode = [k for k in range(len(first)) if k not in reused and k not in follows]
        maps = self.model.feature_encoder(torch.cat([image1[encode], image2]) if encode else image2)
        fmap2 = maps[len(encode):]
        rows = dict(zip(encode, maps[:len(encode)]))
        rows.update({k: fmap2[k - 1] for k in follows})
        rows.update({k: value[0] for k, value in reused.items()})
        fmap1 = torch.stack([rows[k] for k in range(len(first))])
        self._last_features = (np.array(second[-1], copy=True), fmap2[-1:].to("cpu", copy=True))
        return fmap1, fmap2

    def _drop_correlation_pyramid(self) -> None:
        """torchvision's CorrBlock keeps the last pyramid (4/3 of the volume) as an attribute: free it."""
        corr_block = getattr(self.model, "corr_block", None)
        if corr_block is not None and hasattr(corr_block, "corr_pyramid"):
            corr_block.corr_pyramid = []
