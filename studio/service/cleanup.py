"""Removing what interrupted runs leave behind and nobody can use.

A process killed while writing leaves a ``.<name>.<random>.partial`` file beside its target
(:mod:`studio.media.atomic`); a run that failed before saving anything leaves an empty job
folder. Both are removed at start-up and after each job — but only when older than the running
process, so a write in progress in another process is never touched.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterable, Iterator
from pathlib import Path

from studio.media.atomic import PARTIAL_SUFFIX
from studio.service.job_folder import jobs_root

log = logging.getLogger(__name__)

#: When this process started (seconds since the epoch): only older leftovers are removed.
PROCESS_STARTED = time.time()


def remove_leftovers(folders: Iterable[Path], older_than: float = PROCESS_STARTED) -> list[Path]:
    """Delete stale ``.*.partial`` files in ``folders`` and in every job folder, and empty job
    folders; returns what was removed."""
    removed = [p for p in _stale_partials([*folders, *_job_folders()], older_than)
               if _unlink(p)]  # fmt: skip
    for folder in _job_folders():
        if _older(folder, older_than) and not any(folder.iterdir()):
            try:
                folder.rmdir()
                removed.append(folder)
            except OSError:
                continue
    if removed:
        log.info("removed %d leftover(s) of interrupted runs: %s", len(removed),
                 ", ".join(str(p) for p in removed[:5]))
    return removed


def _job_folders() -> list[Path]:
    try:
        return [p for p in jobs_root().iterdir() if p.is_dir()]
    except OSError:
        return []


def _stale_partials(folders: Iterable[Path], older_than: float) -> Iterator[Path]:
    for folder in folders:
        try:
            candidates = list(Path(folder).glob(f".*{PARTIAL_SUFFIX}"))
        except OSError:
            continue
        yield from (p for p in candidates if p.is_file() and _older(p, older_than))


def _older(path: Path, moment: float) -> bool:
    try:
        return os.stat(path).st_mtime < moment
    except OSError:
        return False


def _unlink(path: Path) -> bool:
    try:
        path.unlink()
    except OSError:
        return False
    return True
