"""Training pieces of the demo recipe: checkpoints, latent augmentation, preview fit, a DiT step."""

from __future__ import annotations

import copy
import json
import random

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

from studio.engine.model import PreviewFactors
from studio.engine.training import sample_timesteps
from studio.errors import CheckpointError, StudioError
from studio.models.demo.checkpoint import (
    load_checkpoint,
    load_ema_weights,
    save_checkpoint,
    update_ema,
)
from studio.models.demo.config import DIT_CONFIG, DIT_FILE, VAE_ARCH, VAE_FILE, DemoConfig
from studio.models.demo.data import ClipSpec, render
from studio.models.demo.latents import (
    RING,
    LatentDataset,
    _pixel_targets,
    fit_preview,
    shape_box,
    shift_latent,
)
from studio.models.demo.loader import demo_model_dir
from studio.models.demo.train import (
    ORIGIN_FILE,
    continue_from_model,
    exported_steps,
    stage_recipes,
)
from studio.models.demo.train_dit import (
    Batch,
    DitRecipe,
    LrCycle,
    flow_step_loss,
    init_dit,
    learning_rate,
    make_batch,
)
from studio.models.demo.train_vae import VaeRecipe, crop_batch, step_batch
from studio.models.wan.dit import WanDiT


def test_checkpoint_round_trip_restores_weights_ema_and_optimizer(tmp_path) -> None:
    model = torch.nn.Linear(3, 2)
    ema = copy.deepcopy(model)
    optimizer = torch.optim.AdamW(model.parameters(), lr=0.1)
    model(torch.ones(4, 3)).sum().backward()
    optimizer.step()
    update_ema(ema, model, 0.5)
    save_checkpoint(tmp_path, "stage", 7, model, ema, optimizer, {"loss": 1.5})
    model2, ema2 = torch.nn.Linear(3, 2), torch.nn.Linear(3, 2)
    optimizer2 = torch.optim.AdamW(model2.parameters(), lr=0.1)
    state = load_checkpoint(tmp_path, "stage", model2, ema2, optimizer2)
    assert state is not None and state.step == 7 and state.info == {"loss": 1.5}
    torch.testing.assert_close(model2.weight, model.weight)
    torch.testing.assert_close(ema2.weight, ema.weight)
    exp_avg = optimizer.state_dict()["state"][0]["exp_avg"]
    torch.testing.assert_close(optimizer2.state_dict()["state"][0]["exp_avg"], exp_avg)
    assert load_checkpoint(tmp_path, "other", model2, ema2) is None


def test_ema_update_is_a_lerp() -> None:
    model, ema = torch.nn.Linear(2, 2), torch.nn.Linear(2, 2)
    before = ema.weight.detach().clone()
    update_ema(ema, model, 0.9)
    torch.testing.assert_close(ema.weight, 0.9 * before + 0.1 * model.weight.detach())


def test_shift_latent_moves_only_background_cells() -> None:
    spec = ClipSpec("circle", "red", "still", "black", 40.0, 40.0, 12.0, 0.0)
    box = torch.tensor(shape_box(spec))
    latent = torch.zeros(2, 5, 16, 16)
    x0, y0, x1, y1 = box.tolist()
    latent[:, :, y0 : y1 + 1, x0 : x1 + 1] = 1.0  # the shape's footprint
    latent[..., :RING, :] = latent[..., -RING:, :] = 2.0  # the border ring
    latent[..., :, :RING] = latent[..., :, -RING:] = 2.0
    moved = [shift_latent(latent, box, random.Random(i)) for i in range(20)]
    assert any(not torch.equal(m, latent) for m in moved)
    for m in moved:
        assert m.sum() == latent.sum()  # nothing is lost: the footprint stayed inside
        ring = torch.ones(16, 16, dtype=torch.bool)
        ring[RING:-RING, RING:-RING] = False
        assert torch.equal(m[..., ring], latent[..., ring])


def test_preview_fit_recovers_a_linear_map() -> None:
    rng = np.random.default_rng(0)
    latents = torch.from_numpy(rng.normal(size=(3, 4, 2, 2, 2))).float()
    factors = rng.normal(size=(4, 3))
    targets = latents.permute(0, 2, 3, 4, 1).numpy() @ factors + np.array([0.1, -0.2, 0.3])
    preview = fit_preview(latents, targets)
    np.testing.assert_allclose(np.array(preview.rgb_factors), factors, atol=1e-4)
    np.testing.assert_allclose(preview.bias, [0.1, -0.2, 0.3], atol=1e-4)


def test_pixel_targets_average_the_frames_of_each_latent_frame() -> None:
    video = render(ClipSpec("square", "white", "right", "black", 30.0, 64.0, 12.0, 3.0))
    targets = _pixel_targets(video, 5, 8)
    assert targets.shape == (5, 16, 16, 3)
    expected = video[5:9, 8:16, 24:32].astype(np.float32).mean() / 127.5 - 1.0
    assert targets[2, 1, 3].mean() == pytest.approx(expected, abs=1e-5)


def test_vae_batches_are_deterministic_and_shaped() -> None:
    recipe = VaeRecipe()
    first = recipe.phases[0]
    clips, frames = step_batch(0, 0, recipe), step_batch(0, 1, recipe)
    assert clips.shape == (first.batch, 3, first.frames, first.size, first.size)
    assert frames.shape == (2 * first.batch, 3, 1, first.size, first.size)
    last = recipe.phases[-1]
    whole = step_batch(0, recipe.steps - 1, recipe)
    assert whole.shape == (last.batch, 3, last.frames, last.size, last.size)
    assert torch.equal(step_batch(0, 1, recipe), frames)
    assert clips.min() >= -1.0 and clips.max() <= 1.0
    crops = crop_batch(random.Random(0), 16, 1, 48)
    lit = (crops - crops[..., :1, :1]).abs().amax(dim=(1, 2, 3, 4)) > 0.2
    assert lit.float().mean() > 0.8  # crops are centred near the shape


class _Recorder(torch.nn.Module):
    """A stand-in denoiser: records its inputs and predicts ``value`` at latent frame ``frame``."""

    def __init__(self, value: float = 0.0, frame: int = 0) -> None:
        super().__init__()
        self.value, self.frame, self.inputs = value, frame, None

    def velocity(self, x, t_tok, context):
        self.inputs = (x, t_tok)
        v = torch.zeros_like(x)
        v[:, :, self.frame] = self.value
        return v


def test_dit_loss_gives_frame_0_clean_and_leaves_it_out() -> None:
    x0 = torch.randn(3, 16, 5, 4, 4)
    batch = Batch(x0, torch.randn(3, 8, 384), torch.tensor([True, False, True]))
    recipe = DitRecipe()
    recorder = _Recorder()
    base = flow_step_loss(recorder, batch, recipe, torch.Generator().manual_seed(1))
    xt, t_tok = recorder.inputs
    t = sample_timesteps(3, recipe.shift, torch.Generator().manual_seed(1))
    for i, first in enumerate(batch.first_frame.tolist()):
        assert torch.equal(t_tok[i, 1:], torch.full((4, 4, 4), t[i].item()))
        assert torch.equal(t_tok[i, 0], torch.full((4, 4), 0.0 if first else t[i].item()))
        assert torch.equal(xt[i, :, 0], x0[i, :, 0]) == first
    # A wild prediction at frame 0 costs nothing in first-frame samples, and costs elsewhere.
    only_first = Batch(x0, batch.context, torch.ones(3, dtype=torch.bool))
    generator = torch.Generator().manual_seed(1)
    assert flow_step_loss(_Recorder(1e3, 0), only_first, recipe, generator) == pytest.approx(
        flow_step_loss(_Recorder(), only_first, recipe, torch.Generator().manual_seed(1)).item()
    )
    generator = torch.Generator().manual_seed(1)
    assert flow_step_loss(_Recorder(1e3, 0), batch, recipe, generator) > 100 * base
    generator = torch.Generator().manual_seed(1)
    assert flow_step_loss(_Recorder(1e3, 1), only_first, recipe, generator) > 100 * base


def test_dit_loss_runs_on_the_batch_device() -> None:
    """Noise comes from a CPU generator; everything the model sees is on the batch's device.

    The meta device stands in for CUDA here: any CPU tensor mixed in raises, as it would there.
    """
    with torch.device("meta"):
        model = WanDiT(DIT_CONFIG)
        x0, context = torch.zeros(2, 16, 5, 4, 4), torch.zeros(2, 8, 384)
    batch = Batch(x0, context, torch.tensor([True, False]))  # make_batch leaves the mask on the CPU
    loss = flow_step_loss(model, batch, DitRecipe(), torch.Generator().manual_seed(0))
    assert loss.device.type == "meta" and loss.shape == ()


def test_config_round_trip(tmp_path) -> None:
    config = DemoConfig(dit=DIT_CONFIG, vae=VAE_ARCH)
    config.save(tmp_path)
    assert DemoConfig.load(tmp_path) == config


def test_vae_phases_cover_every_step_and_truncate() -> None:
    recipe = VaeRecipe()
    ends = [p.until for p in recipe.phases]
    assert ends == sorted(ends) and recipe.steps == ends[-1]
    assert recipe.phase(0) is recipe.phases[0]
    assert recipe.phase(ends[0]) is recipe.phases[1]
    assert recipe.phase(recipe.steps + 5) is recipe.phases[-1]
    assert recipe.encoder_steps == max(p.until for p in recipe.phases if p.train_encoder)
    short = recipe.truncated(150)
    assert [p.until for p in short.phases] == [100, 150] and short.steps == 150
    assert short.phases[1].frames == recipe.phases[1].frames and short.encoder_steps == 100
    longer = recipe.truncated(recipe.steps + 10)
    assert longer.steps == recipe.steps + 10 and len(longer.phases) == len(recipe.phases)


def test_dit_learning_rate_warms_up_then_decays_along_a_half_cosine_in_every_cycle() -> None:
    cycles = (LrCycle(1050, 1e-3, 1e-4), LrCycle(2050, 4e-4, 4e-5))
    recipe = DitRecipe(cycles=cycles, warmup=50)
    assert recipe.steps == 2050
    assert learning_rate(recipe, 0) == pytest.approx(2e-5)
    assert learning_rate(recipe, 49) == pytest.approx(1e-3)
    assert learning_rate(recipe, 50) == pytest.approx(1e-3)
    assert learning_rate(recipe, 550) == pytest.approx(5.5e-4)  # half way: the mean
    assert learning_rate(recipe, 1049) == pytest.approx(1e-4, rel=1e-2)
    assert learning_rate(recipe, 1050) == pytest.approx(8e-6)  # the restart warms up again
    assert learning_rate(recipe, 1099) == pytest.approx(4e-4)
    assert learning_rate(recipe, 1575) == pytest.approx(2.2e-4, rel=1e-2)
    assert learning_rate(recipe, 2049) == pytest.approx(4e-5, rel=1e-2)
    for start, end in ((50, 1050), (1100, 2050)):
        decay = [learning_rate(recipe, s) for s in range(start, end)]
        assert all(a >= b for a, b in zip(decay, decay[1:], strict=False))


def test_dit_recipe_truncates_to_fewer_or_more_steps() -> None:
    recipe = DitRecipe()
    first = recipe.cycles[0]
    short = recipe.truncated(100)
    assert short.steps == 100 and short.cycles == (LrCycle(100, first.peak, first.final),)
    longer = recipe.truncated(recipe.steps + 10)
    assert longer.steps == recipe.steps + 10 and longer.cycles[:-1] == recipe.cycles[:-1]
    assert recipe.cycle(first.until) == (first.until, recipe.cycles[1])


def test_each_cycle_draws_batches_of_its_own_size() -> None:
    recipe = DitRecipe(cycles=(LrCycle(10, 1e-3, 1e-4), LrCycle(20, 4e-4, 4e-5, batch=3)))
    assert [recipe.cycle(step)[1].batch for step in (0, 9, 10, 19)] == [16, 16, 3, 3]
    assert recipe.truncated(30).cycles[-1].batch == 3
    n, k = 4, 2
    data = LatentDataset(
        latents=torch.arange(n, dtype=torch.float32).view(n, 1, 1, 1, 1).expand(n, 16, 5, 6, 6),
        contexts=torch.arange(n * k, dtype=torch.float16).view(n * k, 1, 1).expand(n * k, 3, 384),
        empty=torch.full((1, 3, 384), -1.0),
        boxes=torch.tensor([[2, 2, 3, 3]] * n),
        mean=torch.zeros(16),
        std=torch.ones(16),
        preview=PreviewFactors(((0.0, 0.0, 0.0),) * 16, (0.0, 0.0, 0.0)),
    )
    batch = make_batch(data, recipe, random.Random(0), 3)
    assert batch.x0.shape == (3, 16, 5, 6, 6) and batch.context.shape == (3, 3, 384)
    assert batch.first_frame.shape == (3,) and batch.first_frame.dtype == torch.bool
    for x0, context in zip(batch.x0, batch.context, strict=True):
        clip, caption = int(x0.amax()), int(context[0, 0])  # a shift moves, never changes, values
        assert caption == -1 or caption // k == clip  # the clip's own caption, or the empty one


def test_training_continues_from_an_exported_model(tmp_path) -> None:
    source = demo_model_dir()
    steps = exported_steps(source)
    continue_from_model(tmp_path, source)
    model, ema = init_dit(DIT_CONFIG, seed=1), init_dit(DIT_CONFIG, seed=2)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3, betas=(0.9, 0.99))
    state = load_checkpoint(tmp_path, "dit", model, ema, optimizer)
    assert state is not None and state.step == steps["dit"]
    shipped = load_file(str(source / DIT_FILE))
    for module in (model, ema):
        assert all(torch.equal(v, shipped[k]) for k, v in module.state_dict().items())
    assert not optimizer.state  # AdamW starts afresh, with the recipe's own settings
    assert optimizer.param_groups[0]["betas"] == (0.9, 0.99)
    assert not (tmp_path / "dit.optim.pt").exists()
    vae = load_ema_weights(tmp_path, "vae")
    assert all(torch.equal(v, vae[k]) for k, v in load_file(str(source / VAE_FILE)).items())
    assert json.loads((tmp_path / "vae.json").read_text())["step"] == steps["vae"]
    origin = json.loads((tmp_path / ORIGIN_FILE).read_text())
    assert origin["steps"] == steps
    with pytest.raises(StudioError, match="already holds training checkpoints"):
        continue_from_model(tmp_path, source)


def test_continuing_needs_an_export_with_its_step_counts(tmp_path) -> None:
    model_dir = tmp_path / "model"
    model_dir.mkdir()
    (model_dir / "config.json").write_text((demo_model_dir() / "config.json").read_text())
    save_file({"x": torch.zeros(1)}, str(model_dir / DIT_FILE))
    with pytest.raises(CheckpointError, match="records no training step counts"):
        continue_from_model(tmp_path / "out", model_dir)


def test_the_shipped_model_was_trained_to_the_current_recipe() -> None:
    assert exported_steps(demo_model_dir()) == {"vae": VaeRecipe().steps, "dit": DitRecipe().steps}


def test_steps_cut_only_the_stages_run() -> None:
    full_vae, full_dit = VaeRecipe(), DitRecipe()
    assert stage_recipes("all", None) == (full_vae, full_dit)
    vae, dit = stage_recipes("all", 150)
    assert vae.steps == 150 and dit.steps == 150
    vae, dit = stage_recipes("dit", full_dit.steps + 10)
    assert vae == full_vae and dit.steps == full_dit.steps + 10
