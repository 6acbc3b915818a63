"""Time the studio's Open-Sora 2.0 MMDiT and HunyuanVideo VAE against diffusers' (same weights).

diffusers is a test/bench extra and is never imported under ``studio/``, so this comparison lives
here, like ``compare_diffusers.py`` (Wan) whose interface it shares: it prints one JSON line::

    python tests/oracles/compare_opensora.py --config opensora-small --device cpu --repeat 5

Both sides get the same seeded random weights through the parity tests' tables
(``tests/models/opensora/test_mmdit.py``: our names → ``FluxTransformer2DModel``'s, ``cond_in``
folded into ``x_embedder``; ``test_hunyuan_vae.py``: ``AutoencoderKLHunyuanVideo`` shares our
names). The denoiser row is one MMDiT forward over a guidance batch (3: Open-Sora's three-pass
image-to-video guidance) with an image condition; the VAE row one untiled decode. Runs are
interleaved (half the pairs with diffusers first) so that both see the same machine load; the
rows carry the paired ratio (ours / diffusers, median over run pairs) and the max |Δ| of the
outputs.
"""

from __future__ import annotations

import statistics
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import torch  # noqa: E402
from compare_diffusers import run_comparison  # noqa: E402

from studio.bench.timing import Timing, compare, paired_ratio  # noqa: E402
from studio.models.opensora.bench_sizes import SIZES, OpenSoraBenchSizes  # noqa: E402
from studio.models.opensora.hunyuan_vae import load_hunyuan_vae  # noqa: E402
from studio.models.opensora.hunyuan_vae_config import NO_TILING  # noqa: E402
from studio.models.opensora.mmdit import image_ids, text_ids  # noqa: E402

TIMESTEP = 0.7


def _row(times: dict[str, Any], difference: float, scale: float) -> dict[str, Any]:
    return {"ours": times["ours"].to_dict(), "diffusers": times["diffusers"].to_dict(),
            "ratio": paired_ratio(times["ours"], times["diffusers"]),
            "ratio_of_medians": times["ours"].median / times["diffusers"].median,
            "max_abs_difference": difference, "output_max_abs": scale}  # fmt: skip


def timed_pairs(
    ours: Callable[[], object], theirs: Callable[[], object], device: torch.device,
    repeat: int, warmup: int,
) -> dict[str, Timing]:  # fmt: skip
    """Interleaved runs (:func:`compare`), half of the pairs with diffusers going first, so that
    neither side always runs in the other's wake; samples stay paired for :func:`paired_ratio`."""
    first = compare({"ours": ours, "diffusers": theirs}, device, repeat=(repeat + 1) // 2,
                    warmup=warmup)  # fmt: skip
    if repeat < 2:
        return first
    second = compare({"diffusers": theirs, "ours": ours}, device, repeat=repeat // 2, warmup=0)
    merged = {}
    for name in ("ours", "diffusers"):
        samples = first[name].samples + second[name].samples
        merged[name] = Timing(statistics.median(samples), min(samples), samples,
                              first[name].warmup)  # fmt: skip
    return merged


def _mmdit_inputs(spec: OpenSoraBenchSizes, device: torch.device) -> dict[str, torch.Tensor]:
    c, batch, gen = spec.mmdit, spec.batch, torch.Generator().manual_seed(1)
    tokens = spec.tokens
    x = {"img_tokens": torch.randn(batch, tokens, c.in_channels, generator=gen),
         "img_ids": image_ids(*spec.grid, batch=batch),
         "txt": torch.randn(batch, spec.text_len, c.context_in_dim, generator=gen),
         "txt_ids": text_ids(spec.text_len, batch=batch),
         "t": torch.full((batch,), TIMESTEP),
         "y_vec": torch.randn(batch, c.vec_in_dim, generator=gen),
         "cond": torch.randn(batch, tokens, c.cond_channels, generator=gen)}  # fmt: skip
    return {k: v.to(device) for k, v in x.items()}


def compare_mmdit(
    spec: OpenSoraBenchSizes, device: torch.device, dtype: torch.dtype, repeat: int, warmup: int
) -> dict[str, Any]:
    """One denoiser forward: ours (``OpenSoraMMDiT``), diffusers' ``FluxTransformer2DModel``."""
    from tests.models.opensora.test_mmdit import diffusers_twin, random_model

    ours = random_model(spec.mmdit)
    theirs = diffusers_twin(ours).to(device, dtype).requires_grad_(False)
    ours = ours.to(device).to_dtype(dtype).requires_grad_(False)
    x = _mmdit_inputs(spec, device)
    joint = torch.cat([x["img_tokens"], x["cond"]], dim=-1)

    def run_ours() -> torch.Tensor:
        with torch.inference_mode():
            return ours(**x)

    def run_theirs() -> torch.Tensor:
        with torch.inference_mode():  # the pipeline's inputs: cat([x, cond]) and float ids
            return theirs(hidden_states=joint.to(dtype), encoder_hidden_states=x["txt"].to(dtype),
                          pooled_projections=x["y_vec"].to(dtype), timestep=x["t"].to(dtype),
                          img_ids=x["img_ids"][0], txt_ids=x["txt_ids"][0],
                          return_dict=False)[0]  # fmt: skip

    reference = run_theirs().float()
    difference = (run_ours().float() - reference).abs().max().item()
    times = timed_pairs(run_ours, run_theirs, device, repeat, warmup)
    row = _row(times, difference, reference.abs().max().item())
    row.update(batch=spec.batch, image_tokens=spec.tokens, text_tokens=spec.text_len)
    return row


def compare_vae(
    spec: OpenSoraBenchSizes, device: torch.device, repeat: int, warmup: int
) -> dict[str, Any]:
    """One untiled decode of ours (``HunyuanVAE``) and diffusers' ``AutoencoderKLHunyuanVideo``."""
    from tests.models.opensora.test_hunyuan_vae import oracle_for, seeded_state

    c = spec.vae
    theirs = oracle_for(c).eval()
    state = seeded_state(theirs)
    theirs.load_state_dict(state, strict=True)
    theirs.use_framewise_encoding = theirs.use_framewise_decoding = False
    theirs = theirs.to(device).requires_grad_(False)
    ours = load_hunyuan_vae(state, config=c, tiling=NO_TILING).to(device).eval()
    latent = torch.randn(spec.vae_latent_shape(), generator=torch.Generator().manual_seed(2))
    latent = latent.to(device)

    def run_ours() -> torch.Tensor:
        with torch.inference_mode():
            return ours.decode(latent)

    def run_theirs() -> torch.Tensor:
        with torch.inference_mode():  # the pipeline de-normalises before decoding
            return theirs.decode(latent / c.scale_factor + c.shift_factor, return_dict=False)[0]

    reference = run_theirs().float()
    difference = (run_ours() - reference).abs().max().item()
    times = timed_pairs(run_ours, run_theirs, device, repeat, warmup)
    row = _row(times, difference, reference.abs().max().item())
    row.update(latent_shape=list(spec.vae_latent_shape()),
               pixels=[spec.vae_frames, spec.vae_height, spec.vae_width])  # fmt: skip
    return row


def main(argv: list[str] | None = None) -> int:
    return run_comparison(argv, SIZES, "opensora-small", compare_mmdit, compare_vae)


if __name__ == "__main__":
    sys.exit(main())
