"""Short clips as conditioning items, on the tiny service model (r = 4, 32 × 24 px): a clip at
frame 0 fills the grid's first latent frames; a later clip on a frame-layout model puts its
first two latent frames after the grid (one group, positioned from the clip's first frame)
and the rest into the grid from latent frame s/r + 2; and the refusals."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from studio.engine.model import FrameLayout
from studio.engine.pipeline import build_conditioning, plan_generation, sample_plan
from studio.engine.request import ConditioningItem, GenerationRequest
from studio.errors import InvalidRequest, MediaError
from studio.media.video import read_video, write_video
from tests.service.tiny_model import load_tiny, tiny_request, write_tiny_weights

W, H = 32, 24


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory):
    folder = tmp_path_factory.mktemp("tiny")
    write_tiny_weights(folder)
    return load_tiny(folder)


@pytest.fixture
def layout_model(tiny):
    """The tiny model declaring a frame layout; its denoiser records every call's layout."""
    seen: list[FrameLayout] = []
    plain = tiny.denoiser

    def denoiser(x, t_tok, context, *, layout):
        seen.append(layout)
        return plain(x, t_tok, context)

    return replace(tiny, denoiser=denoiser,
                   capabilities=replace(tiny.capabilities, frame_layout=True)), seen


def write_clip(path: Path, frames: int) -> str:
    """An MP4 of ``frames`` solid frames, each its own colour (a misplaced frame shows)."""
    rng = np.random.default_rng(frames)
    colours = rng.integers(20, 236, (frames, 1, 1, 3), dtype=np.uint8)
    write_video(path, np.broadcast_to(colours, (frames, H, W, 3)).copy(), 8.0, crf=0)
    return str(path)


def clip_latents(model, path: str) -> torch.Tensor:
    """The VAE latent ``[1, C, F, H', W']`` of the clip's decoded frames, encoded at once."""
    frames, _, _ = read_video(path)
    pixels = torch.from_numpy(frames).float().div(127.5).sub(1).permute(3, 0, 1, 2)[None]
    with torch.inference_mode():
        return model.vae.encode(pixels)


def test_a_clip_at_frame_0_fills_the_first_latent_frames(tiny, tmp_path) -> None:
    clip = write_clip(tmp_path / "c.mp4", 5)
    plan = plan_generation(tiny, tiny_request(steps=2, conditioning=(
        ConditioningItem(clip, 0, 0.8),)))
    assert plan.appended == () and plan.state_shape == plan.latent_shape
    cond = build_conditioning(tiny, plan)
    assert cond.mask[0, 0, :, 0, 0].tolist() == pytest.approx([0.8, 0.8, 0.0])
    torch.testing.assert_close(cond.latent[:, :, :2], clip_latents(tiny, clip))
    assert torch.equal(cond.latent[:, :, 2], torch.zeros_like(cond.latent[:, :, 2]))


def test_a_later_clip_is_split_into_an_appended_prefix_and_grid_frames(layout_model,
                                                                       tmp_path) -> None:
    model, seen = layout_model
    clip = write_clip(tmp_path / "c.mp4", 9)  # 3 latent frames
    image = tmp_path / "i.png"
    Image.new("RGB", (W, H), (200, 30, 30)).save(image)
    items = (ConditioningItem(str(image), 0), ConditioningItem(clip, 4, 0.7),
             ConditioningItem(str(image), 16, 1.0))
    plan = plan_generation(model, tiny_request(steps=2, frames=17, conditioning=items))
    assert plan.latent_shape[2] == 5 and plan.appended == ((4, 2), (16, 1))
    assert plan.state_shape[2] == 5 + 3
    cond = build_conditioning(model, plan)
    mask = cond.mask[0, 0, :, 0, 0].tolist()
    assert mask == pytest.approx([1.0, 0.0, 0.0, 0.7, 0.0, 0.7, 0.7, 1.0])
    encoded = clip_latents(model, clip)
    torch.testing.assert_close(cond.latent[:, :, 5:7], encoded[:, :, :2])  # the prefix
    torch.testing.assert_close(cond.latent[:, :, 3], encoded[:, :, 2])  # latent 4//4 + 2
    latent = sample_plan(model, plan)
    assert latent.shape[2] == 5
    assert seen[0] == FrameLayout(8.0, 5, ((4, 2), (16, 1))) and seen[0].appended_frames == 3


def test_a_one_frame_clip_is_an_image(layout_model, tmp_path) -> None:
    model, _ = layout_model
    clip = write_clip(tmp_path / "one.mp4", 1)
    plan = plan_generation(model, tiny_request(steps=2, frames=17, conditioning=(
        ConditioningItem(clip, 6),)))
    assert plan.appended == ((6, 1),)


@pytest.mark.parametrize(("frames", "start", "layout", "field", "words"), [
    (6, 0, True, "conditioning.image", "1 + 4·k"),
    (9, 12, True, "conditioning.frame_index", "runs past"),
    (5, 4, False, "conditioning.frame_index", "only at frame 0"),
    (5, 6, True, "conditioning.frame_index", "multiple of 4"),
])
def test_clip_refusals_name_the_field_and_the_rule(tiny, tmp_path, frames, start, layout,
                                                   field, words) -> None:
    model = replace(tiny, capabilities=replace(tiny.capabilities, frame_layout=layout))
    clip = write_clip(tmp_path / "c.mp4", frames)
    with pytest.raises(InvalidRequest) as error:
        plan_generation(model, tiny_request(frames=17, conditioning=(
            ConditioningItem(clip, start),)))
    assert error.value.field == field and words in str(error.value)


def test_a_broken_clip_is_a_media_error(tiny, tmp_path) -> None:
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(b"\x00\x00\x00\x18ftypisom" + b"junk" * 10)
    with pytest.raises(MediaError):
        plan_generation(tiny, tiny_request(conditioning=(ConditioningItem(str(broken), 0),)))


def test_recipes_keep_images_and_carry_clips() -> None:
    old = tiny_request(conditioning=(ConditioningItem("a.png", 4, 0.5),))
    again = GenerationRequest.from_json(old.to_json())
    assert again == old and not again.conditioning[0].clip
    clip = tiny_request(conditioning=(ConditioningItem("walk.MP4", 0),))
    assert GenerationRequest.from_json(clip.to_json()).conditioning[0].clip


def test_a_model_taking_images_as_channels_refuses_clips(tiny, tmp_path) -> None:
    channels = replace(tiny, image_channels=lambda images, frames, height, width: None)
    clip = write_clip(tmp_path / "c.mp4", 5)
    with pytest.raises(InvalidRequest) as error:
        plan_generation(channels, tiny_request(conditioning=(ConditioningItem(clip, 0),)))
    assert error.value.field == "conditioning.image" and "not clips" in str(error.value)
