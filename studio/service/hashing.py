"""Content hashes of model files for recipes, cached by (path, size, mtime).

Hashing a 28 GB checkpoint takes a minute, so each file is hashed once and the digest is kept in
``STUDIO_HOME/file_hashes.json`` until the file changes.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from pathlib import Path

from studio.media.atomic import atomic_write_json
from studio.media.json_file import MAX_JSON_BYTES, parse_json_text
from studio.paths import studio_home
from studio.safe_files import read_bytes_bounded

log = logging.getLogger(__name__)
_LOCK = threading.Lock()
_CHUNK = 8 * 2**20


def _cache_path() -> Path:
    return studio_home() / "file_hashes.json"


def _load_cache() -> dict[str, dict]:
    try:
        data = parse_json_text(read_bytes_bounded(_cache_path(), MAX_JSON_BYTES))
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}


def sha256_file(path: Path) -> str:
    """Hex SHA-256 of a file's contents (cached while size and mtime are unchanged)."""
    path = Path(path).resolve()
    stat = path.stat()
    key = str(path)
    with _LOCK:
        entry = _load_cache().get(key)
        if entry and entry.get("size") == stat.st_size and entry.get("mtime") == stat.st_mtime_ns:
            return entry["sha256"]
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while block := fh.read(_CHUNK):
            digest.update(block)
    value = digest.hexdigest()
    with _LOCK:
        cache = _load_cache()
        cache[key] = {"size": stat.st_size, "mtime": stat.st_mtime_ns, "sha256": value}
        try:
            atomic_write_json(_cache_path(), cache)
        except OSError as exc:  # a cache that cannot be saved only costs time later
            log.warning("could not save the hash cache: %s", exc)
    return value
