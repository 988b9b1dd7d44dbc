"""Tiny stand-ins for DWPose's two ONNX files (same input/output names and shapes, random weights).

The detector is a strided conv on YOLOX's three grids plus a fixed bias that makes exactly one
anchor (stride 32, grid cell (10, 8)) a confident, person-sized box, so the pose path really runs.
The pose model turns a 1/8 conv into SimCC rows (x: 36 cells × 16 = 576, y: 48 × 16 = 768).
"""
from __future__ import annotations

from pathlib import Path

ANCHOR = 6400 + 8 * 20 + 10  # the confident anchor's row in the 8400 outputs


def _detector():
    import torch
    from torch import nn

    class Detector(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = nn.Conv2d(3, 85, kernel_size=8, stride=8)
            bias = torch.zeros(1, 8400, 85)
            bias[..., 4] = -12.0
            bias[0, ANCHOR, 2:6] = torch.tensor([2.0, 2.5, 12.0, 12.0])
            self.register_buffer("bias", bias)

        def forward(self, images):
            f80 = self.conv(images / 255.0) * 0.01
            f40 = nn.functional.avg_pool2d(f80, 2)
            f20 = nn.functional.avg_pool2d(f40, 2)
            flat = torch.cat([f.flatten(2) for f in (f80, f40, f20)], 2).permute(0, 2, 1) + self.bias
            return torch.cat([flat[..., :4], torch.sigmoid(flat[..., 4:])], -1)

    return Detector()


def _pose():
    import torch
    from torch import nn

    class Pose(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = nn.Conv2d(3, 133, kernel_size=8, stride=8)

        def forward(self, x):
            maps = self.conv(x)  # (1, 133, 48, 36)
            sx = maps.mean(2).unsqueeze(-1).expand(-1, -1, -1, 16).reshape(1, 133, 576)
            sy = maps.mean(3).unsqueeze(-1).expand(-1, -1, -1, 16).reshape(1, 133, 768)
            ramp_x = torch.linspace(0, 0.2, 576)
            ramp_y = torch.linspace(0, 0.2, 768)
            return sx + 1.0 + ramp_x, sy + 1.0 + ramp_y

    return Pose()


def build_pose_models(folder: Path, seed: int = 0) -> Path:
    """Write ``folder/pose/yolox_l.onnx`` and ``folder/pose/dw-ll_ucoco_384.onnx``; returns ``folder/pose``."""
    import torch

    torch.manual_seed(seed)
    out = Path(folder) / "pose"
    out.mkdir(parents=True, exist_ok=True)
    with torch.no_grad():
        torch.onnx.export(_detector().eval(), (torch.zeros(1, 3, 640, 640),), str(out / "yolox_l.onnx"),
                          input_names=["images"], output_names=["output"], opset_version=17, dynamo=False)
        torch.onnx.export(_pose().eval(), (torch.zeros(1, 3, 384, 288),), str(out / "dw-ll_ucoco_384.onnx"),
                          input_names=["input"], output_names=["simcc_x", "simcc_y"], opset_version=17,
                          dynamo=False)
    return out


def person_frames(count: int = 2, height: int = 180, width: int = 320, seed: int = 1):
    """Random RGB uint8 frames (count, height, width, 3)."""
    import numpy as np

    return np.random.default_rng(seed).integers(0, 256, (count, height, width, 3), dtype=np.uint8)
