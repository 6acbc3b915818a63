"""Reading JSON that came from a user: a regular file, bounded in size and nesting.

Recipes, indexes and MP4 comments are a few kB and nest a few levels; a file or text far beyond
that, a FIFO in place of a file, integers of thousands of digits (which Python refuses to parse)
and nesting deep enough to exhaust the stack all become a specific error, never a traceback.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from studio.errors import InvalidRequest
from studio.safe_files import NotARegularFile, read_bytes_bounded

#: Recipes and settings are a few kB; anything near this is not one.
MAX_JSON_BYTES = 4 << 20
#: Deepest nesting accepted (a recipe nests 4 levels).
MAX_JSON_DEPTH = 32


def parse_json_text(text: str | bytes, max_depth: int = MAX_JSON_DEPTH) -> Any:
    """Parse JSON text; raises ``ValueError`` (with the reason) for anything not plain JSON of
    at most ``max_depth`` levels: invalid text or UTF-8, huge integers, absurd nesting."""
    if isinstance(text, bytes):
        text = text.decode("utf-8")  # UnicodeDecodeError is a ValueError
    if _bracket_depth(text) > max_depth:
        raise ValueError(f"nests deeper than {max_depth} levels")
    try:
        return json.loads(text)
    except RecursionError as exc:
        raise ValueError("nests too deeply") from exc
    except ValueError as exc:
        if "integer string conversion" in str(exc):  # Python refuses 4,300+ digit integers
            raise ValueError("holds an integer thousands of digits long") from exc
        raise


def read_json_file(path: Path, field: str) -> Any:
    """Parse ``path``; a missing, non-regular, oversized, invalid or too deeply nested file
    raises :class:`InvalidRequest` naming ``field`` and the file."""
    path = Path(path)
    try:
        raw = read_bytes_bounded(path, MAX_JSON_BYTES)
    except FileNotFoundError as exc:
        raise InvalidRequest(field, f"{path} does not exist") from exc
    except NotARegularFile as exc:
        raise InvalidRequest(field, f"{path} is not a regular file") from exc
    except IsADirectoryError as exc:
        raise InvalidRequest(field, f"{path} is a folder, not a file") from exc
    except OSError as exc:
        raise InvalidRequest(field, f"{path} cannot be read ({exc.strerror or exc})") from exc
    except ValueError as exc:
        raise InvalidRequest(field, str(exc), "a recipe is a few kB; choose the right file") \
            from exc
    try:
        return parse_json_text(raw)
    except ValueError as exc:
        raise InvalidRequest(field, f"{path} is not a readable JSON file ({exc})") from exc


def read_small_json(path: Path, limit: int = 1 << 20) -> Any | None:
    """A small JSON file beside a checkpoint (``config.json``), or None when it is missing,
    not a regular file, larger than ``limit`` bytes or not plain JSON."""
    try:
        return parse_json_text(read_bytes_bounded(Path(path), limit))
    except (OSError, ValueError):
        return None


def _bracket_depth(text: str) -> int:
    """The deepest nesting of ``[`` / ``{`` outside strings (a linear scan, no recursion)."""
    depth = deepest = 0
    in_string = escaped = False
    for char in text:
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif char in "]}":
            depth -= 1
    return deepest
