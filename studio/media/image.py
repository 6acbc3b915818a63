"""Reference images: loading, fitting to the video size, and pixel ↔ tensor helpers.

Images are decoded with imageio's Pillow plugin and resampled with Pillow's Lanczos filter
(Pillow is a dependency of imageio). Loading and fitting need no torch, so the Qt app can show a
reference image without importing it; only the two tensor helpers import torch, on first use.
"""

from __future__ import annotations

import logging
import os
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import imageio.v3 as iio
import numpy as np
from PIL import Image

from studio.errors import MediaError
from studio.safe_files import kind_of

if TYPE_CHECKING:
    import torch

log = logging.getLogger(__name__)

SUPPORTED_FORMATS = ("PNG", "JPEG", "WebP", "BMP")
MAX_PIXELS = 50_000_000
"""Largest image accepted, in pixels (50 megapixels)."""

FitMode = Literal["fill", "fit"]

# Pillow modes whose pixels we convert ourselves; any other (CMYK, YCbCr, LAB, F, …) is
# converted to RGB by Pillow.
_NATIVE_MODES = {"1", "L", "LA", "P", "RGB", "RGBA", "I;16", "I;16B", "I;16L"}
_FORMATS_HINT = f"Use a {', '.join(SUPPORTED_FORMATS[:-1])} or {SUPPORTED_FORMATS[-1]} image."


def _sniff(head: bytes) -> str | None:
    """The supported format the first bytes of a file announce, or None."""
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "PNG"
    if head.startswith(b"\xff\xd8\xff"):
        return "JPEG"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "WebP"
    if head.startswith(b"BM"):
        return "BMP"
    return None


def _check_file(path: Path) -> str:
    """Return the format of ``path``; MediaError if missing, empty, unreadable or unsupported."""
    kind = kind_of(path)
    if kind not in ("regular file", "missing"):
        raise MediaError(f"{path} is a {kind}, not an image file.", _FORMATS_HINT)
    try:
        with open(path, "rb") as f:
            head = f.read(16)
    except FileNotFoundError as e:
        raise MediaError(f"The image {path} does not exist.", _FORMATS_HINT) from e
    except OSError as e:
        raise MediaError(f"Cannot read the image {path}: {e.strerror or e}.", _FORMATS_HINT) from e
    if not head:
        raise MediaError(f"The image file {path.name} is empty (0 bytes).", _FORMATS_HINT)
    kind = _sniff(head)
    if kind is None:
        raise MediaError(
            f"{path.name} is not a supported image "
            f"(supported formats: {', '.join(SUPPORTED_FORMATS)}).",
            _FORMATS_HINT,
        )
    return kind


def _too_large(path: Path, detail: str) -> MediaError:
    return MediaError(
        f"The image {path.name} is too large: {detail}.",
        "Scale it down in an image editor first; it is resized to the video size anyway.",
    )


def _damaged(path: Path, kind: str) -> MediaError:
    return MediaError(
        f"The {kind} image {path.name} could not be read: it is damaged or truncated.",
        _FORMATS_HINT,
    )


def _check_size(path: Path, width: int, height: int, max_pixels: int) -> None:
    if width <= 0 or height <= 0:
        raise MediaError(f"The image {path.name} has no pixels ({width}×{height}).", _FORMATS_HINT)
    if width * height > max_pixels:
        raise _too_large(
            path,
            f"{width}×{height} = {width * height / 1e6:.1f} megapixels "
            f"(the limit is {max_pixels / 1e6:g})",
        )


def _read_mode(meta: dict[str, Any], kind: str) -> str | None:
    """The Pillow mode to convert to while decoding, or None to keep the file's own."""
    mode = meta["mode"]
    if mode == "P" and "transparency" in meta:
        return "RGBA"
    if mode in _NATIVE_MODES or (mode == "I" and kind == "PNG"):  # imageio: PNG "I" → I;16
        return None
    return "RGB"


def _decode(path: Path, kind: str, max_pixels: int) -> np.ndarray:
    """Check the size from the header alone, then decode the first frame as Pillow gives it."""
    try:
        with warnings.catch_warnings():
            # Pillow warns about "decompression bombs" from 89 MP; our own, lower limit applies.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(path) as header:  # lazy: reads the header, no pixel data
                width, height = header.size
            _check_size(path, width, height, max_pixels)
            with iio.imopen(path, "r", plugin="pillow") as f:
                meta = f.metadata(index=0, exclude_applied=False)
                return f.read(index=0, mode=_read_mode(meta, kind), rotate=True)
    except MediaError:
        raise
    except Image.DecompressionBombError as e:
        raise _too_large(path, "over Pillow's safety limit of 179 megapixels") from e
    except Exception as e:  # Pillow's decoders raise many types (OSError, SyntaxError, …)
        log.debug("Pillow could not decode %s: %s", path, e)
        raise _damaged(path, kind) from e


def _to_rgb8(pixels: np.ndarray) -> np.ndarray:
    """Any decoded pixel array → uint8 RGB ``[H, W, 3]``.

    Booleans become 0/255, 16-bit values are reduced to 8 bits with rounding (v / 257),
    grayscale is repeated into three channels, and alpha is composited on black.
    """
    if pixels.dtype == np.bool_:
        pixels = pixels.astype(np.uint8) * 255
    elif pixels.dtype.kind == "u" and pixels.dtype.itemsize == 2:
        pixels = ((pixels.astype(np.uint32) + 128) // 257).astype(np.uint8)
    assert pixels.dtype == np.uint8, pixels.dtype  # Pillow converted every other mode to RGB
    if pixels.ndim == 2:
        pixels = pixels[..., None]
    if pixels.shape[-1] in (2, 4):  # colour + alpha
        color, alpha = pixels[..., :-1].astype(np.uint32), pixels[..., -1:].astype(np.uint32)
        pixels = ((color * alpha + 127) // 255).astype(np.uint8)
    if pixels.shape[-1] == 1:
        pixels = np.repeat(pixels, 3, axis=-1)
    return np.ascontiguousarray(pixels)


def load_image(path: str | os.PathLike[str], *, max_pixels: int = MAX_PIXELS) -> np.ndarray:
    """Load a PNG, JPEG, WebP or BMP image as uint8 RGB ``[H, W, 3]``.

    The EXIF orientation is applied. Transparent images are composited on black, grayscale is
    expanded to RGB and 16-bit images are reduced to 8 bits. The file's content, not its name,
    decides the format.

    Raises:
        MediaError: missing, empty, unreadable, damaged or unsupported file, an image without
            pixels, or one over ``max_pixels`` (checked from the header, before decoding).
    """
    source = Path(path)
    kind = _check_file(source)
    return _to_rgb8(_decode(source, kind, max_pixels))


def fit_image(image: np.ndarray, width: int, height: int, mode: FitMode = "fill") -> np.ndarray:
    """Resize uint8 RGB ``[H, W, 3]`` to exactly ``[height, width, 3]`` keeping its aspect ratio.

    Args:
        image: uint8 ``[H, W, 3]``.
        width, height: the output size in pixels.
        mode: ``"fill"`` scales the image to cover the whole frame and crops the overflow
            equally on both sides (centre crop); ``"fit"`` scales it to fit inside the frame and
            centres it on black bars (letterbox or pillarbox).

    Resampling is Lanczos (antialiased when shrinking).
    """
    assert image.dtype == np.uint8 and image.ndim == 3 and image.shape[-1] == 3, image.shape
    assert width >= 1 and height >= 1, (width, height)
    assert mode in ("fill", "fit"), mode
    src_h, src_w = image.shape[:2]
    picture = Image.fromarray(np.ascontiguousarray(image))
    if mode == "fill":
        scale = max(width / src_w, height / src_h)
        crop_w, crop_h = width / scale, height / scale
        left, top = (src_w - crop_w) / 2, (src_h - crop_h) / 2
        box = (left, top, left + crop_w, top + crop_h)
        return np.asarray(picture.resize((width, height), Image.Resampling.LANCZOS, box=box))
    scale = min(width / src_w, height / src_h)
    inner_w = min(width, max(1, round(src_w * scale)))
    inner_h = min(height, max(1, round(src_h * scale)))
    canvas = np.zeros((height, width, 3), np.uint8)
    top, left = (height - inner_h) // 2, (width - inner_w) // 2
    resized = picture.resize((inner_w, inner_h), Image.Resampling.LANCZOS)
    canvas[top : top + inner_h, left : left + inner_w] = np.asarray(resized)
    return canvas


def image_to_tensor(image: np.ndarray) -> torch.Tensor:
    """uint8 RGB ``[H, W, 3]`` → float32 ``[1, 3, 1, H, W]`` in [−1, 1] (one-frame video)."""
    import torch  # imported here so that the Qt app can use this module without torch

    assert image.dtype == np.uint8 and image.ndim == 3 and image.shape[-1] == 3, image.shape
    pixels = torch.from_numpy(np.array(image, order="C")).permute(2, 0, 1)  # a writable copy
    return (pixels.to(torch.float32) / 127.5 - 1.0)[None, :, None].contiguous()


def video_to_uint8(video: torch.Tensor) -> np.ndarray:
    """Pixels ``[B, 3, T, H, W]`` in [−1, 1] (any device/dtype) → uint8 ``[T, H, W, 3]``, batch 0.

    Values are clamped to [−1, 1], mapped to [0, 255] and rounded on the tensor's device; the
    result is moved to the CPU once.
    """
    import torch  # see image_to_tensor

    assert video.ndim == 5 and video.shape[1] == 3, tuple(video.shape)
    pixels = (video[0].detach().float().clamp(-1.0, 1.0) + 1.0) * 127.5
    pixels = pixels.round().to(torch.uint8).permute(1, 2, 3, 0)
    return pixels.contiguous().cpu().numpy()
