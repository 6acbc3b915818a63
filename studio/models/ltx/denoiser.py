"""The engine's denoiser call over :class:`~studio.models.ltx.transformer.LTXTransformer`.

The engine samples a state ``[B, C, T' + K, H', W']``: the video's T' latent frames followed by
K appended frames, in groups: one frame per reference image after the first frame, two per
clip after the first frame (its prefix; docs/families/ltx.md §5 and §7 — the original pipeline
appends both as extra tokens, ``prepare_conditioning``). The adapter flattens the state to
tokens in (f, h, w) order and gives each token its coordinates: the grid frames those of the
video, each appended group of n frames those of an n-frame grid moved to the pixel frame it
starts at (``layout.appended[k] = (frame, n)``) — the original computes the appended tokens'
pixel coordinates with the same causal correction and then adds the frame number. Times are divided
by the frame rate; the text mask rides in the context's last channel
(:func:`~studio.models.ltx.text.split_context`).
"""

from __future__ import annotations

import torch

from studio.engine.model import FrameLayout
from studio.models.ltx.rope import video_coords
from studio.models.ltx.text import split_context
from studio.models.ltx.transformer import LTXTransformer
from studio.models.ltx.transformer_blocks import SkipBlocks

#: The VAE's compression (time, height, width) that turns latent indices into pixel corners.
PIXEL_SCALE = (8, 32, 32)


def layout_coords(layout: FrameLayout, height: int, width: int, *, causal: bool,
                  scale: tuple[int, int, int] = PIXEL_SCALE) -> torch.Tensor:
    """Coordinates ``[3, (T' + K)·H'·W']`` (seconds, px, px) of the grid then the appended
    groups, in the order the state's tokens are flattened."""
    parts = [video_coords(layout.latent_frames, height, width, fps=layout.fps, causal=causal,
                          scale=scale)]  # fmt: skip
    parts += [video_coords(count, height, width, fps=layout.fps, causal=causal, scale=scale,
                           frame_offset=frame) for frame, count in layout.appended]  # fmt: skip
    return torch.cat(parts, dim=1)


class LTXDenoiser:
    """``(x [B, C, T'+K, H', W'], t_tok [B, T'+K, H', W'], context [B, L, D+1], *, layout,
    skip=None) → v [B, C, T'+K, H', W']`` (float32), in the transformer's dtype inside."""

    def __init__(self, transformer: LTXTransformer,
                 scale: tuple[int, int, int] = PIXEL_SCALE) -> None:
        self.transformer, self.scale = transformer, scale
        self._coords: dict[tuple, torch.Tensor] = {}

    def coords(self, layout: FrameLayout, height: int, width: int,
               device: torch.device) -> torch.Tensor:
        """The layout's token coordinates on ``device`` (cached: they repeat every step)."""
        key = (layout, height, width, device)
        if key not in self._coords:
            causal = self.transformer.config.causal_temporal_positioning
            coords = layout_coords(layout, height, width, causal=causal, scale=self.scale)
            self._coords = {key: coords.to(device)}
        return self._coords[key]

    def __call__(self, x: torch.Tensor, t_tok: torch.Tensor, context: torch.Tensor, *,
                 layout: FrameLayout, skip: SkipBlocks | None = None) -> torch.Tensor:
        batch, channels, frames, height, width = x.shape
        if frames != layout.latent_frames + layout.appended_frames:
            raise ValueError(f"the state has {frames} latent frames but the layout "
                             f"{layout.latent_frames} + {layout.appended_frames} appended")
        device = self.transformer.device
        tokens = x.flatten(2).transpose(1, 2).to(device)  # [B, L, C], L in (f, h, w) order
        states, mask = split_context(context.to(device))
        coords = self.coords(layout, height, width, device).expand(batch, -1, -1)
        v = self.transformer(tokens, t_tok.flatten(1).to(device), states, mask, coords,
                             skip=skip)  # fmt: skip
        return v.transpose(1, 2).reshape(batch, channels, frames, height, width)
