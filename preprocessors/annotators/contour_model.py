"""Wan2GP's learned contour network ("Canny" and "Shapes" in the host's VACE control), rebuilt.

The host ships one image-to-contour generator, ``ckpts/scribble/netG_A_latest.pth``, and uses it two
ways: ``contour`` (the host's "Canny", ``preprocessing/canny.py``) inverts the map and thresholds it to
black lines on white; ``scribble`` (the host's "Shapes", ``preprocessing/scribble.py``) keeps the grey
map as it is. The network is a CycleGAN-style ResNet generator (3 residual blocks, instance norm
without parameters, reflection padding, sigmoid output), so the state-dict keys below are the host's
and its file loads with ``strict=True``.

Input: RGB frames as float in [0, 1] (no mean/std), any size; the two stride-2 stages make the
output a multiple of 4, so sizes that are not are cropped back (the host's sizes, multiples of 16,
never are). Output maps are the sigmoid times 255 clipped and truncated to uint8, as the host does.
Instance norm works per frame, so a batch gives each frame's map as the host's one-at-a-time loop.
torch is imported here only: this module loads only when the model runs.
"""
from __future__ import annotations

import logging
from typing import Any, Optional

import numpy as np
import torch
from torch import nn

from .contour_guide import CONTOUR_MODES, contour_maps_to_guide

logger = logging.getLogger(__name__)

__all__ = ["CONTOUR_MODES", "ContourNet", "ContourBackend", "build_contour_net", "load_contour_model",
           "contour_maps_to_guide"]

RESIDUAL_BLOCKS = 3
#: Peak float32 activation bytes per input pixel, with a margin: 64-channel full-resolution maps (256 B/px
#: each), several alive at once in the stem and the last up-sampling stage; measured ~940 B/px on the
#: CPU (peak RSS growth per extra 512×512 frame in a batch). For sizing batches.
BYTES_PER_PIXEL = 1200


def _conv_norm_relu(conv: nn.Module, channels: int) -> list[nn.Module]:
    return [conv, nn.InstanceNorm2d(channels), nn.ReLU(inplace=True)]


class _Residual(nn.Module):
    """x + (pad, conv3, norm, relu, pad, conv3, norm); its ``conv_block`` keys are the host's."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv_block = nn.Sequential(
            nn.ReflectionPad2d(1), *_conv_norm_relu(nn.Conv2d(channels, channels, 3), channels),
            nn.ReflectionPad2d(1), nn.Conv2d(channels, channels, 3), nn.InstanceNorm2d(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv_block(x)


class ContourNet(nn.Module):
    """The generator: stem (7×7, 64) → two stride-2 downs (128, 256) → residual blocks → two
    transposed ups (128, 64) → 7×7 head to one channel → sigmoid. Children ``model0``…``model4``."""

    def __init__(self, *, in_channels: int = 3, out_channels: int = 1, blocks: int = RESIDUAL_BLOCKS) -> None:
        super().__init__()
        self.model0 = nn.Sequential(nn.ReflectionPad2d(3), *_conv_norm_relu(nn.Conv2d(in_channels, 64, 7), 64))
        self.model1 = nn.Sequential(
            *_conv_norm_relu(nn.Conv2d(64, 128, 3, stride=2, padding=1), 128),
            *_conv_norm_relu(nn.Conv2d(128, 256, 3, stride=2, padding=1), 256))
        self.model2 = nn.Sequential(*(_Residual(256) for _ in range(blocks)))
        self.model3 = nn.Sequential(
            *_conv_norm_relu(nn.ConvTranspose2d(256, 128, 3, stride=2, padding=1, output_padding=1), 128),
            *_conv_norm_relu(nn.ConvTranspose2d(128, 64, 3, stride=2, padding=1, output_padding=1), 64))
        self.model4 = nn.Sequential(nn.ReflectionPad2d(3), nn.Conv2d(64, out_channels, 7), nn.Sigmoid())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for stage in (self.model0, self.model1, self.model2, self.model3, self.model4):
            x = stage(x)
        return x


def build_contour_net(*, seed: int = 0) -> ContourNet:
    """The network with PyTorch's default initialisation from ``seed`` (random weights: tests, benchmarks)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return ContourNet()


def load_contour_model(path: Optional[str] = None, *, seed: int = 0) -> ContourNet:
    """A ready network on the CPU (eval, no gradients): the host's weights from ``path`` loaded strictly,
    or random weights from ``seed`` when ``path`` is None."""
    from ...errors import WeightsError
    from ..weights.weights_files import load_checkpoint

    net = build_contour_net(seed=seed)
    if path is not None:
        state = load_checkpoint(path, label="contour weights", hint="pass Wan2GP's scribble/netG_A_latest.pth")
        try:
            net.load_state_dict(state, strict=True)
        except RuntimeError as exc:
            missing, unexpected = set(net.state_dict()) - set(state), set(state) - set(net.state_dict())
            detail = (f"{len(missing)} missing, {len(unexpected)} unexpected key(s)" if missing or unexpected
                      else "tensor shapes differ")
            raise WeightsError(f"Contour weights {path} do not fit Wan2GP's contour network ({detail}): "
                               "pass Wan2GP's scribble/netG_A_latest.pth.") from exc
        logger.info("Contour network loaded from %s", path)
    else:
        logger.info("Contour network with random weights (seed %d)", seed)
    net.eval()
    net.requires_grad_(False)
    return net


class ContourBackend:
    """Batches of fitted RGB frames → per-frame uint8 maps, on one device, at one precision.

    ``precision`` ``fp32`` is the host's (it disables autocast); ``fp16``/``bf16`` run the network under
    autocast on CUDA only (faster, maps may differ by a level near the threshold).
    """

    def __init__(self, model: ContourNet, device: Any = "cpu", precision: str = "fp32") -> None:
        self.device = torch.device(device)
        self.precision = precision if self.device.type == "cuda" else "fp32"
        self.model = model.to(self.device)

    @staticmethod
    def bytes_per_frame(height: int, width: int) -> int:
        """Rough peak activation memory of one frame (float32), for sizing batches."""
        return BYTES_PER_PIXEL * int(height) * int(width)

    def compute(self, frames: np.ndarray, mode: str = "contour") -> np.ndarray:
        """(B, H, W, 3) uint8 RGB → (B, H, W) uint8 maps after the host's post-processing for ``mode``."""
        frames = np.asarray(frames)
        if frames.dtype != np.uint8 or frames.ndim != 4 or frames.shape[-1] != 3:
            raise ValueError(f"frames must be (B, H, W, 3) uint8, got {frames.shape} {frames.dtype}")
        if mode not in CONTOUR_MODES:
            raise ValueError(f"contour mode must be one of {', '.join(CONTOUR_MODES)}, got {mode!r}")
        height, width = frames.shape[1:3]
        dtype = {"fp16": torch.float16, "bf16": torch.bfloat16}.get(self.precision)
        with torch.inference_mode():
            batch = torch.from_numpy(frames).to(self.device).permute(0, 3, 1, 2).float().div(255)
            with torch.autocast(self.device.type, dtype=dtype or torch.float32, enabled=dtype is not None):
                out = self.model(batch)
            maps = (out[:, 0, :height, :width].float() * 255.0).clamp(0, 255).to(torch.uint8).cpu().numpy()
        return contour_maps_to_guide(maps, mode)
