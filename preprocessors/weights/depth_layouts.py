"""Depth Anything V2 weight layouts: recognising a state dict, reading its architecture, renaming it.

Layouts, recognised by their keys: ``original`` (Depth-Anything-V2's own ``.pth``, the files
Wan2GP ships: ``pretrained.*`` for DINOv2, ``depth_head.*`` for the DPT head) and
``transformers`` (``backbone.*``, ``neck.*``, ``head.*``; a model folder with ``config.json``, or
one weights file). The variant is read from tensor shapes, so metadata-only tensors work too:

==========  ======  ======  =====  ===========  ========  ======================
variant     hidden  layers  heads  out_indices  features  out_channels
==========  ======  ======  =====  ===========  ========  ======================
``vits``    384     12      6      3 6 9 12     64        48 96 192 384
``vitb``    768     12      12     3 6 9 12     128       96 192 384 768
``vitl``    1024    24      16     5 12 18 24   256       256 512 1024 1024
==========  ======  ======  =====  ===========  ========  ======================

(hidden: ``pretrained.cls_token``'s last dimension; layers: how many ``pretrained.blocks.N``;
heads: hidden / 64; ``out_indices``: transformers' 1-based hidden-state indices of the original's
0-based ``intermediate_layer_idx``; features and out_channels: the DPT head's conv shapes.)

Original → transformers rename table (``N`` a block, ``I`` 0..3, ``K`` 1..4), applied by
:func:`convert_original_state_dict`; nothing is dropped and no tensor changes except the fused
``qkv`` projection, which is split in three equal parts along its first dimension:

==================================================  =====================================================
original key                                        transformers key
==================================================  =====================================================
``pretrained.cls_token``                            ``backbone.embeddings.cls_token``
``pretrained.mask_token``                           ``backbone.embeddings.mask_token``
``pretrained.pos_embed``                            ``backbone.embeddings.position_embeddings``
``pretrained.patch_embed.proj.*``                   ``backbone.embeddings.patch_embeddings.projection.*``
``pretrained.blocks.N.norm1.*`` / ``norm2.*``       ``backbone.encoder.layer.N.norm1.*`` / ``norm2.*``
``pretrained.blocks.N.attn.qkv.*``                  ``backbone.encoder.layer.N.<query>.*``, ``<key>.*``,
                                                    ``<value>.*`` (split; names below)
``pretrained.blocks.N.attn.proj.*``                 ``backbone.encoder.layer.N.<output>.*``
``pretrained.blocks.N.ls1.gamma`` / ``ls2.gamma``   ``backbone.encoder.layer.N.layer_scale1.lambda1`` / ``2``
``pretrained.blocks.N.mlp.fc1.*`` / ``fc2.*``       ``backbone.encoder.layer.N.mlp.fc1.*`` / ``fc2.*``
``pretrained.norm.*``                               ``backbone.layernorm.*``
``depth_head.projects.I.*``                         ``neck.reassemble_stage.layers.I.projection.*``
``depth_head.resize_layers.I.*`` (I = 0, 1, 3)      ``neck.reassemble_stage.layers.I.resize.*``
``depth_head.scratch.layerK_rn.*``                  ``neck.convs.(K-1).*``
``depth_head.scratch.refinenetK.out_conv.*``        ``neck.fusion_stage.layers.(4-K).projection.*``
``depth_head.scratch.refinenetK.resConfUnitU.convC``  ``neck.fusion_stage.layers.(4-K).residual_layerU.convolutionC``
``depth_head.scratch.output_conv1.*``               ``head.conv1.*``
``depth_head.scratch.output_conv2.0.*`` / ``.2.*``  ``head.conv2.*`` / ``head.conv3.*``
==================================================  =====================================================

The attention names depend on the transformers release: 4.x (Wan2GP pins 4.54.0) calls them
``attention.attention.query`` / ``key`` / ``value`` and ``attention.output.dense``; 5.x calls them
``attention.q_proj`` / ``k_proj`` / ``v_proj`` and ``attention.o_proj``. :data:`ATTENTION_NAMES`
holds both; the loader picks the set the installed model uses (and renames a transformers-layout
file of the other generation the same way).
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Mapping, Optional

from ...errors import WeightsError
from .weights_files import layout_from_keys

HOW_TO_GET = ("pass --depth-weights PATH (Depth-Anything-V2 .pth or a transformers model folder), "
              "or download Wan2GP's depth model (ckpts/depth/depth_anything_v2_vitl.pth) with its "
              "downloader")

#: Attention sub-module names per transformers generation: (query, key, value, output).
ATTENTION_NAMES = {
    "4.x": ("attention.attention.query", "attention.attention.key", "attention.attention.value",
            "attention.output.dense"),
    "5.x": ("attention.q_proj", "attention.k_proj", "attention.v_proj", "attention.o_proj"),
}

_ORIGINAL_ROOTS = ("pretrained.", "depth_head.")
_TRANSFORMERS_ROOTS = ("backbone.", "neck.", "head.")
_HEAD_DIM = 64


@dataclass(frozen=True)
class DepthArchitecture:
    """The shape of one Depth Anything V2 model (what its weights need)."""

    variant: str
    hidden: int
    layers: int
    heads: int
    out_indices: tuple[int, ...]
    features: int
    out_channels: tuple[int, ...]
    image_size: int = 518

    @property
    def is_standard(self) -> bool:
        return VARIANTS.get(self.variant) == self


VARIANTS = {
    "vits": DepthArchitecture("vits", 384, 12, 6, (3, 6, 9, 12), 64, (48, 96, 192, 384)),
    "vitb": DepthArchitecture("vitb", 768, 12, 12, (3, 6, 9, 12), 128, (96, 192, 384, 768)),
    "vitl": DepthArchitecture("vitl", 1024, 24, 16, (5, 12, 18, 24), 256, (256, 512, 1024, 1024)),
}
VARIANT_BY_HIDDEN = {arch.hidden: name for name, arch in VARIANTS.items()}


# --------------------------------------------------------------------------- recognising

def tensor_shape(value: Any) -> tuple[int, ...]:
    """A tensor's shape, or the value itself when it already is one (shape-only dicts, meta tensors)."""
    shape = getattr(value, "shape", value)
    return tuple(int(n) for n in shape)


def detect_depth_layout(keys: Iterable[str]) -> str:
    """``"original"`` or ``"transformers"`` from the key names; ``WeightsError`` otherwise."""
    return layout_from_keys(keys, {"original": _ORIGINAL_ROOTS, "transformers": _TRANSFORMERS_ROOTS},
                            what="Depth Anything V2 weights", hint=HOW_TO_GET)


def _count_blocks(keys: Iterable[str], pattern: str) -> int:
    regex = re.compile(pattern)
    indices = {int(m.group(1)) for m in map(regex.match, keys) if m}
    return max(indices) + 1 if indices else 0


def architecture_from_shapes(shapes: Mapping[str, Any]) -> DepthArchitecture:
    """The architecture a state dict (either layout) was made for, read from its tensor shapes only.

    Values may be tensors (real or ``meta``) or plain shapes. The variant name comes from the
    hidden size; DPT features and out_channels are read as they are, so non-standard heads load too.
    """
    layout = detect_depth_layout(shapes)
    try:
        if layout == "original":
            hidden = tensor_shape(shapes["pretrained.cls_token"])[-1]
            layers = _count_blocks(shapes, r"^pretrained\.blocks\.(\d+)\.")
            features = tensor_shape(shapes["depth_head.scratch.layer1_rn.weight"])[0]
            out_channels = tuple(tensor_shape(shapes[f"depth_head.projects.{i}.weight"])[0] for i in range(4))
            image_tokens = tensor_shape(shapes["pretrained.pos_embed"])[1] - 1
        else:
            hidden = tensor_shape(shapes["backbone.embeddings.cls_token"])[-1]
            layers = _count_blocks(shapes, r"^backbone\.encoder\.layer\.(\d+)\.")
            features = tensor_shape(shapes["neck.convs.0.weight"])[0]
            out_channels = tuple(tensor_shape(shapes[f"neck.reassemble_stage.layers.{i}.projection.weight"])[0]
                                 for i in range(4))
            image_tokens = tensor_shape(shapes["backbone.embeddings.position_embeddings"])[1] - 1
    except KeyError as exc:
        raise WeightsError(f"Depth weights lack {exc.args[0]!r} ({layout} layout): the file is incomplete; "
                           f"{HOW_TO_GET}.") from exc
    variant = VARIANT_BY_HIDDEN.get(hidden)
    if variant is None or hidden % _HEAD_DIM:
        known = ", ".join(f"{a.hidden} ({n})" for n, a in VARIANTS.items())
        raise WeightsError(f"Depth weights have a hidden size of {hidden}; supported: {known}. "
                           "Depth Anything V2 giant and V3 are not supported: use vits, vitb or vitl weights.")
    standard = VARIANTS[variant]
    out_indices = standard.out_indices if layers == standard.layers else _spread_indices(layers)
    side = int(round(image_tokens ** 0.5))
    return DepthArchitecture(variant, hidden, layers, hidden // _HEAD_DIM, out_indices, features, out_channels,
                             image_size=side * 14)


def _spread_indices(layers: int) -> tuple[int, ...]:
    """Four evenly spread 1-based block indices ending at the last block (non-standard depths only)."""
    return tuple(max(1, round(layers * (i + 1) / 4)) for i in range(4))


# --------------------------------------------------------------------------- renaming

_BLOCK_RENAMES = (
    ("norm1.", "norm1."), ("norm2.", "norm2."), ("mlp.fc1.", "mlp.fc1."), ("mlp.fc2.", "mlp.fc2."),
)
_HEAD_RENAMES: tuple[tuple[re.Pattern[str], Callable[[re.Match[str]], str]], ...] = tuple(
    (re.compile(p), r) for p, r in (
        (r"^depth_head\.projects\.([0-3])\.(.+)$", lambda m: f"neck.reassemble_stage.layers.{m[1]}.projection.{m[2]}"),
        (r"^depth_head\.resize_layers\.([013])\.(.+)$", lambda m: f"neck.reassemble_stage.layers.{m[1]}.resize.{m[2]}"),
        (r"^depth_head\.scratch\.layer([1-4])_rn\.(.+)$", lambda m: f"neck.convs.{int(m[1]) - 1}.{m[2]}"),
        (r"^depth_head\.scratch\.refinenet([1-4])\.out_conv\.(.+)$",
         lambda m: f"neck.fusion_stage.layers.{4 - int(m[1])}.projection.{m[2]}"),
        (r"^depth_head\.scratch\.refinenet([1-4])\.resConfUnit([12])\.conv([12])\.(.+)$",
         lambda m: f"neck.fusion_stage.layers.{4 - int(m[1])}.residual_layer{m[2]}.convolution{m[3]}.{m[4]}"),
        (r"^depth_head\.scratch\.output_conv1\.(.+)$", lambda m: f"head.conv1.{m[1]}"),
        (r"^depth_head\.scratch\.output_conv2\.0\.(.+)$", lambda m: f"head.conv2.{m[1]}"),
        (r"^depth_head\.scratch\.output_conv2\.2\.(.+)$", lambda m: f"head.conv3.{m[1]}"),
        (r"^pretrained\.cls_token$", lambda m: "backbone.embeddings.cls_token"),
        (r"^pretrained\.mask_token$", lambda m: "backbone.embeddings.mask_token"),
        (r"^pretrained\.pos_embed$", lambda m: "backbone.embeddings.position_embeddings"),
        (r"^pretrained\.patch_embed\.proj\.(.+)$", lambda m: f"backbone.embeddings.patch_embeddings.projection.{m[1]}"),
        (r"^pretrained\.norm\.(.+)$", lambda m: f"backbone.layernorm.{m[1]}"),
    ))
_BLOCK = re.compile(r"^pretrained\.blocks\.(\d+)\.(.+)$")


def _check_generation(generation: str) -> tuple[str, str, str, str]:
    if generation not in ATTENTION_NAMES:
        raise ValueError(f"attention names {generation!r} unknown: use one of {', '.join(ATTENTION_NAMES)}")
    return ATTENTION_NAMES[generation]


def _rename_block(index: str, rest: str, value: Any, names: tuple[str, str, str, str]) -> Optional[dict[str, Any]]:
    """The transformers entries of one original block key, or None when no rule covers it."""
    query, key, value_name, output = names
    prefix = f"backbone.encoder.layer.{index}."
    if rest.startswith("attn.qkv."):
        suffix = rest[len("attn.qkv."):]
        if not hasattr(value, "chunk"):
            raise WeightsError(f"Depth weights pretrained.blocks.{index}.{rest} is not a tensor: re-save the file.")
        if value.shape[0] % 3:
            raise WeightsError(f"Depth weights pretrained.blocks.{index}.{rest} has {value.shape[0]} rows, "
                               "not a multiple of 3: the file is not a Depth-Anything-V2 checkpoint.")
        q, k, v = value.chunk(3, dim=0)
        return {f"{prefix}{query}.{suffix}": q, f"{prefix}{key}.{suffix}": k, f"{prefix}{value_name}.{suffix}": v}
    if rest.startswith("attn.proj."):
        return {f"{prefix}{output}.{rest[len('attn.proj.'):]}": value}
    if rest in ("ls1.gamma", "ls2.gamma"):
        return {f"{prefix}layer_scale{rest[2]}.lambda1": value}
    for old, new in _BLOCK_RENAMES:
        if rest.startswith(old):
            return {f"{prefix}{new}{rest[len(old):]}": value}
    return None


def convert_original_state_dict(state_dict: Mapping[str, Any], *, generation: str = "5.x") -> dict[str, Any]:
    """Rename an original Depth-Anything-V2 state dict onto transformers' names (table above).

    ``generation`` picks the attention names (``"4.x"`` or ``"5.x"``). A leading ``module.`` is
    stripped; a key no rule covers raises ``WeightsError`` (so every key is used or refused).
    """
    names = _check_generation(generation)
    converted: dict[str, Any] = {}
    leftovers: list[str] = []
    for raw_key, value in state_dict.items():
        key = str(raw_key)
        key = key[len("module."):] if key.startswith("module.") else key
        block = _BLOCK.match(key)
        entries: Optional[dict[str, Any]] = None
        if block is not None:
            entries = _rename_block(block[1], block[2], value, names)
        else:
            for pattern, rename in _HEAD_RENAMES:
                match = pattern.match(key)
                if match is not None:
                    entries = {rename(match): value}
                    break
        if entries is None:
            leftovers.append(key)
            continue
        for new_key, tensor in entries.items():
            if new_key in converted:
                raise WeightsError(f"Depth weights map two keys onto {new_key!r}: the file is not a Depth-Anything-V2 "
                                   "checkpoint.")
            converted[new_key] = tensor
    if leftovers:
        shown = ", ".join(sorted(leftovers)[:4]) + (" …" if len(leftovers) > 4 else "")
        raise WeightsError(f"Depth weights have {len(leftovers)} key(s) with no transformers counterpart ({shown}): "
                           f"{HOW_TO_GET}.")
    return converted


def rename_attention(state_dict: Mapping[str, Any], *, generation: str) -> dict[str, Any]:
    """A transformers-layout state dict with its attention keys in ``generation``'s names."""
    target = _check_generation(generation)
    others = [names for gen, names in ATTENTION_NAMES.items() if gen != generation]
    renamed: dict[str, Any] = {}
    for key, value in state_dict.items():
        for names in others:
            for old, new in zip(names, target):
                marker = f".{old}."
                if marker in key:
                    key = key.replace(marker, f".{new}.", 1)
                    break
        renamed[key] = value
    return renamed


# --------------------------------------------------------------------------- reading files
