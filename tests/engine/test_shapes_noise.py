"""Latent shape arithmetic (docs/flow-conventions.md §1) and seeded initial noise."""

from __future__ import annotations

import pytest
import torch

from studio.engine.noise import make_noise
from studio.engine.shapes import LatentGeometry
from studio.errors import InvalidRequest

WAN21 = LatentGeometry(channels=16, temporal_factor=4, spatial_factor=8)


def test_reference_latent_shape() -> None:
    assert WAN21.latent_shape(17, 256, 256) == (1, 16, 5, 32, 32)
    assert WAN21.latent_shape(17, 256, 256, batch=2) == (2, 16, 5, 32, 32)
    assert WAN21.tokens_per_frame(256, 256) == 256  # (32/2)·(32/2): the "seq 256" of §2


def test_latent_shape_non_square_and_single_frame() -> None:
    assert WAN21.latent_shape(1, 480, 832) == (1, 16, 1, 60, 104)
    assert WAN21.latent_shape(81, 480, 832) == (1, 16, 21, 60, 104)
    wan22 = LatentGeometry(channels=48, temporal_factor=4, spatial_factor=16)
    assert wan22.size_multiple == 32
    assert wan22.latent_shape(121, 704, 1280) == (1, 48, 31, 44, 80)


@pytest.mark.parametrize("frames", [1, 5, 17, 81, 121])
def test_pixel_and_latent_frames_are_inverse(frames: int) -> None:
    assert WAN21.pixel_frames(WAN21.latent_frames(frames)) == frames


@pytest.mark.parametrize(
    ("frames", "choices"), [(18, "17 or 21"), (20, "17 or 21"), (2, "1 or 5"), (0, "use 1")]
)
def test_invalid_frames_name_nearest_valid(frames: int, choices: str) -> None:
    with pytest.raises(InvalidRequest) as info:
        WAN21.latent_shape(frames, 256, 256)
    err = info.value
    assert err.field == "frames"
    assert str(frames) in err.message and "1 + 4·k" in err.message
    assert choices in err.hint


@pytest.mark.parametrize(
    ("side", "choices"),
    [(130, "128 or 144"), (143, "128 or 144"), (8, "use 16"), (1000, "992 or 1008")],
)
def test_invalid_width_names_nearest_valid(side: int, choices: str) -> None:
    with pytest.raises(InvalidRequest) as info:
        WAN21.latent_shape(17, 256, side)
    err = info.value
    assert err.field == "width"
    assert f"{side} px" in err.message and "multiple of 16" in err.message
    assert choices in err.hint


def test_invalid_height_names_height() -> None:
    with pytest.raises(InvalidRequest) as info:
        WAN21.latent_shape(17, 250, 256)
    assert info.value.field == "height" and "240 or 256" in info.value.hint


def test_valid_sizes_are_never_rounded() -> None:
    for side in range(16, 400, 16):
        assert WAN21.latent_shape(1, side, side)[-1] == side // 8
        assert WAN21.nearest_side(side) == (side, side)
    for frames in range(1, 60, 4):
        assert WAN21.nearest_frames(frames) == (frames, frames)


# --- noise ---------------------------------------------------------------------------------


def test_noise_same_seed_same_tensor_different_seed_different() -> None:
    shape = (1, 16, 5, 8, 8)
    a = make_noise(shape, 1)
    assert a.shape == shape and a.dtype == torch.float32
    assert torch.equal(a, make_noise(shape, 1))
    assert not torch.equal(a, make_noise(shape, 2))
    # Correlation between two seeds is small: the draws are independent, not shifted copies.
    corr = torch.corrcoef(torch.stack([a.flatten(), make_noise(shape, 2).flatten()]))[0, 1]
    assert abs(corr.item()) < 0.1


def test_noise_is_drawn_float32_on_cpu_then_cast() -> None:
    shape = (2, 4, 3, 6, 6)
    seed = 1234
    reference = torch.randn(
        shape, generator=torch.Generator("cpu").manual_seed(seed), dtype=torch.float32
    )
    assert torch.equal(make_noise(shape, seed), reference)
    as64 = make_noise(shape, seed, dtype=torch.float64)
    assert as64.dtype == torch.float64 and torch.equal(as64, reference.double())
    # A float64 draw would be a different stream: prove we are not drawing in the request dtype.
    direct64 = torch.randn(
        shape, generator=torch.Generator("cpu").manual_seed(seed), dtype=torch.float64
    )
    assert not torch.equal(as64, direct64)
    as_bf16 = make_noise(shape, seed, dtype=torch.bfloat16)
    assert as_bf16.dtype == torch.bfloat16 and torch.equal(as_bf16, reference.to(torch.bfloat16))


def test_noise_is_standard_normal() -> None:
    z = make_noise((1, 16, 5, 32, 32), 1)
    assert abs(z.mean().item()) < 0.02
    assert abs(z.std().item() - 1.0) < 0.02


def test_noise_accepts_the_largest_seed() -> None:
    big = make_noise((4,), 2**63 - 1)
    assert torch.isfinite(big).all()
    assert not torch.equal(big, make_noise((4,), 0))
