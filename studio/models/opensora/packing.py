"""The MMDiT behind the engine's denoiser contract: latent ↔ 2×2 tokens, ids, context split.

Open-Sora packs a latent ``[B, C, T, H, W]`` as ``b c t (h ph) (w pw) -> b (t h w) (c ph pw)``
(hpcaitech/Open-Sora @ 7ad6a96a135f, ``opensora/utils/sampling.py`` ``pack``/``unpack``), so a
token's features are channel-major over its 2×2 cell.
"""

from __future__ import annotations

import torch

from studio.models.opensora.mmdit import OpenSoraMMDiT, image_ids, text_ids
from studio.models.opensora.text import T5_LEN, split_context


def pack(x: torch.Tensor, patch: int = 2) -> torch.Tensor:
    """``[B, C, T, H, W]`` → tokens ``[B, T·(H/p)·(W/p), C·p·p]``."""
    b, c, t, h, w = x.shape
    x = x.reshape(b, c, t, h // patch, patch, w // patch, patch)
    return x.permute(0, 2, 3, 5, 1, 4, 6).reshape(b, t * (h // patch) * (w // patch), -1)


def unpack(tokens: torch.Tensor, shape: tuple[int, ...], patch: int = 2) -> torch.Tensor:
    """The inverse of :func:`pack` for a latent of ``shape`` ``(B, C, T, H, W)``."""
    b, c, t, h, w = shape
    x = tokens.reshape(b, t, h // patch, w // patch, c, patch, patch)
    return x.permute(0, 4, 1, 2, 5, 3, 6).reshape(b, c, t, h, w)


class PackedDenoiser:
    """``denoise(x, t_tok, context)`` over :class:`OpenSoraMMDiT`.

    ``x`` is ``[B, 16 + C_y, T', H', W']``: the noisy latent, then (image-to-video) the 17
    conditioning channels (mask, masked reference latent) that go to ``cond_in`` packed to 68
    features; ``context`` ``[B, 513, D]`` is the T5 rows and the CLIP pooled row
    (:func:`~studio.models.opensora.text.split_context`). One time per sample: t_tok's first
    value (Open-Sora gives every token the same t). ``text_len``: the T5 rows of the context
    (512 for the published encoder; fewer for a random bench model).
    """

    def __init__(self, model: OpenSoraMMDiT, latent_channels: int = 16,
                 text_len: int = T5_LEN) -> None:  # fmt: skip
        self.model = model
        self.latent_channels = latent_channels
        self.text_len = text_len

    def __call__(self, x: torch.Tensor, t_tok: torch.Tensor, context: torch.Tensor,
                 **image: torch.Tensor) -> torch.Tensor:
        config = self.model.config
        p = config.patch_size
        c = self.latent_channels
        latent, extra = x[:, :c], x[:, c:]
        b, _, t, h, w = latent.shape
        dtype = self.model.img_in.weight.dtype
        txt, pooled = split_context(context, config.vec_in_dim, self.text_len)
        cond = pack(extra, p).to(dtype) if extra.shape[1] else None
        v = self.model(
            pack(latent, p).to(dtype), image_ids(t, h // p, w // p, b).to(x.device),
            txt.to(dtype), text_ids(txt.shape[1], b).to(x.device),
            t_tok.reshape(b, -1)[:, 0].float(), pooled.float(), cond)  # fmt: skip
        return unpack(v.float(), (b, c, t, h, w), p)
