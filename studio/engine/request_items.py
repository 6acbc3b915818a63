"""The items a generation request holds (reference frames, LoRAs) and the field checks every
request field shares: numbers, integers, UTF-8 text, and values shown shortened in messages.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields

from studio.errors import InvalidRequest

FIT_MODES = ("fill", "fit")
LORA_STRENGTH = 10.0
#: File name endings read as a clip (a short video) rather than a still image.
CLIP_SUFFIXES = (".mp4", ".m4v", ".mov")


def is_clip(path: str) -> bool:
    """Whether a conditioning path names a clip: decided by its suffix (case-insensitive), so
    a recipe written before clips existed reads as it did (its items are images)."""
    return isinstance(path, str) and path.lower().endswith(CLIP_SUFFIXES)


@dataclass(frozen=True, slots=True)
class ConditioningItem:
    """A reference frame, or a short clip of reference frames, pinned into the video.

    Attributes:
        image: path of the reference image file, or of a clip (an MP4 / M4V / MOV video,
            :func:`is_clip`) whose n = 1 + r·k frames pin n consecutive frames.
        frame_index: pixel frame it stands for (a clip's first frame); 0 = first, −1 = last,
            any other index allowed.
        strength: mask value m ∈ [0, 1]; 1 = hard (kept exactly), between = soft (the token starts
            denoising when t < 1 − m), 0 = no effect.
        fit: how the image (each frame of a clip) is brought to the video size: ``"fill"``
            (cover, centre-crop) or ``"fit"`` (contain, black letterbox).
    """

    image: str
    frame_index: int = 0
    strength: float = 1.0
    fit: str = "fill"

    @property
    def clip(self) -> bool:
        """Whether :attr:`image` names a clip rather than a still image."""
        return is_clip(self.image)

    def validate(self, frames: int | None = None) -> None:
        if not isinstance(self.image, str) or not self.image:
            raise InvalidRequest(
                "conditioning.image",
                f"{self.image!r} is not a reference image path",
                "choose an image file or a short clip",
            )
        if not is_utf8(self.image):
            raise InvalidRequest("conditioning.image", f"the file name {self.image!r} is not "
                                 "valid UTF-8 text", "rename the image file")
        if not isinstance(self.frame_index, int) or isinstance(self.frame_index, bool):
            raise InvalidRequest(
                "conditioning.frame_index",
                f"{self.frame_index!r} is not an integer",
                "use 0 for the first frame, −1 for the last, or any frame number"
                if frames is None
                else f"use 0…{frames - 1}, or −1 for the last frame",
            )
        if frames is not None and not -frames <= self.frame_index < frames:
            raise InvalidRequest(
                "conditioning.frame_index",
                f"{self.frame_index} is outside the video",
                f"use 0…{frames - 1}, or −1 for the last frame",
            )
        if not is_number(self.strength) or not 0.0 <= self.strength <= 1.0:
            raise InvalidRequest(
                "conditioning.strength", f"{self.strength!r} is not allowed", "use a value in 0…1"
            )
        if self.fit not in FIT_MODES:
            raise InvalidRequest(
                "conditioning.fit", f"{self.fit!r} is unknown", f"use one of {', '.join(FIT_MODES)}"
            )


@dataclass(frozen=True, slots=True)
class LoraItem:
    """A LoRA applied to the denoiser.

    Attributes:
        path: the LoRA file.
        strength: multiplies its change (1 = as trained; negative values invert it).
        sha256: the file's hash; filled in when the job runs, so a recipe names the exact file
            and refuses a different one.
    """

    path: str
    strength: float = 1.0
    sha256: str = ""

    def validate(self) -> None:
        if not isinstance(self.path, str) or not self.path or not is_utf8(self.path):
            raise InvalidRequest("loras.path", f"{self.path!r} is not a LoRA file path",
                                 "choose a LoRA .safetensors file")
        if not is_number(self.strength) or abs(self.strength) > LORA_STRENGTH:
            raise InvalidRequest("loras.strength", f"{shown(self.strength)} is not allowed",
                                 f"use −{LORA_STRENGTH:g}…{LORA_STRENGTH:g} (1 = as trained)")
        if not isinstance(self.sha256, str) or (
                self.sha256 and (len(self.sha256) != 64 or set(self.sha256) - set(_HEX))):
            raise InvalidRequest("loras.sha256", f"{shown(self.sha256)} is not a SHA-256",
                                 "leave it empty, or give the file's 64 hex digits")


_HEX = "0123456789abcdef"


def parse_item(item: object) -> ConditioningItem:
    """One conditioning entry of a request's dict form (validated later with the request)."""
    known = {g.name for g in fields(ConditioningItem)}
    if not isinstance(item, dict) or set(item) - known:
        raise InvalidRequest(
            "conditioning",
            f"{item!r} is not a conditioning item",
            f"an item has the fields {', '.join(sorted(known))}",
        )
    if "image" not in item:
        raise InvalidRequest("conditioning.image", "is missing", "give the reference image's path")
    return ConditioningItem(**item)


def parse_loras(items: object) -> tuple[LoraItem, ...]:
    """The ``loras`` list of a request's dict form (validated later with the request)."""
    known = {g.name for g in fields(LoraItem)}
    if not isinstance(items, list | tuple):
        raise InvalidRequest("loras", f"{shown(items)} is not a list", "use a list of LoRAs")
    for item in items:
        if not isinstance(item, dict) or set(item) - known or "path" not in item:
            raise InvalidRequest("loras", f"{shown(item)} is not a LoRA",
                                 f"a LoRA has the fields {', '.join(sorted(known))}")
    return tuple(LoraItem(**item) for item in items)


def is_utf8(text: str) -> bool:
    """False for text holding lone surrogates (bytes a command line or file name could not
    decode), which no JSON recipe or tokenizer can take."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def is_number(value: object) -> bool:
    if not isinstance(value, int | float) or isinstance(value, bool):
        return False
    try:
        return math.isfinite(float(value))
    except OverflowError:  # an integer of hundreds of digits
        return False


def check_int(name: str, value: object, low: int, high: int) -> None:
    if not isinstance(value, int) or isinstance(value, bool):
        raise InvalidRequest(name, f"{shown(value)} is not an integer", f"use {low}…{high}")
    if not low <= value <= high:
        raise InvalidRequest(name, f"{shown(value)} is out of range", f"use {low}…{high}")


def shown(value: object, limit: int = 40) -> str:
    """``repr(value)``, shortened in the middle when long (a 400-digit number, a long text)."""
    text = repr(value) if not isinstance(value, int) or isinstance(value, bool) else str(value)
    return text if len(text) <= limit else f"{text[:16]}…{text[-8:]} ({len(text)} characters)"
