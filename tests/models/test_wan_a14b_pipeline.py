"""Wan 2.2 A14B against diffusers' own ``WanPipeline`` object (a test-only oracle).

tests/models/test_wan_a14b.py checks the expert rule against a loop written out over diffusers'
DiTs; here the whole of diffusers' pipeline runs instead — its prompt cleaning, tokenizer call,
UMT5 encoding and zero padding, its expert switch (``t ≥ boundary_ratio · 1000`` on the
scheduler's timesteps), its guidance per expert and its scheduler's Euler step — on a tiny
random A14B set in the diffusers layout, every part loaded from that folder's files:

* ``transformer/`` and ``transformer_2/``: ``WanTransformer3DModel`` built from the folder's
  ``config.json`` and loaded strictly from its safetensors;
* ``vae/``: ``AutoencoderKLWan`` loaded strictly (unused by ``output_type="latent"`` except for
  its scale factors: the pipeline un-normalises latents only to decode them, so its latent
  output is in the same normalised model space as the studio's);
* ``text_encoder/`` (``UMT5EncoderModel``) and ``tokenizer/`` (``AutoTokenizer``), local files.

The scheduler is ``FlowMatchEulerDiscreteScheduler`` (shift 1) whose ``set_timesteps`` is fed the
studio's first N schedule points as ``sigmas``, so its timesteps are the studio's times · 1000 and
its appended terminal sigma is the studio's final 0. ``max_sequence_length`` is 512, the studio's
``TEXT_LEN``: both pad the trimmed UMT5 output with zeros to 512 rows. The initial latents are
the studio's own noise for the same seed. What remains different is arithmetic only: diffusers
keeps sigmas and timesteps in float32 (the studio's schedule and DiT timestep are float64) and
runs the conditional and unconditional passes (and the two prompts' encodings) as separate
batches of one where the studio batches them. Measured on the CPU: the contexts agree exactly,
the final latents to ≈ 1.0e-5 of their largest value (about the same with shift 1, whose
times are exact in float32, so the float32 sigmas are not the main source).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from studio.engine.model import DIT, DIT_LOW
from studio.engine.noise import make_noise
from studio.engine.pipeline import encode_prompts, plan_generation, sample_plan
from studio.engine.request import GenerationRequest
from studio.engine.schedule import make_schedule
from studio.models.registry import family, scan
from studio.models.wan.text import TEXT_LEN
from tests.models.tiny_a14b import write_a14b_set
from tests.models.tiny_wan import TINY_VAE_21

diffusers = pytest.importorskip("diffusers")

BOUNDARY = 0.8
TOLERANCE = 1e-4  # relative max error; measured ≈ 1.0e-5 (float32 rounding, batching)
#: Long prompts (463 and 451 tokens, all in the tiny vocabulary): the tiny DiT's cross-attention
#: spreads over all 512 context rows, and the zero rows all embed to one key, so a short prompt
#: moves the velocity by little. Here changing the low expert's guidance from 2 to 4 moves the
#: final latent by ≈ 3.1e-3 of its largest value, 30× the tolerance; with an 8-token prompt it
#: moved it by only ≈ 5.9e-5 and the parity check could not tell the two guidances apart.
PROMPT = " ".join(["a red bird flies over the river on a sunny day"] * 42)
NEGATIVE = " ".join(["a small blue dog walks slowly in the snow"] * 50)
REQUEST = GenerationRequest(prompt=PROMPT, negative_prompt=NEGATIVE,
                            steps=8, guidance=4.0, guidance_low=2.0, shift=3.0, width=32,
                            height=32, frames=5, seed=7, sampler="euler")  # fmt: skip


class StudioScheduler(diffusers.FlowMatchEulerDiscreteScheduler):
    """diffusers' flow-matching Euler scheduler on a given schedule: ``points`` (N + 1 times,
    last 0) are set before ``set_timesteps(N)``, which hands the first N to the parent as
    ``sigmas`` (shift 1 leaves them as they are; the parent appends the terminal 0)."""

    points: tuple[float, ...] = ()

    def set_timesteps(self, num_inference_steps: int | None = None,
                      device: str | torch.device | None = None, **_: object) -> None:
        assert len(self.points) == num_inference_steps + 1 and self.points[-1] == 0.0
        super().set_timesteps(num_inference_steps, device, sigmas=list(self.points[:-1]))


def transformer_from(folder: Path) -> torch.nn.Module:
    """``WanTransformer3DModel`` from a diffusers folder's config.json and safetensors."""
    config = json.loads((folder / "config.json").read_text())
    model = diffusers.WanTransformer3DModel(
        **{k: v for k, v in config.items() if not k.startswith("_")})
    model.load_state_dict(load_file(str(folder / "diffusion_pytorch_model.safetensors")),
                          strict=True)
    return model.eval()


def vae_from(folder: Path) -> torch.nn.Module:
    """``AutoencoderKLWan`` of the tiny Wan 2.1 VAE, loaded strictly from ``folder``."""
    cfg = TINY_VAE_21
    vae = diffusers.AutoencoderKLWan(
        base_dim=cfg.dim, decoder_base_dim=cfg.dec_dim, z_dim=cfg.z_dim,
        dim_mult=list(cfg.dim_mult), num_res_blocks=cfg.num_res_blocks,
        temperal_downsample=list(cfg.temporal_downsample), latents_mean=list(cfg.latent_mean),
        latents_std=list(cfg.latent_std))  # fmt: skip
    vae.load_state_dict(load_file(str(folder / "diffusion_pytorch_model.safetensors")),
                        strict=True)
    return vae.eval()


def wan_pipeline(root: Path, schedule: tuple[float, ...]):  # noqa: ANN201 - a WanPipeline
    from transformers import AutoTokenizer, UMT5EncoderModel

    boundary = json.loads((root / "model_index.json").read_text())["boundary_ratio"]
    scheduler = StudioScheduler(shift=1.0)
    scheduler.points = schedule
    text_encoder = UMT5EncoderModel.from_pretrained(str(root / "text_encoder"),
                                                    local_files_only=True).eval()
    tokenizer = AutoTokenizer.from_pretrained(str(root / "tokenizer"), local_files_only=True)
    pipe = diffusers.WanPipeline(
        tokenizer=tokenizer, text_encoder=text_encoder, vae=vae_from(root / "vae"),
        scheduler=scheduler, transformer=transformer_from(root / "transformer"),
        transformer_2=transformer_from(root / "transformer_2"), boundary_ratio=boundary)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def count_calls(module: torch.nn.Module) -> list[int]:
    calls = [0]
    module.register_forward_hook(lambda *_: calls.__setitem__(0, calls[0] + 1))
    return calls


def rel_max(a: torch.Tensor, b: torch.Tensor) -> float:
    return ((a.double() - b.double()).abs().max() / b.double().abs().max()).item()


def test_a14b_sampling_equals_diffusers_wan_pipeline(tmp_path: Path) -> None:
    root = tmp_path / "a14b"
    write_a14b_set(root, "t2v", "diffusers", boundary=BOUNDARY)
    (model_set,) = scan([root])
    model = family("wan").load(model_set, torch.device("cpu"), torch.float32)
    assert model.experts is not None and model.experts.boundary == BOUNDARY
    plan = plan_generation(model, REQUEST)
    high_steps = sum(t >= BOUNDARY for t in plan.schedule[:-1])
    assert 0 < high_steps < REQUEST.steps  # both experts have steps
    assert min(abs(t - BOUNDARY) for t in plan.schedule) > 1e-3  # no float32 tie at the switch

    pipe = wan_pipeline(root, plan.schedule)
    pipe.scheduler.set_timesteps(REQUEST.steps)
    assert torch.equal(pipe.scheduler.sigmas, torch.tensor(plan.schedule, dtype=torch.float32))
    assert torch.equal(pipe.scheduler.timesteps, pipe.scheduler.sigmas[:-1] * 1000)

    # The contexts first: the same UMT5 rows, zero-padded to the studio's TEXT_LEN.
    context, uncond = encode_prompts(model, plan)
    with torch.no_grad():
        d_context, d_uncond = pipe.encode_prompt(
            REQUEST.prompt, REQUEST.negative_prompt, max_sequence_length=TEXT_LEN,
            device=torch.device("cpu"))  # fmt: skip
    assert d_context.shape == context.shape == (1, TEXT_LEN, 32)
    assert rel_max(context, d_context) < 1e-5 and rel_max(uncond, d_uncond) < 1e-5
    assert not torch.equal(context, uncond)

    ours = sample_plan(model, plan)
    noise = make_noise(plan.latent_shape, REQUEST.seed, torch.device("cpu"), torch.float32)
    calls = {DIT: count_calls(pipe.transformer), DIT_LOW: count_calls(pipe.transformer_2)}

    def run(guidance_low: float) -> torch.Tensor:
        with torch.no_grad():
            return pipe(prompt=REQUEST.prompt, negative_prompt=REQUEST.negative_prompt,
                        height=REQUEST.height, width=REQUEST.width, num_frames=REQUEST.frames,
                        num_inference_steps=REQUEST.steps, guidance_scale=REQUEST.guidance,
                        guidance_scale_2=guidance_low, latents=noise.clone(),
                        max_sequence_length=TEXT_LEN, output_type="latent",
                        return_dict=False)[0]  # fmt: skip

    tokens = pipe.tokenizer([PROMPT, NEGATIVE]).input_ids
    assert min(map(len, tokens)) > 450 and max(map(len, tokens)) < TEXT_LEN  # none truncated
    theirs = run(REQUEST.guidance_low)
    # Each expert ran its own steps, a conditional and an unconditional pass per step.
    assert calls[DIT][0] == 2 * high_steps
    assert calls[DIT_LOW][0] == 2 * (REQUEST.steps - high_steps)
    assert theirs.shape == ours.shape == plan.latent_shape
    error = rel_max(ours, theirs)
    print(f"studio vs diffusers WanPipeline, relative max error {error:.3e}")
    assert error < TOLERANCE
    # The oracle honours the low expert's guidance, by far more than the tolerance: a studio
    # that gave the low expert 4.0 instead of 2.0 would fail the comparison above.
    same_guidance = run(REQUEST.guidance)
    assert rel_max(same_guidance, theirs) > 10 * TOLERANCE
    ours_same = sample_plan(model, plan_generation(model, REQUEST.with_changes(guidance_low=4.0)))
    assert rel_max(ours_same, same_guidance) < TOLERANCE


def test_the_studio_schedule_is_diffusers_own_shift_of_linear_sigmas() -> None:
    """The points fed to :class:`StudioScheduler` are what diffusers' own shift makes of the
    linear sigmas 1 … 1/N (to float32): the subclass only spares the float32 round trip."""
    steps, shift = REQUEST.steps, float(REQUEST.shift)
    scheduler = diffusers.FlowMatchEulerDiscreteScheduler(shift=shift)
    scheduler.set_timesteps(steps, sigmas=[1 - i / steps for i in range(steps)])
    expected = torch.tensor(make_schedule(steps, shift), dtype=torch.float32)
    assert torch.allclose(scheduler.sigmas, expected, rtol=1e-6, atol=0)
