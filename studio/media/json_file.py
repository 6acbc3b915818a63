"""Reading a JSON file that came from a user: a regular file, bounded in size and nesting."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from studio.errors import InvalidRequest

#: Recipes and settings are a few kB; anything near this is not one.
MAX_JSON_BYTES = 4 << 20
#: Deepest nesting accepted (a recipe nests 4 levels).
MAX_JSON_DEPTH = 32


def read_json_file(path: Path, field: str) -> Any:
    """Parse ``path``; a missing, non-regular, oversized, invalid or too deeply nested file
    raises :class:`InvalidRequest` naming ``field`` and the file."""
    path = Path(path)
    if not path.exists():
        raise InvalidRequest(field, f"{path} does not exist")
    if not path.is_file():
        raise InvalidRequest(field, f"{path} is not a regular file")
    try:
        if path.stat().st_size > MAX_JSON_BYTES:
            raise InvalidRequest(field, f"{path} is larger than {MAX_JSON_BYTES} bytes",
                                 "a recipe is a few kB; choose the right file")
        text = path.read_text(encoding="utf-8")
        data = json.loads(text)
    except (OSError, ValueError, RecursionError) as exc:
        raise InvalidRequest(field, f"{path} is not a readable JSON file ({exc})") from exc
    if _depth(data) > MAX_JSON_DEPTH:
        raise InvalidRequest(field, f"{path} nests deeper than {MAX_JSON_DEPTH} levels")
    return data


def _depth(value: Any) -> int:
    stack, deepest = [(value, 1)], 0
    while stack:
        item, depth = stack.pop()
        deepest = max(deepest, depth)
        children = item.values() if isinstance(item, dict) else item if isinstance(item, list) \
            else ()
        stack.extend((child, depth + 1) for child in children)
    return deepest
