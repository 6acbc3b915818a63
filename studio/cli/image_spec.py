"""``--image PATH[@FRAME][:STRENGTH]``: one reference frame (keyframe) of ``studio generate``,
or a short clip (an .mp4 / .m4v / .mov PATH) whose first frame goes at FRAME.

The text is read from the right, so paths keep their own ``:`` and ``@`` (``C:\\x.png``,
``photo@2x.png``): ``:S`` is a strength only when S is a number, ``@F`` a frame only when F is
an integer. Parts left out take ``--image-frame`` and ``--strength``.
"""

from __future__ import annotations

import math
import re

from studio.engine.request import ConditioningItem
from studio.errors import InvalidRequest

IMAGE_FORM = "PATH[@FRAME][:STRENGTH]"
IMAGE_HELP = (f"reference frame (keyframe) image or short clip, repeatable: {IMAGE_FORM}, "
              "FRAME an integer (0 first, -1 last; default --image-frame), STRENGTH in 0…1 "
              "(default --strength); e.g. --image a.png@0 --image b.png@-1:0.5 --image "
              "c.png@48:0.8; a clip (.mp4/.m4v/.mov, 1 + 8·k frames for LTX-Video) starts at "
              "FRAME: 0, or a multiple of 8 on LTX-Video, e.g. --image walk.mp4@16:0.8")
_EXAMPLE = "e.g. a.png@-1:0.5 (FRAME an integer: 0 first, -1 last; STRENGTH a number in 0…1)"
#: Looks like a number (so a misplaced one is an error, not part of a file name).
_NUMBER = re.compile(r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$")
_AT_FRAME = re.compile(r"@[+-]?\d+$")


def _bad(text: str, problem: str) -> InvalidRequest:
    return InvalidRequest("image", f"{text!r}: {problem}", f"use {IMAGE_FORM}, {_EXAMPLE}")


def _strength(text: str) -> tuple[str, float | None]:
    """Split off a trailing ``:STRENGTH`` → (rest, strength or None)."""
    head, sep, tail = text.rpartition(":")
    if sep and not tail:
        raise _bad(text, "nothing follows ':' (give a strength in 0…1, or leave ':' out)")
    if sep and not _NUMBER.match(tail) and _AT_FRAME.search(head):
        raise _bad(text, f"the strength {tail!r} is not a number")
    if not sep or not _NUMBER.match(tail):
        return text, None
    strength = float(tail)
    if not math.isfinite(strength) or not 0.0 <= strength <= 1.0:
        raise _bad(text, f"the strength {tail} is outside 0…1")
    return head, strength


def _frame(text: str, whole: str) -> tuple[str, int | None]:
    """Split off a trailing ``@FRAME`` of ``text`` (``whole`` less its strength) → (path, frame
    or None)."""
    head, sep, tail = text.rpartition("@")
    if not sep:
        return text, None
    if re.fullmatch(r"[+-]?\d+", tail):
        if not head:
            raise _bad(whole, "the image path is missing")
        return head, int(tail)
    if head and (not tail or _NUMBER.match(tail)):
        raise _bad(whole, f"the frame {tail!r} is not an integer")
    return text, None  # a file name with '@' in it, e.g. photo@2x.png


def parse_image(text: str, default_frame: int = 0, default_strength: float = 1.0,
                fit: str = "fill") -> ConditioningItem:
    """One ``--image`` value → a conditioning item; raises :class:`InvalidRequest` naming the
    text and the allowed form when it is malformed."""
    rest, strength = _strength(text)
    path, frame = _frame(rest, text)
    if not path:
        raise _bad(text, "the image path is missing")
    return ConditioningItem(path, default_frame if frame is None else frame,
                            default_strength if strength is None else strength, fit)
