"""Reference images: decoding every supported kind, refusing bad files, fit/fill geometry."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pytest
import torch
from PIL import Image

from studio.errors import MediaError
from studio.media.image import (
    SUPPORTED_FORMATS,
    fit_image,
    image_to_tensor,
    load_image,
    video_to_uint8,
)

RNG = np.random.default_rng(7)


def png_bytes(pixels: np.ndarray, bit_depth: int, color_type: int, size: tuple | None = None):
    """A minimal PNG encoder (independent of Pillow): rows of big-endian samples, filter 0."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(kind + data) & 0xFFFFFFFF
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)

    height, width = size or pixels.shape[:2]
    dtype = ">u2" if bit_depth == 16 else "u1"
    rows = b"".join(b"\0" + row.astype(dtype).tobytes() for row in pixels)
    header = struct.pack(">IIBBBBB", width, height, bit_depth, color_type, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )


def random_rgb(height: int, width: int) -> np.ndarray:
    return RNG.integers(0, 256, (height, width, 3), dtype=np.uint8)


# ----------------------------------------------------------------------------------- loading


@pytest.mark.parametrize("extension", [".png", ".bmp", ".webp"])
def test_lossless_formats_round_trip_exactly(tmp_path: Path, extension: str) -> None:
    pixels = random_rgb(13, 17)
    path = tmp_path / f"img{extension}"
    options = {"lossless": True} if extension == ".webp" else {}
    iio.imwrite(path, pixels, **options)
    loaded = load_image(path)
    assert loaded.dtype == np.uint8 and loaded.shape == (13, 17, 3)
    assert np.array_equal(loaded, pixels)


def test_jpeg_loads_close_to_original(tmp_path: Path) -> None:
    y, x = np.mgrid[0:48, 0:64]
    pixels = np.stack([x * 4, y * 5, (x + y) * 2], -1).astype(np.uint8)
    iio.imwrite(tmp_path / "photo.jpg", pixels, quality=95)
    loaded = load_image(tmp_path / "photo.jpg")
    assert loaded.shape == (48, 64, 3)
    assert np.abs(loaded.astype(int) - pixels).mean() < 2.0


def test_content_decides_format_not_extension(tmp_path: Path) -> None:
    pixels = random_rgb(5, 6)
    iio.imwrite(tmp_path / "real.png", pixels)
    (tmp_path / "renamed.jpg").write_bytes((tmp_path / "real.png").read_bytes())
    assert np.array_equal(load_image(tmp_path / "renamed.jpg"), pixels)


def test_rgba_is_composited_on_black(tmp_path: Path) -> None:
    rgba = np.array(
        [[[200, 100, 50, 0], [200, 100, 50, 255], [200, 100, 50, 128], [255, 255, 255, 51]]],
        np.uint8,
    )
    iio.imwrite(tmp_path / "alpha.png", rgba)
    loaded = load_image(tmp_path / "alpha.png")
    # hand-computed: colour · alpha / 255, rounded
    expected = [[0, 0, 0], [200, 100, 50], [100, 50, 25], [51, 51, 51]]
    assert loaded.shape == (1, 4, 3)
    assert loaded[0].tolist() == expected


def test_palette_transparency_is_composited(tmp_path: Path) -> None:
    picture = Image.new("P", (2, 1))
    picture.putpalette([255, 0, 0, 0, 255, 0])
    picture.putpixel((0, 0), 0)
    picture.putpixel((1, 0), 1)
    picture.info["transparency"] = 0  # palette entry 0 (red) is fully transparent
    picture.save(tmp_path / "pal.png", transparency=0)
    assert load_image(tmp_path / "pal.png")[0].tolist() == [[0, 0, 0], [0, 255, 0]]


def test_grayscale_and_bilevel_are_expanded(tmp_path: Path) -> None:
    gray = RNG.integers(0, 256, (6, 9), dtype=np.uint8)
    iio.imwrite(tmp_path / "gray.png", gray)
    loaded = load_image(tmp_path / "gray.png")
    assert loaded.shape == (6, 9, 3)
    for channel in range(3):
        assert np.array_equal(loaded[..., channel], gray)

    Image.fromarray(np.array([[0, 255, 0]], np.uint8)).convert("1").save(tmp_path / "bits.bmp")
    assert load_image(tmp_path / "bits.bmp")[0, :, 0].tolist() == [0, 255, 0]


def test_sixteen_bit_grayscale_is_reduced(tmp_path: Path) -> None:
    values = np.array([[0, 1000, 32896, 25700, 65535, 128]], np.uint16)
    (tmp_path / "g16.png").write_bytes(png_bytes(values, 16, 0))
    loaded = load_image(tmp_path / "g16.png")
    # round(v / 257): 1000/257 = 3.89 → 4, 32896/257 = 128, 25700/257 = 100, 128/257 = 0.498 → 0
    assert loaded[0, :, 0].tolist() == [0, 4, 128, 100, 255, 0]
    assert np.array_equal(loaded[..., 0], loaded[..., 2])


def test_sixteen_bit_rgb_is_reduced(tmp_path: Path) -> None:
    values = RNG.integers(0, 65536, (4, 5, 3), dtype=np.uint16)
    (tmp_path / "rgb16.png").write_bytes(png_bytes(values, 16, 2))
    loaded = load_image(tmp_path / "rgb16.png")
    assert loaded.shape == (4, 5, 3)
    assert np.abs(loaded.astype(int) - values / 257).max() <= 1.0


def test_exif_orientation_is_applied(tmp_path: Path) -> None:
    pixels = np.zeros((10, 20, 3), np.uint8)
    pixels[:, :10] = 255  # left half white
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90° clockwise to display"
    Image.fromarray(pixels).save(tmp_path / "phone.jpg", exif=exif, quality=95)
    loaded = load_image(tmp_path / "phone.jpg")
    assert loaded.shape == (20, 10, 3)
    assert loaded[:8].mean() > 240 and loaded[12:].mean() < 15  # white half is now on top


# -------------------------------------------------------------------------------- bad files


def _assert_helpful(error: MediaError, name: str) -> None:
    assert name in error.message
    assert error.hint


def test_missing_folder_and_empty_files(tmp_path: Path) -> None:
    for name, why in [("nope.png", "does not exist"), (".", "folder")]:
        with pytest.raises(MediaError, match=why):
            load_image(tmp_path / name)
    (tmp_path / "empty.png").write_bytes(b"")
    with pytest.raises(MediaError, match="empty") as info:
        load_image(tmp_path / "empty.png")
    _assert_helpful(info.value, "empty.png")
    assert "WebP" in info.value.hint


def test_non_image_and_unsupported_format_list_supported_ones(tmp_path: Path) -> None:
    (tmp_path / "notes.png").write_text("this is text, whatever the name says")
    Image.new("RGB", (4, 4)).save(tmp_path / "scan.tiff")
    for name in ("notes.png", "scan.tiff"):
        with pytest.raises(MediaError, match="not a supported image") as info:
            load_image(tmp_path / name)
        _assert_helpful(info.value, name)
        for fmt in SUPPORTED_FORMATS:
            assert fmt in info.value.message


@pytest.mark.parametrize("extension", [".png", ".jpg"])
def test_truncated_file(tmp_path: Path, extension: str) -> None:
    iio.imwrite(tmp_path / f"full{extension}", random_rgb(64, 64))
    data = (tmp_path / f"full{extension}").read_bytes()
    (tmp_path / f"cut{extension}").write_bytes(data[: len(data) // 2])
    with pytest.raises(MediaError, match="damaged or truncated") as info:
        load_image(tmp_path / f"cut{extension}")
    _assert_helpful(info.value, f"cut{extension}")


def test_over_limit_image_is_refused_before_decoding(tmp_path: Path) -> None:
    # 8000×7000 header with almost no pixel data: decoding it would fail, so only the size
    # check (which reads the header alone) can produce the "too large" error.
    header_only = png_bytes(np.zeros((1, 3), np.uint8), 8, 2, size=(7000, 8000))
    (tmp_path / "huge.png").write_bytes(header_only)
    with pytest.raises(MediaError, match="too large") as info:
        load_image(tmp_path / "huge.png")
    _assert_helpful(info.value, "huge.png")
    assert "56.0 megapixels" in info.value.message

    # beyond Pillow's own decompression-bomb limit the refusal is the same kind of error
    (tmp_path / "bomb.png").write_bytes(png_bytes(np.zeros((1, 3), np.uint8), 8, 2, (20000,) * 2))
    with pytest.raises(MediaError, match="too large"):
        load_image(tmp_path / "bomb.png")


def test_max_pixels_parameter(tmp_path: Path) -> None:
    iio.imwrite(tmp_path / "small.png", random_rgb(10, 10))
    assert load_image(tmp_path / "small.png", max_pixels=100).shape == (10, 10, 3)
    with pytest.raises(MediaError, match="too large"):
        load_image(tmp_path / "small.png", max_pixels=99)


def test_zero_sized_image(tmp_path: Path) -> None:
    (tmp_path / "zero.png").write_bytes(png_bytes(np.zeros((0, 0, 3), np.uint8), 8, 2))
    with pytest.raises(MediaError) as info:
        load_image(tmp_path / "zero.png")
    _assert_helpful(info.value, "zero.png")


# ---------------------------------------------------------------------------------- fitting


def four_bands(height: int, width: int) -> np.ndarray:
    """Four vertical bands: yellow | red | blue | cyan."""
    colours = np.array([[255, 255, 0], [255, 0, 0], [0, 0, 255], [0, 255, 255]], np.uint8)
    band = np.arange(width) * 4 // width
    return np.broadcast_to(colours[band][None], (height, width, 3)).copy()


def test_fill_crops_the_centre(tmp_path: Path) -> None:
    out = fit_image(four_bands(100, 200), 100, 100, "fill")
    assert out.shape == (100, 100, 3) and out.dtype == np.uint8
    # the centre 100 columns (red | blue) remain; the outer bands are cropped away
    assert np.abs(out[:, :45].astype(int) - [255, 0, 0]).max() <= 2
    assert np.abs(out[:, 55:].astype(int) - [0, 0, 255]).max() <= 2
    assert out[..., 1].max() <= 10  # no yellow or cyan (their green channel) survives


def test_fill_scales_up_to_cover() -> None:
    out = fit_image(four_bands(30, 40), 160, 90, "fill")  # scale 4: 160×120 → crop rows 15..105
    assert out.shape == (90, 160, 3)
    # away from the band edges (Lanczos rings for 3 source pixels = 12 output pixels)
    assert np.abs(out[:, 2:26].astype(int) - [255, 255, 0]).max() <= 3
    assert np.abs(out[:, 134:158].astype(int) - [0, 255, 255]).max() <= 3


def test_fit_letterboxes_with_black() -> None:
    out = fit_image(four_bands(100, 200), 100, 100, "fit")  # content 100×50 at rows 25..75
    assert out.shape == (100, 100, 3)
    assert out[:25].max() == 0 and out[75:].max() == 0
    assert np.abs(out[27:73, 2:20].astype(int) - [255, 255, 0]).max() <= 3
    assert np.abs(out[27:73, 80:98].astype(int) - [0, 255, 255]).max() <= 3


def test_fit_pillarboxes_tall_images() -> None:
    tall = np.full((90, 30, 3), 200, np.uint8)
    out = fit_image(tall, 64, 48, "fit")  # content 16×48 at columns 24..40
    assert out.shape == (48, 64, 3)
    assert out[:, :24].max() == 0 and out[:, 40:].max() == 0
    assert np.array_equal(out[:, 24:40], np.full((48, 16, 3), 200, np.uint8))


def test_same_size_is_unchanged_and_shrinking_is_antialiased() -> None:
    pixels = random_rgb(24, 32)
    for mode in ("fill", "fit"):
        assert np.abs(fit_image(pixels, 32, 24, mode).astype(int) - pixels).max() <= 1
    checker = ((np.indices((64, 64)).sum(0) % 2) * 255).astype(np.uint8)
    checker = np.repeat(checker[..., None], 3, -1)
    small = fit_image(checker, 16, 16, "fill")
    assert np.abs(small.astype(float) - 127.5).max() < 3  # averaged, not sampled


# ---------------------------------------------------------------------------- tensor helpers


def test_image_to_tensor_layout_and_range() -> None:
    pixels = np.array([[[0, 128, 255], [10, 20, 30]]], np.uint8)  # H=1, W=2
    tensor = image_to_tensor(pixels)
    assert tensor.shape == (1, 3, 1, 1, 2) and tensor.dtype == torch.float32
    expected = [[-1.0, 128 / 127.5 - 1, 1.0], [v / 127.5 - 1 for v in (10, 20, 30)]]
    for x in range(2):
        assert tensor[0, :, 0, 0, x].tolist() == pytest.approx(expected[x], abs=1e-6)


def test_video_to_uint8_matches_independent_numpy() -> None:
    gen = torch.Generator().manual_seed(0)
    video = torch.empty(2, 3, 4, 5, 6).uniform_(-1.3, 1.3, generator=gen)
    got = video_to_uint8(video)
    ref = np.clip(video[0].numpy(), -1, 1).transpose(1, 2, 3, 0)
    ref = np.floor((ref + 1) * 127.5 + 0.5)  # round half up is within the exactness we need
    assert got.shape == (4, 5, 6, 3) and got.dtype == np.uint8
    assert np.abs(got.astype(int) - ref).max() <= 1
    assert (got.astype(int) == ref).mean() > 0.99
    assert video_to_uint8(video.to(torch.bfloat16)).shape == (4, 5, 6, 3)


def test_tensor_round_trip_is_exact() -> None:
    pixels = random_rgb(7, 9)
    back = video_to_uint8(image_to_tensor(pixels))
    assert back.shape == (1, 7, 9, 3)
    assert np.array_equal(back[0], pixels)
