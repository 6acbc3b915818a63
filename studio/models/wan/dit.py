"""The Wan diffusion transformer: one implementation for Wan 2.1 T2V-1.3B/14B and Wan 2.2 TI2V-5B.

Forward pass (``wan/modules/model.py`` of the original; restated in docs/families/wan.md §3):
patchify with a Conv3d → tokens in (f, h, w) order; sinusoidal timestep embedding (float64 →
float32) → ``time_embedding`` MLP gives e, ``time_projection`` gives the six-way modulation e0;
the zero-padded text context goes through ``text_embedding``; N blocks; the head (modulated by
e); unpatchify. The timestep may be one per sample ``[B]`` or one per token ``[B, L]`` (Wan 2.2
TI2V first-frame conditioning); with the latter e and e0 are per token.

The state dict has exactly the original key layout (``patch_embedding.weight``,
``blocks.N.self_attn.q.weight``, ``head.modulation`` …). RoPE tables are cached, not stored.
Weights may be float32 or bfloat16 (see :meth:`WanDiT.to_dtype`); the forward handles both. The
block projections and the text MLP may also stay fp8 on the GPU (:meth:`WanDiT.keeps_fp8`): the
loader keeps them so when the file is fp8, and ``dit_blocks.linear`` upcasts them per multiply.
"""

from __future__ import annotations

import logging
import re

import torch
import torch.nn.functional as F
from torch import nn

from studio.models.fp8 import FP8_DTYPES, weight_of
from studio.models.wan.dit_blocks import WanBlock, WanHead, linear, linear_fp32
from studio.models.wan.dit_config import (
    WAN21_T2V_1_3B,
    WAN21_T2V_14B,
    WAN22_TI2V_5B,
    WanDiTConfig,
)
from studio.models.wan.image_branch import ImageEmbedding
from studio.models.wan.rope import RopeCache, timestep_embedding

log = logging.getLogger(__name__)

#: Name fragments of the parameters :meth:`WanDiT.to_dtype` keeps in float32: the timestep MLP,
#: the modulation tables and the norm weights (small, precision-critical; diffusers keeps the
#: same set in float32).
FP32_PARAMETERS = ("time_embedding.", "time_projection.", "modulation", "norm_q.", "norm_k.",
                   "norm3.")  # fmt: skip

#: The weights :meth:`WanDiT.keeps_fp8` allows to stay fp8: the projections the forward runs
#: through ``dit_blocks.linear`` (which upcasts per multiply). 99.9 % of the blocks' bytes; the
#: patch embedding (a convolution) and the head (float32 math) are dequantized at load.
_FP8_WEIGHTS = re.compile(r"^(blocks\.\d+\.(self_attn|cross_attn)\.[qkvo]|blocks\.\d+\.ffn\.[02]"
                          r"|text_embedding\.[02])\.weight$")


class WanDiT(nn.Module):
    """The Wan DiT: T2V, TI2V, I2V (A14B: 36 input channels; 2.1 I2V/FLF2V-14B: also the CLIP
    image branch ``img_emb`` and the cross-attentions' image keys).

    Build it on the ``meta`` device and load an original state dict with
    ``load_state_dict(sd, strict=True, assign=True)`` to avoid initialising weights twice.
    """

    def __init__(self, config: WanDiTConfig) -> None:
        super().__init__()
        if not isinstance(config, WanDiTConfig):
            raise TypeError(f"WanDiT needs a WanDiTConfig, got {type(config).__name__}")
        self.config = config
        dim = config.dim
        self.patch_embedding = nn.Conv3d(
            config.in_dim, dim, kernel_size=config.patch_size, stride=config.patch_size
        )
        self.text_embedding = nn.Sequential(
            nn.Linear(config.text_dim, dim), nn.GELU(approximate="tanh"), nn.Linear(dim, dim)
        )
        self.time_embedding = nn.Sequential(
            nn.Linear(config.freq_dim, dim), nn.SiLU(), nn.Linear(dim, dim)
        )
        self.time_projection = nn.Sequential(nn.SiLU(), nn.Linear(dim, 6 * dim))
        if config.image_dim:  # Wan 2.1 I2V/FLF2V-14B: CLIP features as a second context
            self.img_emb = ImageEmbedding(config.image_dim, dim, config.image_tokens)
        self.blocks = nn.ModuleList(WanBlock(config) for _ in range(config.num_layers))
        self.head = WanHead(config)
        self._rope = RopeCache(config.rope_pairs)
        self._context: tuple[torch.Tensor, tuple, torch.Tensor] | None = None

    @property
    def dtype(self) -> torch.dtype:
        """The compute dtype: that of the patch embedding and the block projections."""
        return self.patch_embedding.weight.dtype

    @property
    def device(self) -> torch.device:
        return self.patch_embedding.weight.device

    def keeps_fp8(self, key: str) -> bool:
        """Whether parameter ``key`` may stay fp8 on the device (the loader's question)."""
        return _FP8_WEIGHTS.match(key) is not None

    def to_dtype(self, dtype: torch.dtype) -> WanDiT:
        """Cast the weights to ``dtype`` in place, keeping :data:`FP32_PARAMETERS` in float32
        (weights kept in fp8 are dequantized, their scale applied)."""
        with torch.no_grad():
            for module in self.modules():
                weight = getattr(module, "weight", None)
                if isinstance(weight, nn.Parameter) and weight.dtype in FP8_DTYPES:
                    weight.data = weight_of(module).detach()
                    delattr(module, "weight_scale")
            for name, param in self.named_parameters():
                keep = any(fragment in name for fragment in FP32_PARAMETERS)
                param.data = param.data.to(torch.float32 if keep else dtype)
        log.debug("Wan DiT weights cast to %s (time MLP, modulation, norms kept float32)", dtype)
        return self

    def forward(
        self, x: torch.Tensor, timestep: torch.Tensor, context: torch.Tensor,
        image_context: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Predict the velocity for a batch of latent videos.

        Args:
            x: latent ``[B, in_dim, F, H, W]``; F, H, W multiples of the patch size.
            timestep: ``[B]`` (or a scalar) or per token ``[B, L]``, L = (F/p_t)·(H/p_h)·(W/p_w)
                in (f, h, w) order; Wan units (1000·t, float, 1000 = noise).
            context: text context ``[B, L_ctx, text_dim]``, already zero-padded by the text
                encoder (the DiT neither pads nor masks it).
            image_context: CLIP features ``[B, N, image_dim]`` of the reference image(s), for
                a DiT with an image branch (N = 257 per image; FLF2V: 514).

        Returns:
            float32 ``[B, out_dim, F, H, W]``.
        """
        grid = self._token_grid(x)
        batch = x.shape[0]
        if context.ndim != 3 or context.shape[0] != batch:
            raise ValueError(
                f"context must be [{batch}, L_ctx, text_dim], got {tuple(context.shape)}"
            )
        e, e0 = self._time_embeddings(timestep, batch, grid[0] * grid[1] * grid[2])
        dtype = self.dtype
        emb = self.patch_embedding
        tokens = F.conv3d(x.to(dtype), emb.weight, emb.bias, stride=emb.stride)
        tokens = tokens.flatten(2).transpose(1, 2).float().contiguous()  # [B, L, dim]
        ctx = self._embedded_context(context)
        image = self._embedded_image(image_context, batch)
        rope = self._rope.get(grid, x.device)
        for block in self.blocks:
            tokens = block(tokens, e0, ctx, rope, image)
        return self._unpatchify(self.head(tokens, e), grid)

    def velocity(self, x: torch.Tensor, t_tok: torch.Tensor, context: torch.Tensor,
                 image_context: torch.Tensor | None = None) -> torch.Tensor:
        """The engine's :class:`~studio.engine.model.Denoiser` call.

        Args:
            x: ``[B, C, T', H', W']`` in model space.
            t_tok: ``[B, T', H', W']`` per-position time, t ∈ [0, 1] (1 = noise); subsampled to
                the token grid (one value per patch: its first position), ×1000.
            context: ``[B, L_ctx, text_dim]``.
            image_context: CLIP features for a DiT with an image branch (see :meth:`forward`).

        Returns:
            float32 v ``[B, C, T', H', W']``.
        """
        if t_tok.shape != (x.shape[0], *x.shape[2:]):
            raise ValueError(f"t_tok {tuple(t_tok.shape)} does not match latent {tuple(x.shape)}")
        pt, ph, pw = self.config.patch_size
        wide = torch.float32 if x.device.type == "mps" else torch.float64
        timestep = t_tok[:, ::pt, ::ph, ::pw].flatten(1).to(wide) * 1000.0
        return self(x.to(self.dtype), timestep, context.to(self.dtype),
                    image_context)  # called as a module: hooks run (LoRA)

    def velocity_uniform(
        self, x: torch.Tensor, t_tok: torch.Tensor, context: torch.Tensor,
        image_context: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """:meth:`velocity` for callers whose ``t_tok`` holds one time per sample.

        The time embedding is made once per sample (e ``[B, 1, dim]``, e0 ``[B, 1, 6, dim]``)
        instead of once per token, as the original Wan 2.1 does: the same result for a uniform
        ``t_tok``, without 7 float32 ``[B, L, dim]`` tensors (2.8 GB for the 1.3B model at
        480p with guidance) and their per-token time MLP. The Wan family uses it for models
        that take no reference frames (their requests never carry a conditioning mask); only
        the first position's time of each sample is read, so no host sync is needed.
        """
        if t_tok.shape != (x.shape[0], *x.shape[2:]):
            raise ValueError(f"t_tok {tuple(t_tok.shape)} does not match latent {tuple(x.shape)}")
        wide = torch.float32 if x.device.type == "mps" else torch.float64
        timestep = t_tok.flatten(1)[:, 0].to(wide) * 1000.0
        return self(x.to(self.dtype), timestep, context.to(self.dtype),
                    image_context)  # called as a module: hooks run (LoRA)

    def _embedded_image(self, features: torch.Tensor | None, batch: int) -> torch.Tensor | None:
        """``img_emb(features)`` in the model dtype; None for a DiT without an image branch."""
        if not self.config.image_dim:
            return None
        if features is None or features.ndim != 3 or features.shape[0] != batch:
            shown = None if features is None else tuple(features.shape)
            raise ValueError(f"this DiT takes CLIP image features [{batch}, N, "
                             f"{self.config.image_dim}], got {shown}")
        return self.img_emb(features).to(self.dtype)

    def _embedded_context(self, context: torch.Tensor) -> torch.Tensor:
        """``text_embedding(context)``: ``[B, L_ctx, text_dim]`` → ``[B, L_ctx, dim]``.

        Without gradients the result is kept and reused while the very same context tensor
        comes back with the same weights (the sampler passes one context for every step), so the
        text MLP runs once per generation. A context changed in place between calls would not be
        noticed; the engine never does that.
        """
        text = self.text_embedding
        params = list(text.parameters())
        keep = not torch.is_grad_enabled() and not any(p.is_inference() for p in params)
        weights = tuple((id(p), p._version) for p in params) if keep else ()  # new weights
        cached = self._context
        if keep and cached is not None and cached[0] is context and cached[1] == weights:
            return cached[2]
        ctx = linear(F.gelu(linear(context, text[0]), approximate="tanh"), text[2])
        self._context = (context, weights, ctx) if keep else None
        return ctx

    def _token_grid(self, x: torch.Tensor) -> tuple[int, int, int]:
        cfg = self.config
        if x.ndim != 5 or x.shape[1] != cfg.in_dim:
            raise ValueError(f"x must be [B, {cfg.in_dim}, F, H, W], got {tuple(x.shape)}")
        sizes = x.shape[2:]
        if any(s % p for s, p in zip(sizes, cfg.patch_size, strict=True)):
            raise ValueError(f"latent size {tuple(sizes)} is not a multiple of {cfg.patch_size}")
        f, h, w = (s // p for s, p in zip(sizes, cfg.patch_size, strict=True))
        return f, h, w

    def _time_embeddings(
        self, timestep: torch.Tensor, batch: int, tokens: int
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """e ``[B, 1 or L, dim]`` and e0 ``[B, 1 or L, 6, dim]``, float32."""
        timestep = timestep.to(self.time_embedding[0].weight.device)
        if timestep.ndim == 0:
            timestep = timestep.expand(batch)
        if timestep.ndim == 1 and timestep.shape[0] == batch:
            timestep = timestep[:, None]
        elif timestep.shape != (batch, tokens):
            raise ValueError(
                f"timestep must be [{batch}] or [{batch}, {tokens}], got {tuple(timestep.shape)}"
            )
        sinusoid = timestep_embedding(timestep, self.config.freq_dim)
        mlp = self.time_embedding
        e = linear_fp32(F.silu(linear_fp32(sinusoid, mlp[0])), mlp[2])
        e0 = linear_fp32(F.silu(e), self.time_projection[1])
        return e, e0.unflatten(-1, (6, self.config.dim))

    def _unpatchify(self, out: torch.Tensor, grid: tuple[int, int, int]) -> torch.Tensor:
        """Tokens ``[B, L, p_t·p_h·p_w·C]`` (c fastest) → ``[B, C, F, H, W]``."""
        f, h, w = grid
        pt, ph, pw = self.config.patch_size
        c = self.config.out_dim
        out = out.view(out.shape[0], f, h, w, pt, ph, pw, c).permute(0, 7, 1, 4, 2, 5, 3, 6)
        return out.reshape(out.shape[0], c, f * pt, h * ph, w * pw)


__all__ = [
    "FP32_PARAMETERS",
    "WAN21_T2V_14B",
    "WAN21_T2V_1_3B",
    "WAN22_TI2V_5B",
    "WanDiT",
    "WanDiTConfig",
]
