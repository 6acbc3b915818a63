"""The CLIP image encoder of Wan 2.1 I2V/FLF2V-14B: the vision tower of open-clip's
XLM-RoBERTa-large ViT-H/14, run as transformers' ``CLIPVisionModel`` (docs/families/wan.md §15).

Wan ships it as ``models_clip_open-clip-xlm-roberta-large-vit-huge-14.pth`` (text tower
included; only ``visual.*`` is read); diffusers folders hold an ``image_encoder/`` in
transformers' own names. The original keys map one to one except three: the fused ``to_qkv``
is split into q, k, v; the class embedding ``[1, 1, D]`` and the position table ``[1, N, D]``
lose their leading axes. The features Wan uses are the hidden states after 31 of the 32 blocks
(``use_31_block``: transformers' ``hidden_states[-2]``), of an image resized bicubically to
224 × 224 and normalised with CLIP's mean and std.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import torch
import torch.nn.functional as F
from transformers import CLIPVisionConfig, CLIPVisionModel

from studio.engine.cancel import NEVER, CancelToken
from studio.errors import CheckpointError
from studio.models.loading import read_tensors
from studio.models.weight_files import WeightFiles

PREFIX = "visual."
HF_PREFIX = "vision_model."
MEAN = (0.48145466, 0.4578275, 0.40821073)
STD = (0.26862954, 0.26130258, 0.27577711)
#: ViT-H/14's attention heads are 80 wide (1280 / 16); the checkpoint does not record the count.
HEAD_DIM = 80
_HINT = "use models_clip_open-clip-xlm-roberta-large-vit-huge-14.pth, published with Wan I2V"


def clip_config(shapes: Mapping[str, Sequence[int]], source: str) -> CLIPVisionConfig:
    """The vision tower's sizes from an original-layout state dict's shapes."""
    try:
        dim, _, patch, _ = shapes[f"{PREFIX}patch_embedding.weight"]
        positions = shapes[f"{PREFIX}pos_embedding"][1]
        mlp = shapes[f"{PREFIX}transformer.0.mlp.0.weight"][0]
    except (KeyError, ValueError) as exc:
        raise CheckpointError(f"{source} is not Wan's CLIP image encoder (missing {exc})",
                              _HINT) from exc
    layers = len({key.split(".")[2] for key in shapes if key.startswith(f"{PREFIX}transformer.")})
    side = math.isqrt(positions - 1)
    if side * side != positions - 1 or dim % HEAD_DIM:
        raise CheckpointError(f"{source}: odd CLIP vision shapes ({positions} positions, width "
                              f"{dim}, not a multiple of {HEAD_DIM})", _HINT)
    return CLIPVisionConfig(hidden_size=dim, intermediate_size=mlp, num_hidden_layers=layers,
                            num_attention_heads=dim // HEAD_DIM, image_size=side * patch,
                            patch_size=patch, hidden_act="gelu", layer_norm_eps=1e-5)


def to_transformers(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Original ``visual.*`` tensors under ``CLIPVisionModel`` names (the rest is dropped)."""
    out: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        if key.startswith(PREFIX):
            out.update(_mapped(key[len(PREFIX):], value))
    return out


def _mapped(key: str, value: torch.Tensor) -> dict[str, torch.Tensor]:
    fixed = {"patch_embedding.weight": ("embeddings.patch_embedding.weight", value),
             "cls_embedding": ("embeddings.class_embedding", value.reshape(-1)),
             "pos_embedding": ("embeddings.position_embedding.weight", value[0]),
             "pre_norm.weight": ("pre_layrnorm.weight", value),
             "pre_norm.bias": ("pre_layrnorm.bias", value),
             "post_norm.weight": ("post_layernorm.weight", value),
             "post_norm.bias": ("post_layernorm.bias", value)}  # fmt: skip
    if key in fixed:
        name, tensor = fixed[key]
        return {HF_PREFIX + name: tensor}
    parts = key.split(".")
    if parts[0] != "transformer" or len(parts) < 4:
        return {}  # the projection head: not used by Wan
    layer, rest = f"{HF_PREFIX}encoder.layers.{parts[1]}.", ".".join(parts[2:])
    if rest.startswith("attn.to_qkv."):
        kind = rest.rsplit(".", 1)[1]
        q, k, v = value.chunk(3, dim=0)
        return {f"{layer}self_attn.{n}_proj.{kind}": t for n, t in zip("qkv", (q, k, v),
                                                                        strict=True)}
    names = {"attn.proj": "self_attn.out_proj", "norm1": "layer_norm1", "norm2": "layer_norm2",
             "mlp.0": "mlp.fc1", "mlp.2": "mlp.fc2"}  # fmt: skip
    module, kind = rest.rsplit(".", 1)
    return {f"{layer}{names[module]}.{kind}": value} if module in names else {}


class WanClipEncoder:
    """CLIP features of reference images, as Wan I2V computes them.

    Attributes:
        model: transformers' ``CLIPVisionModel``.
    """

    def __init__(self, model: CLIPVisionModel) -> None:
        self.model = model.eval().requires_grad_(False)

    @property
    def width(self) -> int:
        return self.model.config.hidden_size

    def encode(self, images: Sequence[torch.Tensor]) -> torch.Tensor:
        """Images ``[1, 3, H, W]`` in [−1, 1] → features ``[1, n·N, D]`` (n images of N tokens,
        in order: FLF2V's first then last frame)."""
        param = next(self.model.parameters())
        size = (self.model.config.image_size,) * 2
        pixels = torch.cat([F.interpolate(image.float(), size=size, mode="bicubic",
                                          align_corners=False) for image in images])
        mean = torch.tensor(MEAN, device=pixels.device).view(1, 3, 1, 1)
        std = torch.tensor(STD, device=pixels.device).view(1, 3, 1, 1)
        pixels = ((pixels * 0.5 + 0.5) - mean) / std
        out = self.model(pixel_values=pixels.to(param.device, param.dtype),
                         output_hidden_states=True)
        features = out.hidden_states[-2]  # after block 31 of 32: Wan's use_31_block
        return features.reshape(1, -1, features.shape[-1])


def load_wan_clip(weights: WeightFiles, device: torch.device, dtype: torch.dtype,
                  cancel: CancelToken = NEVER) -> WanClipEncoder:
    """Load the vision tower from Wan's original file (``visual.*``) or a transformers-layout
    one (``vision_model.*``) onto ``device`` in ``dtype``.

    Raises:
        CheckpointError: the file holds no CLIP vision tower, or tensors are missing or odd.
    """
    shapes = weights.shapes()
    if any(key.startswith(PREFIX) for key in shapes):
        config = clip_config(shapes, weights.label)
        state = to_transformers(read_tensors(weights, [k for k in shapes if
                                                       k.startswith(PREFIX)], cancel))
    elif any(key.startswith(HF_PREFIX) for key in shapes):
        state = read_tensors(weights, [k for k in shapes if k.startswith(HF_PREFIX)], cancel)
        config = clip_config(shapes_from_transformers(state), weights.label)
    else:
        raise CheckpointError(f"{weights.label} holds no CLIP vision tower", _HINT)
    with torch.device("meta"):
        model = CLIPVisionModel(config)
    if not any(key.startswith(HF_PREFIX) for key in model.state_dict()):
        # transformers 5 builds the tower without the ``vision_model`` wrapper of published files
        state = {key.removeprefix(HF_PREFIX): value for key, value in state.items()}
    try:
        model.load_state_dict(state, strict=True, assign=True)
    except RuntimeError as exc:
        raise CheckpointError(f"{weights.label} does not fit a CLIP vision tower ({exc})",
                              _HINT) from exc
    _fill_position_ids(model)
    return WanClipEncoder(model.to(device, dtype))


def _fill_position_ids(model: CLIPVisionModel) -> None:
    """The embeddings' ``position_ids`` buffer is not stored in files (built on the meta device,
    it has no data yet): 0 … N − 1."""
    for owner in model.modules():
        ids = owner._buffers.get("position_ids")
        if ids is not None and ids.is_meta:
            owner._buffers["position_ids"] = torch.arange(ids.shape[-1]).expand(1, -1)


def shapes_from_transformers(state: Mapping[str, torch.Tensor]) -> dict[str, tuple[int, ...]]:
    """The original-layout shapes :func:`clip_config` reads, from transformers' tensors."""
    emb = f"{HF_PREFIX}embeddings."
    layers = {key.split(".")[3] for key in state if key.startswith(f"{HF_PREFIX}encoder.layers.")}
    out = {f"{PREFIX}patch_embedding.weight": tuple(state[f"{emb}patch_embedding.weight"].shape),
           f"{PREFIX}pos_embedding": (1, *state[f"{emb}position_embedding.weight"].shape),
           f"{PREFIX}transformer.0.mlp.0.weight":
               tuple(state[f"{HF_PREFIX}encoder.layers.0.mlp.fc1.weight"].shape)}
    out.update({f"{PREFIX}transformer.{i}.norm1.weight": (1,) for i in layers})
    return out
