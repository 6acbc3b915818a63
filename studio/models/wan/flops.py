"""Analytic FLOP count of one Wan DiT forward pass.

Counted are the multiply-adds of matrix products (2 FLOP each), the convention used for model
FLOP utilisation: projections, attention scores and weighted sums, the feed-forward network,
patch embedding, text/time embeddings and the head. Element-wise work (norms, RoPE, softmax,
modulation, GELU) is left out; for Wan it is well under 1 % of the total.

For Wan 2.1 T2V-1.3B at 832×480, 81 frames (32,760 tokens, 512 context rows) one forward of
batch 1 is ≈ 283 TFLOP, 70 % of it in self-attention scores and sums (``4·L²·dim`` per block).
"""

from __future__ import annotations

from studio.models.bench_config import FlopCount
from studio.models.wan.dit_config import WanDiTConfig


def flop_count(
    config: WanDiTConfig,
    tokens: int,
    context_len: int | None = None,
    *,
    batch: int = 1,
    per_token_time: bool = False,
) -> FlopCount:
    """FLOPs of one :class:`~studio.models.wan.dit.WanDiT` forward.

    Args:
        config: the DiT's sizes.
        tokens: L, tokens per sample = T'·(H'/p_h)·(W'/p_w) (e.g. 21·30·52 = 32,760).
        context_len: text rows attended (default ``config.text_len``, 512).
        batch: B (2 when the guided and unguided passes are batched).
        per_token_time: the timestep MLP runs for every token (Wan 2.2 TI2V with a
            first-frame condition) instead of once per sample.
    """
    if tokens < 1 or batch < 1:
        raise ValueError(f"tokens and batch must be positive, got {tokens}, {batch}")
    lc = config.text_len if context_len is None else context_len
    d, f, n = config.dim, config.ffn_dim, config.num_layers
    rows = batch * tokens
    self_attention = n * 4.0 * batch * tokens * tokens * d
    projections = n * (8.0 * rows * d * d + 4.0 * rows * d * d + 4.0 * batch * lc * d * d)
    cross_attention = n * 4.0 * rows * lc * d
    ffn = n * 4.0 * rows * d * f
    time_rows = rows if per_token_time else batch
    patch_in = config.in_dim * config.patch_volume
    patch_out = config.out_dim * config.patch_volume
    embeddings = (
        2.0 * rows * patch_in * d  # patch embedding (a strided conv = one matmul per token)
        + 2.0 * batch * lc * (config.text_dim * d + d * d)  # text embedding MLP
        + 2.0 * time_rows * (config.freq_dim * d + d * d + d * 6 * d)  # time MLP + projection
        + 2.0 * rows * d * patch_out  # head
    )
    return FlopCount(self_attention, projections, cross_attention, ffn, embeddings)
