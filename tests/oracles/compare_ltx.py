"""Time the studio's LTX-Video transformer and VAE against diffusers' (same weights).

diffusers is a test/bench extra and is never imported under ``studio/``, so this comparison lives
here, like ``compare_diffusers.py`` (Wan) whose interface it shares: it prints one JSON line::

    python tests/oracles/compare_ltx.py --config ltx-small --device cpu --repeat 5

Both sides get the same seeded random weights (``random_model.transformer_state`` /
``vae_state``, renamed for diffusers by the studio's key tables and loaded strictly). The
denoiser row is one ``LTXTransformer`` forward against ``LTXVideoTransformer3DModel`` over a
classifier-free-guidance batch (2) with per-token times (the first latent frame at t = 0, as an
image-conditioned clip has it), a text mask with padding and the tokens' RoPE coordinates; the
VAE row one untiled decode at the decode timestep (``AutoencoderKLLTXVideo.decode``). Runs are
interleaved (half the pairs with diffusers first); the rows carry the paired ratio (ours /
diffusers, median over run pairs) and the max |Δ| of the outputs.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
for _path in (ROOT, HERE):
    if str(_path) not in sys.path:
        sys.path.insert(0, str(_path))

import torch  # noqa: E402
from compare_diffusers import run_comparison  # noqa: E402
from compare_opensora import _row, timed_pairs  # noqa: E402

from studio.bench.measure import device_peak  # noqa: E402
from studio.models.ltx.bench_sizes import DECODE_TIMESTEP, FPS, SIZES, LTXBenchSizes  # noqa: E402
from studio.models.ltx.random_model import transformer_state, vae_state  # noqa: E402
from studio.models.ltx.rope import video_coords  # noqa: E402
from studio.models.ltx.transformer import LTXTransformer  # noqa: E402
from studio.models.ltx.transformer_keys import diffusers_names  # noqa: E402
from studio.models.ltx.vae import LTXVideoVAE  # noqa: E402
from studio.models.ltx.vae_diffusers import config_to_diffusers  # noqa: E402
from studio.models.ltx.vae_keys import diffusers_names as vae_diffusers_names  # noqa: E402

TIMESTEP = 0.7
#: Real prompt tokens of the guidance batch's rows (the rest is padding): prompt, negative.
PROMPT_TOKENS = (40, 12)


def transformer_pair(spec: LTXBenchSizes, device: torch.device, dtype: torch.dtype
                     ) -> tuple[LTXTransformer, Any]:  # fmt: skip
    """Ours and diffusers' ``LTXVideoTransformer3DModel`` with the same seeded weights."""
    from diffusers import LTXVideoTransformer3DModel

    state = transformer_state(spec.transformer)
    with torch.device("meta"):
        ours = LTXTransformer(spec.transformer)
    ours.load_state_dict(state, strict=True, assign=True)
    config = {k: v for k, v in spec.transformer.to_diffusers().items() if not k.startswith("_")}
    with torch.device(device):
        theirs = LTXVideoTransformer3DModel(**config)
    theirs.load_state_dict(diffusers_names(state), strict=True)
    return (ours.to(device, dtype).eval().requires_grad_(False),
            theirs.to(device, dtype).eval().requires_grad_(False))  # fmt: skip


def transformer_inputs(spec: LTXBenchSizes, device: torch.device) -> dict[str, torch.Tensor]:
    """x ``[B, L, C]``, per-token t ``[B, L]``, context ``[B, Lc, D_text]``, mask ``[B, Lc]``,
    coords ``[B, 3, L]`` (float32; each side casts as it does)."""
    c, batch, gen = spec.transformer, spec.batch, torch.Generator().manual_seed(1)
    frames, height, width = spec.grid
    t = torch.full((batch, spec.tokens), TIMESTEP)
    t[:, : height * width] = 0.0  # the conditioning first frame is clean
    mask = torch.zeros(batch, spec.text_len)
    for row in range(batch):
        mask[row, : min(PROMPT_TOKENS[row % 2], spec.text_len)] = 1.0
    coords = video_coords(frames, height, width, fps=FPS, causal=c.causal_temporal_positioning)
    x = {"x": torch.randn(batch, spec.tokens, c.in_channels, generator=gen), "t": t,
         "context": torch.randn(batch, spec.text_len, c.caption_channels, generator=gen),
         "mask": mask, "coords": coords.expand(batch, -1, -1).contiguous()}  # fmt: skip
    return {k: v.to(device) for k, v in x.items()}


def compare_transformer(
    spec: LTXBenchSizes, device: torch.device, dtype: torch.dtype, repeat: int, warmup: int
) -> dict[str, Any]:
    """One guided transformer forward: ours (``LTXTransformer``) and diffusers'."""
    ours, theirs = transformer_pair(spec, device, dtype)
    x = transformer_inputs(spec, device)

    def run_ours() -> torch.Tensor:
        with torch.inference_mode():
            return ours(x["x"], x["t"], x["context"], x["mask"], x["coords"])

    def run_theirs() -> torch.Tensor:
        with torch.inference_mode():  # LTXPipeline's inputs: model-dtype states, t × 1000
            return theirs(hidden_states=x["x"].to(dtype),
                          encoder_hidden_states=x["context"].to(dtype),
                          timestep=x["t"] * 1000, encoder_attention_mask=x["mask"],
                          video_coords=x["coords"], return_dict=False)[0]  # fmt: skip

    reference = run_theirs().float()
    difference = (run_ours().float() - reference).abs().max().item()
    times = timed_pairs(run_ours, run_theirs, device, repeat, warmup)
    row = _row(times, difference, reference.abs().max().item())
    row.update(batch=spec.batch, tokens=spec.tokens, text_tokens=spec.text_len,
               per_token_time=True)  # fmt: skip
    return row


def vae_pair(spec: LTXBenchSizes, device: torch.device) -> tuple[LTXVideoVAE, Any]:
    """Ours and diffusers' ``AutoencoderKLLTXVideo`` (float32) with the same seeded weights."""
    from diffusers import AutoencoderKLLTXVideo

    state = vae_state(spec.vae)
    ours = LTXVideoVAE(spec.vae)
    ours.load_state_dict(state, strict=True)
    theirs = AutoencoderKLLTXVideo(**config_to_diffusers(spec.vae))
    theirs.load_state_dict(vae_diffusers_names(state, spec.vae), strict=True)
    return (ours.to(device).eval().requires_grad_(False),
            theirs.to(device).eval().requires_grad_(False))  # fmt: skip


def compare_vae(
    spec: LTXBenchSizes, device: torch.device, repeat: int, warmup: int
) -> dict[str, Any]:
    """One untiled decode of a raw latent at the decode timestep, ours against diffusers'."""
    ours, theirs = vae_pair(spec, device)
    latent = torch.randn(spec.vae_latent_shape(), generator=torch.Generator().manual_seed(2))
    latent = latent.to(device)
    conditioned = spec.vae.timestep_conditioning
    timestep = torch.full((1,), DECODE_TIMESTEP, device=device) if conditioned else None

    def run_ours() -> torch.Tensor:
        with torch.inference_mode():
            return ours.decode(latent, timestep)

    def run_theirs() -> torch.Tensor:
        with torch.inference_mode():
            return theirs.decode(latent, timestep, return_dict=False)[0]

    torch.manual_seed(3)  # the 0.9.1 decoder's injected noise: the same draws in the same order
    reference = run_theirs().float()
    torch.manual_seed(3)
    difference = (run_ours() - reference).abs().max().item()
    times = timed_pairs(run_ours, run_theirs, device, repeat, warmup)
    row = _row(times, difference, reference.abs().max().item())
    row.update(latent_shape=list(spec.vae_latent_shape()),
               pixels=[spec.vae_frames, spec.vae_height, spec.vae_width],
               ours_peak_bytes=device_peak(device, run_ours),
               diffusers_peak_bytes=device_peak(device, run_theirs))  # fmt: skip
    return row


def main(argv: list[str] | None = None) -> int:
    return run_comparison(argv, SIZES, "ltx-small", compare_transformer, compare_vae)


if __name__ == "__main__":
    sys.exit(main())
