"""RAFT's refinement loop on torchvision's RAFT modules, with two things its ``forward`` lacks.

* The flow is upsampled once, after the last update. torchvision's ``forward`` runs the mask
  predictor and the convex upsampling after every update and keeps every full-size flow, to
  return them all; inference reads only the last, which is the same number either way.
* The loop may start from an initial flow (``flow_init``, at 1/8 size): on video, the previous
  pair's flow carried forward to where it points (:func:`forward_project`), as RAFT's authors
  warm-start on Sintel; fewer updates then reach the flow a cold start reaches in more.

The modules are the model's own (``feature_encoder``, ``context_encoder``, ``corr_block``,
``update_block``, ``mask_predictor``), so any weights torchvision's RAFT loads work here.
"""
from __future__ import annotations

from typing import Any, Optional

import torch
import torch.nn.functional as F

#: The flow resolution of RAFT's update loop: 1/8 of the input.
DOWNSAMPLE = 8


def has_raft_modules(model: Any) -> bool:
    """Whether ``model`` is built from torchvision's RAFT modules (else only its ``forward`` is used)."""
    return all(hasattr(model, name) for name in ("feature_encoder", "context_encoder", "corr_block",
                                                 "update_block", "mask_predictor"))


def _coords_grid(batch: int, height: int, width: int, device: torch.device) -> torch.Tensor:
    """(B, 2, H, W) pixel coordinates, x then y, float32."""
    ys, xs = torch.meshgrid(torch.arange(height, device=device), torch.arange(width, device=device), indexing="ij")
    return torch.stack((xs, ys)).float()[None].expand(batch, -1, -1, -1).contiguous()


def upsample_convex(flow: torch.Tensor, mask: Optional[torch.Tensor]) -> torch.Tensor:
    """Full-size flow from the 1/8 flow: each output pixel a convex combination (softmax of ``mask``)
    of the 3×3 coarse neighbours, as RAFT defines it; bilinear when the model has no mask predictor."""
    batch, channels, height, width = flow.shape
    if mask is None:
        return DOWNSAMPLE * F.interpolate(flow, size=(height * DOWNSAMPLE, width * DOWNSAMPLE), mode="bilinear",
                                          align_corners=True)
    weights = torch.softmax(mask.view(batch, 1, 9, DOWNSAMPLE, DOWNSAMPLE, height, width), dim=2)
    patches = F.unfold(DOWNSAMPLE * flow, kernel_size=3, padding=1).view(batch, channels, 9, 1, 1, height, width)
    upsampled = torch.sum(weights * patches, dim=2)
    return upsampled.permute(0, 1, 4, 2, 5, 3).reshape(batch, channels, height * DOWNSAMPLE, width * DOWNSAMPLE)


def refine(model: Any, image1: torch.Tensor, image2: torch.Tensor, iterations: int,
           flow_init: Optional[torch.Tensor] = None,
           features: Optional[list[torch.Tensor]] = None) -> tuple[torch.Tensor, torch.Tensor]:
    """``(flow at 1/8 size, full-size flow)`` of image1 → image2 after ``iterations`` updates.

    Inputs are (B, 3, H, W) in [-1, 1], H and W multiples of 8. Without ``flow_init`` the full-size
    flow is the last of torchvision's ``model(image1, image2, num_flow_updates=iterations)``.
    ``features`` is ``[fmap1, fmap2]``, both images' ``feature_encoder`` maps, when the caller has
    them already (on video, a frame is the second image of one pair and the first of the next:
    encoded once). The list is emptied as it is read, so that (the caller keeping no other
    reference) the maps are freed once the correlation volume is built, before the update loop,
    as maps encoded here are.
    """
    batch, _, height, width = image1.shape
    if features is None:
        features = list(torch.chunk(model.feature_encoder(torch.cat([image1, image2], dim=0)), chunks=2, dim=0))
    fmap1, fmap2 = features
    features.clear()
    corr_block = model.corr_block
    corr_block.build_pyramid(fmap1, fmap2)
    try:
        del fmap1, fmap2
        context_out = model.context_encoder(image1)
        hidden_size = model.update_block.hidden_state_size
        hidden, context = torch.split(context_out, [hidden_size, context_out.shape[1] - hidden_size], dim=1)
        hidden, context = torch.tanh(hidden), F.relu(context)
        coords0 = _coords_grid(batch, height // DOWNSAMPLE, width // DOWNSAMPLE, image1.device)
        coords1 = coords0 if flow_init is None else coords0 + flow_init.to(coords0.dtype)
        for _ in range(iterations):
            corr_features = corr_block.index_pyramid(centroids_coords=coords1)
            hidden, delta = model.update_block(hidden, context, corr_features, coords1 - coords0)
            coords1 = coords1 + delta
        flow = coords1 - coords0
        mask = None if model.mask_predictor is None else model.mask_predictor(hidden)
        return flow, upsample_convex(flow, mask)
    finally:
        corr_block.corr_pyramid = []  # torchvision keeps the last pyramid (4/3 of the volume) otherwise


def forward_project(flow: torch.Tensor) -> torch.Tensor:
    """The 1/8-size flow of frame t→t+1 carried to frame t+1 (an estimate of t+1→t+2).

    Each vector moves to the cell it points at (rounded; vectors landing on one cell are averaged);
    cells nothing lands on (disocclusions, the border it leaves) keep the flow they had, the nearest
    guess without a search. Constant motion stays constant."""
    batch, channels, height, width = flow.shape
    work = flow.detach().float()
    grid = _coords_grid(batch, height, width, work.device)
    target = torch.round(grid + work).long()
    inside = (target[:, 0] >= 0) & (target[:, 0] < width) & (target[:, 1] >= 0) & (target[:, 1] < height)
    index = (target[:, 1].clamp(0, height - 1) * width + target[:, 0].clamp(0, width - 1)).view(batch, 1, -1)
    weight = inside.view(batch, 1, -1).to(work.dtype)
    sums = torch.zeros(batch, channels, height * width, device=work.device, dtype=work.dtype)
    sums.scatter_add_(2, index.expand(-1, channels, -1), work.view(batch, channels, -1) * weight)
    counts = torch.zeros(batch, 1, height * width, device=work.device, dtype=work.dtype)
    counts.scatter_add_(2, index, weight)
    projected = sums / counts.clamp(min=1.0)
    filled = torch.where(counts > 0, projected, work.view(batch, channels, -1))
    return filled.view(batch, channels, height, width).to(flow.dtype)
