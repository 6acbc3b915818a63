"""Open-Sora 2.0's Flux-style MMDiT (11B): the denoiser of Open-Sora 2.0 text/image-to-video.

Forward pass (hpcaitech/Open-Sora at 7ad6a96a135feb81f755c84fb391818718f6beb2,
``opensora/models/mmdit/model.py``): ``img = img_in(x) + cond_in(cond)``;
``vec = time_in(timestep_embedding(1000·t, 256)) + vector_in(clip_pooled)``;
``txt = txt_in(t5)``; RoPE over (t, h, w) ids of ``[txt; img]`` (text ids all 0, image ids the
integer grid of the packed 2×2 tokens); ``depth`` double-stream blocks, then
``depth_single_blocks`` single-stream blocks over the joint sequence; the image part goes
through ``final_layer``. No guidance embedding (``guidance_embed=False``). The output is the
flow velocity of the packed tokens.

Text-to-video in the original passes an all-zero ``cond`` (zero mask, zero masked reference;
``prepare_inference_condition`` in ``opensora/utils/inference.py``), so ``cond=None`` here means
exactly that: ``cond_in`` contributes its bias only.

State dict: the original's unfused key names (``double_blocks.N.img_attn.q_proj`` …,
``single_blocks.N.v_mlp``); a fused-layout file (``qkv`` / ``linear1``) is converted with
:func:`unfuse_qkv` and then loads strictly too. Parity: equal to diffusers'
``FluxTransformer2DModel`` (float32, relative error 2.4e-7 t2v, 2.6e-7 i2v) on a tiny config;
tests in ``tests/models/opensora/test_mmdit.py``. Not wired into a family yet.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

import torch
from torch import nn

from studio.models.opensora.mmdit_blocks import DoubleStreamBlock, LastLayer, SingleStreamBlock
from studio.models.opensora.mmdit_config import TIME_EMBED_DIM, MMDiTConfig
from studio.models.opensora.mmdit_layers import (
    MLPEmbedder,
    linear,
    rope_tables,
    timestep_embedding,
)

#: Name fragments of the parameters :meth:`OpenSoraMMDiT.to_dtype` keeps in float32: the
#: embedders of t and the CLIP vector, every modulation and the qk-norm scales.
FP32_PARAMETERS = ("time_in.", "vector_in.", "_mod.", ".modulation.", "adaLN_modulation.",
                   "query_norm.", "key_norm.")  # fmt: skip

_FUSED_QKV = re.compile(r"^(double_blocks\.\d+\.(img|txt)_attn)\.qkv\.(weight|bias)$")
_FUSED_LINEAR1 = re.compile(r"^(single_blocks\.\d+)\.linear1\.(weight|bias)$")


class OpenSoraMMDiT(nn.Module):
    """The MMDiT with Open-Sora's key names. Build it on the ``meta`` device and load with
    ``load_state_dict(sd, strict=True, assign=True)`` to skip initialising the weights."""

    def __init__(self, config: MMDiTConfig) -> None:
        super().__init__()
        if not isinstance(config, MMDiTConfig):
            raise TypeError(f"OpenSoraMMDiT needs an MMDiTConfig, got {type(config).__name__}")
        self.config = config
        dim = config.hidden_size
        self.img_in = nn.Linear(config.in_channels, dim)
        self.time_in = MLPEmbedder(TIME_EMBED_DIM, dim)
        self.vector_in = MLPEmbedder(config.vec_in_dim, dim)
        if config.cond_embed:
            self.cond_in = nn.Linear(config.cond_channels, dim)
        self.txt_in = nn.Linear(config.context_in_dim, dim)
        self.double_blocks = nn.ModuleList(DoubleStreamBlock(config) for _ in range(config.depth))
        self.single_blocks = nn.ModuleList(
            SingleStreamBlock(config) for _ in range(config.depth_single_blocks)
        )
        self.final_layer = LastLayer(config)

    def to_dtype(self, dtype: torch.dtype) -> OpenSoraMMDiT:
        """Cast the big projections to ``dtype``; :data:`FP32_PARAMETERS` stay float32."""
        for name, param in self.named_parameters():
            keep = any(fragment in name for fragment in FP32_PARAMETERS)
            param.data = param.data.to(torch.float32 if keep else dtype)
        return self

    def _embed_image(self, img_tokens: torch.Tensor, cond: torch.Tensor | None) -> torch.Tensor:
        """``img_in(x) + cond_in(cond)`` in float32 ``[B, L_img, D]``; ``cond=None`` = zeros."""
        img = linear(img_tokens, self.img_in).float()
        if not self.config.cond_embed:
            return img
        if cond is None:
            return img + self.cond_in.bias.float()
        return img + linear(cond, self.cond_in).float()

    def _vector(self, t: torch.Tensor, y_vec: torch.Tensor) -> torch.Tensor:
        """``time_in(emb(1000·t)) + vector_in(y_vec)``: float32 ``[B, D]``."""
        return self.time_in(timestep_embedding(t, TIME_EMBED_DIM)) + self.vector_in(y_vec)

    def forward(
        self,
        img_tokens: torch.Tensor,
        img_ids: torch.Tensor,
        txt: torch.Tensor,
        txt_ids: torch.Tensor,
        t: torch.Tensor,
        y_vec: torch.Tensor,
        cond: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Velocity ``[B, L_img, in_channels]`` (float32) of the packed noisy tokens.

        ``img_tokens`` ``[B, L_img, in_channels]``; ``img_ids`` ``[B, L_img, 3]`` (t, h, w);
        ``txt`` T5 states ``[B, L_txt, context_in_dim]``; ``txt_ids`` ``[B, L_txt, 3]`` (zeros);
        ``t`` ``[B]`` in [0, 1] (1 = noise); ``y_vec`` CLIP pooled ``[B, vec_in_dim]``;
        ``cond`` ``[B, L_img, in_channels + patch²]`` (packed mask and masked reference) or
        None for text-to-video.
        """
        img = self._embed_image(img_tokens, cond)
        vec = self._vector(t, y_vec)
        txt_hidden = linear(txt, self.txt_in).float()
        rope = rope_tables(torch.cat((txt_ids, img_ids), dim=1), self.config.axes_dim,
                           self.config.theta)  # fmt: skip
        for block in self.double_blocks:
            img, txt_hidden = block(img, txt_hidden, vec, rope)
        joint = torch.cat((txt_hidden, img), dim=1)
        for block in self.single_blocks:
            joint = block(joint, vec, rope)
        return self.final_layer(joint[:, txt_hidden.shape[1] :], vec).float()


def image_ids(frames: int, height: int, width: int, batch: int = 1) -> torch.Tensor:
    """Float32 ids ``[batch, frames·height·width, 3]``: the integer (t, h, w) grid of packed
    tokens in (t, h, w) order (height and width in tokens, i.e. latent size / 2)."""
    grid = torch.stack(torch.meshgrid(torch.arange(frames), torch.arange(height),
                                      torch.arange(width), indexing="ij"), dim=-1)  # fmt: skip
    return grid.reshape(1, -1, 3).float().expand(batch, -1, -1).contiguous()


def text_ids(length: int, batch: int = 1) -> torch.Tensor:
    """Float32 zeros ``[batch, length, 3]``: every text token sits at position (0, 0, 0)."""
    return torch.zeros(batch, length, 3)


def unfuse_qkv(state_dict: Mapping[str, torch.Tensor], hidden_size: int) -> dict[str, torch.Tensor]:
    """Fused-layout keys → this module's names, splitting along dim 0; other keys unchanged.

    ``…_attn.qkv`` → ``q_proj``, ``k_proj``, ``v_proj`` (three equal parts);
    ``single_blocks.N.linear1`` → ``q_proj``, ``k_proj`` (``hidden_size`` rows each) and
    ``v_mlp`` (the rest: V, then the MLP input).
    """
    out: dict[str, torch.Tensor] = {}
    for key, value in state_dict.items():
        if m := _FUSED_QKV.match(key):
            q, k, v = value.chunk(3, dim=0)
            parts = {"q_proj": q, "k_proj": k, "v_proj": v}
        elif m := _FUSED_LINEAR1.match(key):
            q, k, v_mlp = value.split([hidden_size, hidden_size, len(value) - 2 * hidden_size])
            parts = {"q_proj": q, "k_proj": k, "v_mlp": v_mlp}
        else:
            out[key] = value
            continue
        prefix, suffix = m.group(1), m.group(m.lastindex)
        out.update({f"{prefix}.{name}.{suffix}": part for name, part in parts.items()})
    return out
