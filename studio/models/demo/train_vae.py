"""Stage 1 of the demo recipe: train the small Wan 2.1 VAE on crops of procedural clips.

Convolutions are translation-equivariant and causal in time, so the VAE trains on small random
crops (centred near the shape; the schedule is :data:`VAE_PHASES`) and still encodes whole
17 × 128 × 128 clips. Loss: L1 + MSE on pixels in [−1, 1], plus a small penalty on the latent's
magnitude; the decoder sees the latent with a little noise so it tolerates the DiT's imprecision.
"""

from __future__ import annotations

import copy
import dataclasses
import logging
import math
import random
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from studio.errors import CheckpointError
from studio.models.demo.checkpoint import load_checkpoint, save_checkpoint, update_ema
from studio.models.demo.data import FRAMES, SIZE, random_spec, render
from studio.models.demo.vocabulary import BACKGROUNDS, COLOURS, DIRECTIONS, SHAPES
from studio.models.wan.vae import CausalVideoVAE, WanVAEConfig
from studio.models.wan.vae_blocks import AttentionBlock, FeatureCache, ResidualBlock
from studio.models.wan.vae_factory import build_vae

log = logging.getLogger(__name__)

STAGE = "vae"


@dataclass(frozen=True, slots=True)
class VaePhase:
    """A span of VAE training steps that all draw the same kind of batch.

    Attributes:
        until: the phase covers the steps before this one (and after the previous phase).
        frames: frames per training crop (1 + 4k; 17 = whole clips).
        size: crop size in pixels (square).
        batch: crops per step.
        train_encoder: whether the encoder (and ``conv1``) learns; when not, it holds its EMA
            weights and only the decoder trains, so the latents stay fixed.
        frame_steps: when > 1, only one step in ``frame_steps`` draws clips; the others draw
            ``2 × batch`` single frames (cheaper; the first-frame path image-to-video relies on).
    """

    until: int
    frames: int
    size: int = 48
    batch: int = 4
    train_encoder: bool = False
    frame_steps: int = 1


VAE_PHASES = (
    VaePhase(until=100, frames=5, train_encoder=True, frame_steps=3),
    VaePhase(until=3300, frames=5, frame_steps=3),
    VaePhase(until=16100, frames=5),
    VaePhase(until=16200, frames=17),
    VaePhase(until=17400, frames=17, train_encoder=True),
)
"""The demo VAE's schedule. The first phases (short crops, encoder frozen early) left a decoder
that fails after two latent frames (20 dB from pixel frame 8 on, 55 % of motions still readable
after a round trip), so the last phase trains encoder and decoder together on whole 17-frame
clips: after it, ~33 dB on every frame and the right colour and direction on 20 of 20 held-out
clips after a round trip. (The shipped encoder ran this last phase from the earlier 16,200-step
weights with a fresh optimizer state; a run from scratch carries the optimizer through.)"""

DECODER_PHASES = (
    VaePhase(until=6000, frames=5, frame_steps=3),
    VaePhase(until=9000, frames=5),
    VaePhase(until=10000, frames=9),
    VaePhase(until=11000, frames=17),
)
"""The decoder stage's schedule (:func:`train_vae` with a given encoder): a new decoder learns to
decode a fixed encoder's latents on cheap 5-frame crops first, then on 9- and 17-frame crops.
Five frames are two latent frames, the first and the second (whose temporal upsampling starts
from zeros); every later latent frame decodes from the features cached from the one before, a
steady state that only longer crops teach (after 4,100 steps on 5-frame crops, 9 of 60 rendered
clips stayed whole through a round trip)."""


@dataclass(frozen=True, slots=True)
class VaeRecipe:
    """Hyper-parameters of the VAE stage."""

    phases: tuple[VaePhase, ...] = VAE_PHASES
    lr: float = 1e-3
    warmup: int = 10
    ema_decay: float = 0.99
    latent_noise: float = 0.05
    """Noise added to μ before decoding, as a fraction of the batch's latent std."""
    latent_penalty: float = 1e-4
    checkpoint_every: int = 25
    lr_final: float | None = None
    """When set, the rate follows a half cosine from ``lr`` (after the warm-up) to this value at
    the last step; when None it stays at ``lr``."""

    @property
    def steps(self) -> int:
        return self.phases[-1].until

    @property
    def encoder_steps(self) -> int:
        """The step after the last one that trains the encoder: the latents are fixed from here."""
        return max((p.until for p in self.phases if p.train_encoder), default=0)

    def learning_rate(self, step: int) -> float:
        """The rate of ``step``: linear warm-up, then constant or a half cosine to ``lr_final``."""
        if step < self.warmup:
            return self.lr * (step + 1) / self.warmup
        if self.lr_final is None:
            return self.lr
        progress = min(1.0, (step - self.warmup) / max(1, self.steps - self.warmup))
        cosine = 0.5 * (1.0 + math.cos(math.pi * progress))
        return self.lr_final + (self.lr - self.lr_final) * cosine

    def phase(self, step: int) -> VaePhase:
        """The phase that ``step`` belongs to (the last one for steps past the end)."""
        return next((p for p in self.phases if step < p.until), self.phases[-1])

    def truncated(self, steps: int) -> VaeRecipe:
        """The same schedule cut (or the last phase extended) to ``steps`` steps in all."""
        last = self.phase(steps - 1)
        kept = self.phases[: self.phases.index(last)]
        return dataclasses.replace(self, phases=(*kept, dataclasses.replace(last, until=steps)))


DECODER_RECIPE = VaeRecipe(phases=DECODER_PHASES, lr_final=1e-4)
"""The decoder stage: the encoder stays frozen throughout (no phase trains it)."""


def crop_batch(rng: random.Random, batch: int, frames: int, size: int) -> torch.Tensor:
    """Random crops ``[batch, 3, frames, size, size]`` in [−1, 1], each centred near its shape."""
    crops = []
    for _ in range(batch):
        colour = rng.choice(list(COLOURS))
        background = rng.choice([b for b in BACKGROUNDS if b != colour])
        spec = random_spec(
            rng, rng.choice(SHAPES), colour, rng.choice(list(DIRECTIONS)), background
        )
        start = rng.randrange(FRAMES - frames + 1)
        cx, cy = spec.centre(start + frames // 2)
        half, limit = size // 2, SIZE - size
        x0 = min(max(int(cx) - half + rng.randint(-12, 12), 0), limit)
        y0 = min(max(int(cy) - half + rng.randint(-12, 12), 0), limit)
        video = render(spec)[start : start + frames]
        crops.append(video[:, y0 : y0 + size, x0 : x0 + size])
    pixels = torch.from_numpy(np.stack(crops)).permute(0, 4, 1, 2, 3).float()
    return pixels / 127.5 - 1.0


def step_batch(seed: int, step: int, recipe: VaeRecipe) -> torch.Tensor:
    """The batch of ``step``: its phase's clips, or single frames on a phase's frame steps."""
    rng = random.Random(f"vae-{seed}-{step}")
    phase = recipe.phase(step)
    if phase.frame_steps > 1 and step % phase.frame_steps:
        return crop_batch(rng, 2 * phase.batch, 1, phase.size)
    return crop_batch(rng, phase.batch, phase.frames, phase.size)


def init_vae(config: WanVAEConfig, seed: int) -> CausalVideoVAE:
    """A VAE initialised so that the input reaches the output from the first step.

    PyTorch's default convolution init shrinks the signal at every layer while its random biases
    add constants, so a fresh Wan VAE of this depth ignores its input and learns very slowly.
    Here: weights ``N(0, 1/fan_in)``, zero biases, and the last convolution of every residual
    branch (and the attention output) zeroed, so each block starts as the identity.
    """
    torch.manual_seed(seed)
    model = build_vae(config)
    for module in model.modules():
        if isinstance(module, nn.Conv2d | nn.Conv3d):
            nn.init.normal_(module.weight, std=module.weight[0].numel() ** -0.5)
            nn.init.zeros_(module.bias)
    for module in model.modules():
        if isinstance(module, ResidualBlock):
            nn.init.zeros_(module.residual[6].weight)
        elif isinstance(module, AttentionBlock):
            nn.init.zeros_(module.proj.weight)
    return model


def set_encoder_training(model: CausalVideoVAE, ema: CausalVideoVAE, train: bool) -> None:
    """Let the encoder (and ``conv1``) learn, or freeze it at its EMA weights."""
    for name in ("encoder", "conv1"):
        trained, averaged = getattr(model, name), getattr(ema, name)
        if not train:
            trained.load_state_dict(averaged.state_dict())
        trained.requires_grad_(train)


def reconstruct(
    vae: CausalVideoVAE, pixels: torch.Tensor, noise: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """Differentiable encode → μ (+ noise) → decode over a whole clip in one piece.

    Returns ``(reconstruction [B, 3, T, H, W], μ [B, z, T', H', W'])``.
    """
    z = vae.config.z_dim
    h = vae.encoder(pixels, FeatureCache())
    mu = F.conv3d(h, vae.conv1.weight[:z], vae.conv1.bias[:z])
    latent = mu + noise * mu.detach().std() * torch.randn_like(mu) if noise else mu
    return vae.decoder(vae.conv2(latent), FeatureCache()), mu


ENCODER_PARTS = ("encoder.", "conv1.")
"""Key prefixes of the weights that make the latents: the encoder and its μ/log σ² projection."""


def load_encoder(model: CausalVideoVAE, weights: dict[str, torch.Tensor]) -> None:
    """Copy every ``encoder.*`` / ``conv1.*`` weight into ``model``; the decoder is untouched."""
    mine = {k for k in model.state_dict() if k.startswith(ENCODER_PARTS)}
    given = {k for k in weights if k.startswith(ENCODER_PARTS)}
    if mine != given:
        raise CheckpointError(
            f"the given encoder does not fit the VAE: {len(mine - given)} weights missing, "
            f"{len(given - mine)} unexpected (e.g. {sorted(mine ^ given)[:3]})",
            "take the encoder from a demo VAE of the same encoder width",
        )
    model.load_state_dict({k: weights[k] for k in given}, strict=False)


def train_vae(
    out_dir: Path,
    config: WanVAEConfig,
    *,
    recipe: VaeRecipe = VaeRecipe(),
    resume: bool = True,
    device: torch.device,
    seed: int = 0,
    stage: str = STAGE,
    encoder: dict[str, torch.Tensor] | None = None,
) -> CausalVideoVAE:
    """Train (or resume) the VAE; returns the EMA model (eval mode, on ``device``).

    With ``encoder`` (the ``encoder.*`` and ``conv1.*`` weights of a trained VAE of the same
    encoder architecture) the new VAE starts from that encoder: with a recipe whose phases never
    train the encoder (:data:`DECODER_RECIPE`) only a new decoder learns, and the latents, hence a
    DiT trained on them, stay valid. ``stage`` names the checkpoint files.
    """
    model = init_vae(config, seed)
    if encoder is not None:
        load_encoder(model, encoder)
    model = model.to(device).train().requires_grad_(True)
    ema = copy.deepcopy(model).requires_grad_(False)
    optimizer = torch.optim.AdamW(model.parameters(), lr=recipe.lr, betas=(0.9, 0.99),
                                  weight_decay=0.0)  # fmt: skip
    state = load_checkpoint(out_dir, stage, model, ema, optimizer) if resume else None
    start = state.step if state else 0
    bar = tqdm(range(start, recipe.steps), initial=start, total=recipe.steps, desc=stage,
               dynamic_ncols=True)  # fmt: skip
    for step in bar:
        set_encoder_training(model, ema, recipe.phase(step).train_encoder)
        torch.manual_seed(hash((seed, step)) & 0xFFFFFFFF)
        pixels = step_batch(seed, step, recipe).to(device)
        for group in optimizer.param_groups:
            group["lr"] = recipe.learning_rate(step)
        recon, mu = reconstruct(model, pixels, recipe.latent_noise)
        l1 = (recon - pixels).abs().mean()
        mse = (recon - pixels).square().mean()
        loss = l1 + mse + recipe.latent_penalty * mu.square().mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        update_ema(ema, model, recipe.ema_decay if step > recipe.warmup else 0.0)
        psnr = 10 * torch.log10(4.0 / mse.detach().clamp(min=1e-10)).item()
        bar.set_postfix(loss=f"{loss.item():.4f}", psnr=f"{psnr:.1f}")
        log.info(
            "%s step %d loss %.5f psnr %.2f dB (%s)",
            stage,
            step,
            loss.item(),
            psnr,
            "frames" if pixels.shape[2] == 1 else "clips",
        )
        if (step + 1) % recipe.checkpoint_every == 0 or step + 1 in (
            recipe.steps,
            recipe.encoder_steps,
        ):
            save_checkpoint(out_dir, stage, step + 1, model, ema, optimizer, {"psnr": psnr})
    bar.close()
    return ema.eval()
