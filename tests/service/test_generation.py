"""GenerationService end to end on the tiny model: outputs, events, saved latents, decode again,
and the out-of-memory decode that falls back to spatial tiles."""

from __future__ import annotations

import json
from pathlib import Path

import av
import numpy as np
import pytest
import torch

from studio.engine.decode import TilePlan, decode_tiled, fallback_plans
from studio.engine.pipeline import generate
from studio.errors import MediaError, OutOfMemory
from studio.media.image import video_to_uint8
from studio.media.latent_file import load_latent
from studio.media.video import read_video, read_video_metadata, write_video
from studio.service.generation import (
    GenerationService,
    PreviewEvent,
    ProgressEvent,
    StageEvent,
)
from tests.service.tiny_model import load_tiny, tiny_request


def partial_files(*folders: Path) -> list[Path]:
    return [p for folder in folders for p in folder.rglob("*.partial")]


def _luma(frames: np.ndarray) -> np.ndarray:
    """BT.601 brightness of uint8 RGB frames, as float."""
    return frames.astype(float) @ np.array([0.299, 0.587, 0.114])


def test_run_writes_latent_video_and_recipe_that_match_an_independent_generate(
    service: GenerationService, tiny_dir: Path, _studio_home: Path, tmp_path: Path
) -> None:
    request = tiny_request()
    events: list[object] = []
    result = service.run("job1", request, events.append)

    reference = generate(load_tiny(tiny_dir), request)
    latent, recipe = load_latent(result.latent_path)
    assert result.latent_path == _studio_home / "jobs" / "job1" / "latent.safetensors"
    assert torch.equal(latent, reference.latent)
    frames, fps, metadata = read_video(result.video_path)
    assert frames.shape == (9, 24, 32, 3) and fps == pytest.approx(8.0)
    # H.264 is lossy and halves the colour resolution (yuv420p): PyAV, an independent decoder,
    # must find the reference frames' brightness within the encoder's error (CRF 18), and the
    # studio's own reader must agree with PyAV exactly.
    with av.open(str(result.video_path)) as container:
        decoded = np.stack([f.to_ndarray(format="rgb24") for f in container.decode(video=0)])
    assert decoded.shape == reference.video.shape
    assert np.abs(_luma(decoded) - _luma(reference.video)).mean() < 4.0
    assert np.array_equal(frames, decoded)
    assert metadata == json.loads(result.recipe_path.read_text())
    assert metadata == json.loads((_studio_home / "jobs" / "job1" / "recipe.json").read_text())
    assert metadata["request"] == request.to_dict() == recipe["request"]
    assert not (_studio_home / "jobs" / "job1" / "sampling.safetensors").exists()
    assert result.frames == 9 and result.resumed_from_step == 0
    assert set(result.timings) == {"load", "encode", "sample", "decode", "export"}
    assert partial_files(_studio_home, result.video_path.parent) == []

    stages = [e.stage for e in events if isinstance(e, StageEvent)]
    assert stages == ["loading", "encoding", "sampling", "decoding", "exporting"]
    steps = [e.step for e in events if isinstance(e, ProgressEvent)]
    assert steps == [1, 2, 3, 4, 5, 6]
    previews = [e for e in events if isinstance(e, PreviewEvent)]
    assert len(previews) == 6 and previews[0].frames.shape == (3, 6, 8, 3)
    assert previews[0].frames.dtype == np.uint8


def test_decode_again_from_job_id_or_latent_path_makes_the_same_frames(
    service: GenerationService, tiny_dir: Path, tmp_path: Path
) -> None:
    first = service.run("job2", tiny_request())
    original = first.video_path.read_bytes()
    denoiser = service.cache.loaded.denoiser
    calls = denoiser.calls
    again = service.decode_again("job2")
    by_path = service.decode_again(first.latent_path, output_path=tmp_path / "p.mp4", fps=12.0)
    assert denoiser.calls == calls  # no sampling
    assert again.video_path != first.video_path and first.video_path.read_bytes() == original
    frames0, _, meta0 = read_video(first.video_path)
    frames1, _, meta1 = read_video(again.video_path)
    frames2, fps2, meta2 = read_video(by_path.video_path)
    assert np.array_equal(frames0, frames1)
    # Another frame rate changes x264's rate control, so compare with the same export at 12 fps.
    latent, _ = load_latent(first.latent_path)
    pixels = video_to_uint8(load_tiny(tiny_dir).vae.decode(latent))
    write_video(tmp_path / "ref12.mp4", pixels, 12.0)
    assert np.array_equal(frames2, read_video(tmp_path / "ref12.mp4")[0])
    assert meta1["request"] == meta0["request"] and meta1["schedule"] == meta0["schedule"]
    assert fps2 == pytest.approx(12.0) and meta2["request"]["fps"] == 12.0


def test_decode_again_refuses_missing_damaged_or_foreign_latents(
    service: GenerationService, _studio_home: Path, tmp_path: Path
) -> None:
    with pytest.raises(MediaError, match="does not exist"):
        service.decode_again("nosuchjob")
    with pytest.raises(MediaError, match="neither a job id"):
        service.decode_again("../../etc")
    result = service.run("job3", tiny_request())
    latent, recipe = load_latent(result.latent_path)
    from studio.media.latent_file import save_latent

    odd = tmp_path / "odd.safetensors"
    save_latent(odd, latent[:, :, :2], recipe)  # 2 latent frames, the recipe says 3
    with pytest.raises(MediaError, match="shape"):
        service.decode_again(odd)


class StarvedVAE:
    """Wraps a VAE and runs "out of memory" on latents wider than ``cells`` cells."""

    def __init__(self, inner, cells: int) -> None:
        self.inner, self.cells, self.attempts = inner, cells, []

    def decode(self, latent, cancel):
        self.attempts.append(tuple(latent.shape[-2:]))
        if latent.shape[-1] * latent.shape[-2] > self.cells:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB")
        return self.inner.decode(latent, cancel)

    def encode(self, video, cancel):
        return self.inner.encode(video, cancel)


def test_out_of_memory_decode_retries_in_tiles_and_matches_a_tiled_decode(
    service: GenerationService, tiny_dir: Path, tmp_path: Path
) -> None:
    model = service.cache.get(tiny_request().model)
    starved = StarvedVAE(model.vae, cells=16)
    model.vae = starved
    result = service.run("job4", tiny_request())
    assert starved.attempts[0] == (6, 8)  # the whole latent first
    assert max(h * w for h, w in starved.attempts[1:]) <= 16
    latent, _ = load_latent(result.latent_path)
    tiled = video_to_uint8(decode_tiled(load_tiny(tiny_dir).vae, latent, TilePlan(4, 1)))
    write_video(tmp_path / "tiled.mp4", tiled, 8.0)
    frames, _, _ = read_video(result.video_path)
    assert np.array_equal(frames, read_video(tmp_path / "tiled.mp4")[0])


class CellVAE:
    """A VAE without spatial reach: each latent cell decodes to its own 4×4 pixels."""

    def decode(self, latent, cancel=None):
        pixels = latent[:, :3].repeat_interleave(4, -1).repeat_interleave(4, -2)
        return torch.tanh(pixels + latent[:, 3:4].repeat_interleave(4, -1).repeat_interleave(4, -2))


@pytest.mark.parametrize("plan", [TilePlan(4, 1), TilePlan(5, 2), TilePlan(7, 0), TilePlan(3, 2)])
def test_tiles_reassemble_a_decoder_without_spatial_reach_exactly(plan: TilePlan) -> None:
    latent = torch.randn(1, 4, 2, 13, 10, generator=torch.Generator().manual_seed(1))
    whole = CellVAE().decode(latent)
    tiled = decode_tiled(CellVAE(), latent, plan)
    assert tiled.shape == whole.shape
    torch.testing.assert_close(tiled, whole, rtol=0, atol=1e-6)


def test_wider_overlap_blends_away_more_of_the_seams(tiny_dir: Path) -> None:
    vae = load_tiny(tiny_dir).vae  # a 3×3 conv + bilinear upsampling: a 1–2 cell reach
    latent = torch.randn(1, 4, 3, 12, 16, generator=torch.Generator().manual_seed(0))
    with torch.inference_mode():
        whole = vae.decode(latent)
        errors = [(decode_tiled(vae, latent, TilePlan(6, k)) - whole).abs().mean().item()
                  for k in (0, 1, 2, 3)]
        no_tiles = (decode_tiled(vae, latent, TilePlan(16, 0)) - whole).abs().max().item()
    assert no_tiles == 0.0
    assert errors[0] > errors[1] > errors[2] > errors[3] > 0
    assert errors[3] < errors[0] / 2


def test_fallback_plans_halve_down_to_the_smallest_tile() -> None:
    plans = fallback_plans(60, 104)  # Wan 2.1 at 832×480
    assert [p.tile for p in plans] == [52, 26, 13, 6]
    assert all(p.overlap == max(1, p.tile // 4) for p in plans)
    assert fallback_plans(6, 8) == [TilePlan(4, 1)]
    assert fallback_plans(2, 2) == []


def test_out_of_memory_even_in_tiles_keeps_the_latent_for_decode_again(
    service: GenerationService, _studio_home: Path
) -> None:
    model = service.cache.get(tiny_request().model)
    inner = model.vae
    model.vae = StarvedVAE(inner, cells=0)
    with pytest.raises(OutOfMemory) as caught:
        service.run("job5", tiny_request())
    assert "decode again" in caught.value.hint
    latent_path = _studio_home / "jobs" / "job5" / "latent.safetensors"
    assert latent_path.exists() and str(latent_path) in caught.value.hint
    assert list(service.settings.outputs.glob("*")) == []
    model.vae = inner  # memory is free again
    calls = model.denoiser.calls
    result = service.decode_again("job5")
    assert model.denoiser.calls == calls and result.frames == 9


def test_out_of_memory_while_sampling_is_reported_with_a_hint(service: GenerationService) -> None:
    model = service.cache.get(tiny_request().model)

    def exhausted(x, t_tok, context):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 80.00 GiB")

    model.denoiser = exhausted
    with pytest.raises(OutOfMemory, match="GPU ran out of memory") as caught:
        service.run("job6", tiny_request())
    assert "fewer frames" in caught.value.hint


def test_the_recipe_is_the_same_in_the_mp4_and_beside_it(service: GenerationService) -> None:
    result = service.run("job7", tiny_request())
    assert read_video_metadata(result.video_path) == json.loads(result.recipe_path.read_text())
    assert result.recipe_path == result.video_path.with_suffix(".json")
