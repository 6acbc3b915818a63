"""A whole LTX-Video sampling run through the studio against diffusers and the original loop.

One tiny random set (float32, CPU), 17 frames of 96 × 64 px (latent ``[1, 16, 3, 2, 3]``),
explicit times (1, 0.7, 0.4), CFG 3 with a negative prompt, no STG, Euler; a reference image at
frame 0 (strength 1) and one at frame 8 (strength 0.5). The studio runs ``plan_generation`` +
``sample_plan`` on the model the family loads; the oracles get the same weights, prompt
embeddings and initial noise (the studio's ``make_noise(plan.state_shape, seed)``: the grid's
frames for the grid, appended frame k for keyframe k).

Oracles:

* diffusers ``LTXConditionPipeline`` (``pipelines/ltx/pipeline_ltx_condition.py``), noise
  scripted through ``tests/models/ltx/ltx_diffusers_twin.py``;
* a restatement of Lightricks/LTX-Video ``ltx_video/pipelines/pipeline_ltx_video.py``
  (``prepare_conditioning``, ``add_noise_to_image_conditioning_latents``, the ``__call__``
  loop, ``denoising_step``; the per-token step of ``ltx_video/schedulers/rf.py``
  ``RectifiedFlowScheduler.step``) written below over diffusers' transformer with the set's
  weights: tokens in the original's order (keyframe tokens first), pixel coordinates with the
  causal fix plus the keyframe's frame number, per-token times ``min(t, 1 − m)``, each token
  stepped from its own time to the next lower scheduled time, and written only where the
  *global* ``t − 1e-6 < 1 − m``; keyframe tokens stripped at the end.

Where diffusers differs from the original (all in ``pipeline_ltx_condition.py``):

* ``_scale_video_ids`` applies the causal time fix always; the original's
  ``latent_to_pixel_coords`` only when ``transformer.config.causal_temporal_positioning``
  (0.9.5 and later): for 0.9.0 / 0.9.1 weights every token's time differs. The main set is
  causal (``model_index.json`` names ``LTXConditionPipeline``), so they agree; the same
  weights as a 0.9.1 single file are compared with the original alone (diffusers is ~1e-3 off).
* ``prepare_latents`` ignores ``latents=`` unless ``denoise_strength < 1`` (then it noises
  them as video-to-video), always drawing its own noise; the original's ``prepare_latents``
  uses given latents. The noise is therefore scripted, not passed.
* the original draws its initial noise as ``[B, F·H·W, C]`` and rearranges it; diffusers
  draws ``[B, C, F, H, W]`` (same distribution, other values per seed).
* both sample the VAE posterior for the references (diffusers ``retrieve_latents`` with the
  pipeline's generator, the original's ``vae_encode`` ``latent_dist.sample()`` with the global
  RNG); the studio takes the posterior mean, and so do both oracles here.
* a video item after frame 0: diffusers (``prepare_latents``) does not soft-condition the
  prefix frames as the original's ``_handle_non_first_conditioning_sequence`` does (strength
  ``min(0.15, strength)``); the studio follows the original's default "concat" mode
  (``tests/models/ltx/test_clip_parity.py``).
* no STG and no STG rescaling; ``guidance_rescale`` is the CFG rescale of arXiv 2305.08891,
  not the original's ``rescaling_scale``; ``image_cond_noise_scale`` defaults to 0.15 (the
  original pipeline's to 0, its ``inference.py`` passes 0.15).

For single-image keyframes on a causal set, diffusers and the original agree (order of the
appended tokens aside: both put them first, the studio after the grid — attention does not see
the order, the coordinates travel with the tokens), so both runs are compared with both.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from studio.engine.conditioning import pinned_noise_seed
from studio.engine.model import LoadedModel
from studio.engine.noise import make_noise
from studio.engine.pipeline import encode_prompts, generate, plan_generation, sample_plan
from studio.engine.plan import GenerationPlan
from studio.engine.request import GenerationRequest
from studio.engine.request_items import ConditioningItem
from studio.models.ltx.text import split_context
from studio.models.registry import family, scan
from tests.models.ltx.ltx_diffusers_twin import (
    condition_pipeline,
    script_noise,
    write_condition_set,
)
from tests.models.ltx.tiny_ltx import write_single_file_set

pytest.importorskip("diffusers")

WIDTH, HEIGHT, FRAMES, FPS = 96, 64, 17, 25.0
TIMES = (1.0, 0.7, 0.4)
T_EPS = 1e-6
#: The brief's bound is 1e-4; float32 runs agree to ~3e-7, so a tighter one leaves room.
TOLERANCE = 1e-5


@dataclass(frozen=True)
class Setup:
    """The loaded studio model, diffusers' pipeline over the same weights, two images, and
    whether the model's tokens take causal times (the original's restatement follows it)."""

    model: LoadedModel
    pipe: object  # diffusers' LTXConditionPipeline (a test-only import)
    images: tuple[Path, Path]
    causal: bool = True


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Setup:
    root = tmp_path_factory.mktemp("ltx_parity")
    folder = write_condition_set(root / "set")
    model = family("ltx").load(scan([folder])[0], torch.device("cpu"), torch.float32)
    rng = np.random.default_rng(11)
    images = []
    for k in range(2):
        path = root / f"ref{k}.png"
        Image.fromarray(rng.integers(0, 256, (HEIGHT, WIDTH, 3), dtype=np.uint8)).save(path)
        images.append(path)
    return Setup(model, condition_pipeline(folder), (images[0], images[1]))


def _request(setup: Setup, keyframes: tuple[tuple[int, float], ...],
             reference_noise: float = 0.0) -> GenerationRequest:
    """The parity request: ``keyframes`` as (pixel frame, strength), image k at the k-th."""
    items = tuple(ConditioningItem(str(setup.images[k]), frame, strength)
                  for k, (frame, strength) in enumerate(keyframes))
    return GenerationRequest(
        prompt="a red kite over the dunes", negative_prompt="blurry, static", seed=7, steps=3,
        guidance=3.0, timesteps=TIMES, stg=0.0, reference_noise=reference_noise, width=WIDTH,
        height=HEIGHT, frames=FRAMES, fps=FPS, conditioning=items)  # fmt: skip


def _rel(ours: torch.Tensor, theirs: torch.Tensor) -> float:
    return ((ours - theirs).norm() / theirs.norm()).item()


def _text(setup: Setup, plan: GenerationPlan) -> tuple[torch.Tensor, ...]:
    """(prompt states ``[1, L, D]``, its mask ``[1, L]``, negative states, negative mask)."""
    context, uncond = encode_prompts(setup.model, plan)
    return (*split_context(context), *split_context(uncond))


def _noise(plan: GenerationPlan) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """The studio's initial noise split as the oracles draw it: (grid ``[1, C, T', H', W']``,
    one ``[1, C, 1, H', W']`` per appended keyframe)."""
    noise = make_noise(plan.state_shape, plan.request.seed)
    grid = plan.latent_shape[2]
    return noise[:, :, :grid], [noise[:, :, f:f + 1] for f in range(grid, plan.state_shape[2])]


def _pinned_tokens(plan: GenerationPlan, step: int) -> torch.Tensor:
    """The studio's pinned-frame noise of ``step`` in the original's token order ``[1, L, C]``
    (keyframe frames first, then the grid)."""
    eps = make_noise(plan.state_shape, pinned_noise_seed(plan.request.seed, step))
    grid = plan.latent_shape[2]
    return _patchify(torch.cat([eps[:, :, grid:], eps[:, :, :grid]], dim=2))


def _patchify(x: torch.Tensor) -> torch.Tensor:
    """``[B, C, F, H, W]`` → tokens ``[B, F·H·W, C]`` in (f, h, w) order (patch 1)."""
    return x.flatten(2).transpose(1, 2)


def _diffusers_run(setup: Setup, plan: GenerationPlan, noise_scale: float = 0.0) -> torch.Tensor:
    """diffusers' final latent ``[1, C, T', H', W']`` with the studio's noise scripted in."""
    from diffusers.pipelines.ltx.pipeline_ltx_condition import LTXVideoCondition

    grid, extra = _noise(plan)
    steps = len(plan.schedule) - 1
    pinned = [_pinned_tokens(plan, i) for i in range(steps)] if noise_scale > 0 else []
    conditions = [LTXVideoCondition(image=Image.open(item.image), frame_index=item.frame_index,
                                    strength=item.strength) for item in plan.request.conditioning]
    states, mask, neg_states, neg_mask = _text(setup, plan)
    with script_noise([grid, *extra, *pinned]) as left:
        latent = setup.pipe(
            conditions=conditions, prompt_embeds=states, prompt_attention_mask=mask,
            negative_prompt_embeds=neg_states, negative_prompt_attention_mask=neg_mask,
            width=WIDTH, height=HEIGHT, num_frames=FRAMES, frame_rate=int(FPS),
            num_inference_steps=steps, timesteps=[1000.0 * t for t in TIMES],
            guidance_scale=plan.request.guidance, image_cond_noise_scale=noise_scale,
            output_type="latent", return_dict=False)[0]  # fmt: skip
    assert not left, f"diffusers drew {len(left)} fewer noise tensors than scripted"
    return latent


def _reference_latent(setup: Setup, path: Path) -> torch.Tensor:
    """An image's normalised posterior mean ``[1, C, 1, H', W']`` through diffusers' VAE."""
    pixels = torch.from_numpy(np.asarray(Image.open(path), dtype=np.float32))
    pixels = (pixels / 127.5 - 1.0).permute(2, 0, 1)[None, :, None]
    vae = setup.pipe.vae
    with torch.no_grad():
        z = vae.encode(pixels).latent_dist.mode()
    return setup.pipe._normalize_latents(z, vae.latents_mean, vae.latents_std)


def _pixel_coords(frames: int, height: int, width: int, frame: int = 0, *,
                  causal: bool) -> torch.Tensor:
    """The original's ``latent_to_pixel_coords`` (with the causal fix when ``causal``) plus
    ``frame``, time in seconds: ``[1, 3, F·H·W]``."""
    axes = [torch.arange(n, dtype=torch.float32) for n in (frames, height, width)]
    pixels = torch.stack(torch.meshgrid(*axes, indexing="ij")).flatten(1)
    pixels = pixels * torch.tensor([8.0, 32.0, 32.0])[:, None]
    if causal:
        pixels[0] = (pixels[0] + 1 - 8).clamp(min=0)
    pixels[0] += frame
    pixels[0] = pixels[0] * (1.0 / FPS)
    return pixels[None]


def _prepare_conditioning(setup: Setup, plan: GenerationPlan
                          ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The original's ``prepare_conditioning``: (tokens ``[1, L, C]``, coordinates
    ``[1, 3, L]``, mask ``[1, L]``), keyframe tokens before the grid's."""
    grid, extra_noise = _noise(plan)
    init, (_, _, frames, height, width) = grid.clone(), grid.shape
    grid_mask = torch.zeros(1, frames, height, width)
    extras, noises = [], iter(extra_noise)
    for item in plan.request.conditioning:
        latent = _reference_latent(setup, Path(item.image))
        if item.frame_index == 0:
            init[:, :, :1] = torch.lerp(init[:, :, :1], latent, item.strength)
            grid_mask[:, :1] = item.strength
            continue
        tokens = _patchify(torch.lerp(next(noises), latent, item.strength))
        extras.append((tokens, _pixel_coords(1, height, width, item.frame_index,
                                                     causal=setup.causal),
                       torch.full(tokens.shape[:2], item.strength)))
    tokens = torch.cat([*(e[0] for e in extras), _patchify(init)], dim=1)
    coords = torch.cat([*(e[1] for e in extras), _pixel_coords(frames, height, width,
                                                                      causal=setup.causal)],
                       dim=2)
    mask = torch.cat([*(e[2] for e in extras), grid_mask.flatten(1)], dim=1)
    return tokens, coords, mask


def _velocity(setup: Setup, plan: GenerationPlan, x: torch.Tensor, t_tok: torch.Tensor,
              coords: torch.Tensor) -> torch.Tensor:
    """CFG over diffusers' transformer: rows [uncond, cond], times in 1000ths."""
    states, mask, neg_states, neg_mask = _text(setup, plan)
    with torch.no_grad():
        v = setup.pipe.transformer(
            hidden_states=torch.cat([x, x]), encoder_hidden_states=torch.cat([neg_states, states]),
            timestep=torch.cat([t_tok, t_tok]) * 1000.0,
            encoder_attention_mask=torch.cat([neg_mask, mask]), num_frames=1, height=1, width=1,
            video_coords=torch.cat([coords, coords]), return_dict=False)[0]  # fmt: skip
    v_u, v_c = v.chunk(2)
    return v_u + plan.request.guidance * (v_c - v_u)


def _original_run(setup: Setup, plan: GenerationPlan, noise_scale: float = 0.0,
                  prepare: Callable[[Setup, GenerationPlan], tuple[torch.Tensor, ...]] | None
                  = None) -> torch.Tensor:
    """The original's loop (module docstring), Euler: the final grid ``[1, C, T', H', W']``;
    ``prepare`` stands for ``prepare_conditioning`` (default: images only)."""
    latents, coords, mask = (prepare or _prepare_conditioning)(setup, plan)
    init_latents, times = latents.clone(), torch.tensor(plan.schedule)
    for i, t in enumerate(plan.schedule[:-1]):
        if noise_scale > 0:
            noised = init_latents + noise_scale * _pinned_tokens(plan, i) * t**2
            latents = torch.where((mask > 1.0 - T_EPS)[..., None], noised, latents)
        t_tok = torch.minimum(torch.full_like(mask, t), 1.0 - mask)
        v = _velocity(setup, plan, latents, t_tok, coords)
        lower = times[:, None, None] * (times[:, None, None] < t_tok[None] - T_EPS)
        stepped = latents - (t_tok - lower.max(dim=0).values)[..., None] * v
        latents = torch.where((t - T_EPS < 1.0 - mask)[..., None], stepped, latents)
    b, c, frames, height, width = plan.latent_shape
    grid = latents[:, latents.shape[1] - frames * height * width:]
    return grid.transpose(1, 2).reshape(b, c, frames, height, width)


def _studio(setup: Setup, request: GenerationRequest) -> tuple[GenerationPlan, torch.Tensor]:
    plan = plan_generation(setup.model, request)
    return plan, sample_plan(setup.model, plan)


@pytest.mark.parametrize("strength", [1.0, 0.6])
def test_first_frame_run_matches_diffusers(setup: Setup, strength: float) -> None:
    """Image-to-video with frame 0 pinned (or soft): where diffusers and the original agree."""
    plan, ours = _studio(setup, _request(setup, ((0, strength),)))
    assert plan.appended == ()
    assert _rel(ours, _diffusers_run(setup, plan)) < TOLERANCE
    assert _rel(ours, _original_run(setup, plan)) < TOLERANCE
    pinned = torch.equal(ours[:, :, 0], _reference_latent(setup, setup.images[0])[:, :, 0])
    assert pinned == (strength == 1.0)


@pytest.mark.parametrize("frame", [8, 13, 16])
def test_two_keyframes_match_the_original_and_diffusers(setup: Setup, frame: int) -> None:
    """Frame 0 at strength 1 and a later frame appended at 0.5, against both oracles."""
    plan, ours = _studio(setup, _request(setup, ((0, 1.0), (frame, 0.5))))
    assert plan.appended == ((frame, 1),) and plan.state_shape[2] == plan.latent_shape[2] + 1
    assert _rel(ours, _original_run(setup, plan)) < TOLERANCE
    assert _rel(ours, _diffusers_run(setup, plan)) < TOLERANCE


def test_the_comparison_sees_the_keyframe(setup: Setup) -> None:
    """Moving the appended keyframe (8 → 16) or dropping it changes the run by far more than
    the tolerance: a studio that misplaced or lost it would fail the parity tests."""
    plan, at_8 = _studio(setup, _request(setup, ((0, 1.0), (8, 0.5))))
    _, at_16 = _studio(setup, _request(setup, ((0, 1.0), (16, 0.5))))
    _, alone = _studio(setup, _request(setup, ((0, 1.0),)))
    assert _rel(at_16, at_8) > 10 * TOLERANCE and _rel(alone, at_8) > 10 * TOLERANCE


def test_reference_noise_matches_the_original(setup: Setup) -> None:
    """``reference_noise`` 0.15: the pinned frame re-noised before every step (noise drawn as
    the studio draws it, ``pinned_noise_seed``), against the original loop and diffusers."""
    plan, ours = _studio(setup, _request(setup, ((0, 1.0), (8, 0.5)), reference_noise=0.15))
    assert plan.reference_noise == 0.15
    original = _original_run(setup, plan, noise_scale=0.15)
    assert _rel(ours, original) < TOLERANCE
    assert _rel(ours, _diffusers_run(setup, plan, noise_scale=0.15)) < TOLERANCE
    assert _rel(_original_run(setup, plan), original) > 10 * TOLERANCE


def test_appended_keyframes_are_dropped_before_decoding(setup: Setup) -> None:
    """The sampled state holds T' + 1 frames; the latent and the video the requested ones."""
    request = _request(setup, ((0, 1.0), (8, 0.5)))
    states = []
    output = generate(setup.model, request, on_step=lambda info: states.append(info.x.shape))
    plan = output.plan
    assert states and all(shape[2] == plan.latent_shape[2] + 1 for shape in states)
    assert tuple(output.latent.shape) == plan.latent_shape
    assert output.video is not None and output.video.shape == (FRAMES, HEIGHT, WIDTH, 3)
    _, again = _studio(setup, request)
    assert torch.equal(output.latent, again)



@pytest.fixture(scope="module")
def legacy(setup: Setup, tmp_path_factory: pytest.TempPathFactory) -> Setup:
    """The same weights as a 0.9.1 single file: no causal temporal positions."""
    path = write_single_file_set(tmp_path_factory.mktemp("ltx_legacy") / "single", "0.9.1")
    model = family("ltx").load(scan([path.parent])[0], torch.device("cpu"), torch.float32)
    assert not model.denoiser.transformer.config.causal_temporal_positioning
    return replace(setup, model=model, causal=False)


def test_non_causal_set_follows_the_original_not_diffusers(legacy: Setup) -> None:
    """0.9.1 weights: the original places tokens without the causal fix, as the studio does;
    diffusers' ``LTXConditionPipeline`` applies it anyway (module docstring) and differs."""
    plan, ours = _studio(legacy, _request(legacy, ((0, 1.0), (8, 0.5))))
    assert _rel(ours, _original_run(legacy, plan)) < TOLERANCE
    assert _rel(ours, _diffusers_run(legacy, plan)) > 10 * TOLERANCE
