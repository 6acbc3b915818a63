"""Atomic file writing: a reader sees the old file or the complete new one, never a partial one.

Every writer goes through :func:`atomic_path`: the data is written to a temporary file in the
target's own folder (named ``.<name>.<random>.partial`` so a stray one is recognisable), flushed
to disk with ``fsync`` and moved onto the target with ``os.replace``. If anything goes wrong
(an error, :class:`~studio.errors.Cancelled`, ``KeyboardInterrupt``) the temporary file is removed
and the previous file at the target path is left exactly as it was.
"""

from __future__ import annotations

import contextlib
import errno
import json
import logging
import os
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from studio.errors import MediaError

log = logging.getLogger(__name__)

PARTIAL_SUFFIX = ".partial"
"""Suffix of the temporary files; a leftover ``.*.partial`` file is an interrupted write."""

_DISK_FULL = (errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC))


def is_disk_full(error: BaseException) -> bool:
    """Whether ``error`` is an ``OSError`` meaning "no space left" (or "quota exceeded")."""
    return isinstance(error, OSError) and error.errno in _DISK_FULL


def disk_full_error(path: str | os.PathLike[str]) -> MediaError:
    """The :class:`MediaError` to raise when writing ``path`` ran out of disk space."""
    folder = Path(path).parent
    return MediaError(
        f"The disk is full: {Path(path).name} could not be written to {folder}.",
        "Free some disk space or choose another output folder, then try again. "
        "The previous version of the file, if any, was kept.",
    )


def _create_temp(path: Path) -> Path:
    """Create an empty, uniquely named temporary file beside ``path`` and return its path.

    The file is created with mode 0o666 filtered by the umask, like any new file, so the final
    file gets ordinary permissions.
    """
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    for _ in range(16):
        tmp = path.with_name(f".{path.name}.{secrets.token_hex(6)}{PARTIAL_SUFFIX}")
        try:
            fd = os.open(tmp, flags, 0o666)
        except FileExistsError:
            continue
        except OSError as e:
            if is_disk_full(e):
                raise disk_full_error(path) from e
            raise MediaError(
                f"Cannot create a file in {path.parent}: {e.strerror or e}.",
                "Check that the folder exists and that you may write to it, "
                "or choose another output folder.",
            ) from e
        os.close(fd)
        return tmp
    raise MediaError(
        f"Cannot find a free temporary file name in {path.parent}.",
        "Remove the stray '.*.partial' files in that folder and try again.",
    )


def _fsync_file(path: Path) -> None:
    """Flush a closed file's data to the disk."""
    fd = os.open(path, os.O_RDWR | getattr(os, "O_BINARY", 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_dir(folder: Path) -> None:
    """Flush a folder entry (the rename) to the disk; best effort, not possible on Windows."""
    if os.name == "nt":
        return
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        log.debug("fsync of folder %s is not supported", folder)
    finally:
        os.close(fd)


def _replace(tmp: Path, target: Path) -> None:
    """Move ``tmp`` onto ``target`` (atomic on POSIX and on Windows' NTFS)."""
    try:
        os.replace(tmp, target)
    except OSError as e:
        if is_disk_full(e):
            raise
        raise MediaError(
            f"Cannot replace {target}: {e.strerror or e}.",
            "Check that the file is not open in another program, is not a folder, "
            "and that you may write to its folder.",
        ) from e


def _remove_quietly(path: Path) -> None:
    try:
        path.unlink()
    except FileNotFoundError:
        pass
    except OSError as e:
        log.warning("Could not remove the temporary file %s: %s", path, e)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Give the caller a temporary path to write; on success it replaces ``path`` atomically.

    The temporary file exists (empty) when the block starts, so a writer such as ffmpeg must be
    told to overwrite it. On a normal exit the file is fsync'ed and renamed onto ``path``. On any
    exception, including ``KeyboardInterrupt`` and :class:`~studio.errors.Cancelled`, the
    temporary file is deleted, ``path`` is untouched and the exception propagates; an ``OSError``
    meaning "disk full" is raised as a :class:`MediaError` with a hint instead.

    Example::

        with atomic_path(out) as tmp:
            run_encoder(tmp)
    """
    target = Path(path)
    tmp = _create_temp(target)
    try:
        yield tmp
        _fsync_file(tmp)
        _replace(tmp, target)
    except BaseException as e:
        _remove_quietly(tmp)
        if is_disk_full(e):
            raise disk_full_error(target) from e
        raise
    _fsync_dir(target.parent)
    log.debug("Wrote %s", target)


def _write_all(fd: int, data: bytes | memoryview) -> None:
    """Write every byte of ``data`` to ``fd`` (``os.write`` may write fewer than asked)."""
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> None:
    """Replace the file at ``path`` with ``data`` atomically (see :func:`atomic_path`)."""
    with atomic_path(path) as tmp:
        fd = os.open(tmp, os.O_WRONLY | os.O_TRUNC | getattr(os, "O_BINARY", 0))
        try:
            _write_all(fd, data)
        finally:
            os.close(fd)


def atomic_write_text(path: str | os.PathLike[str], text: str) -> None:
    """Replace the file at ``path`` with ``text`` encoded as UTF-8, atomically.

    Newlines are written as ``\\n`` on every platform.
    """
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | os.PathLike[str], obj: Any, *, indent: int | None = 2) -> None:
    """Replace the file at ``path`` with ``obj`` as UTF-8 JSON (plus a final newline), atomically.

    The object is serialised before anything touches the disk, so an object that is not JSON
    serialisable raises ``TypeError`` (``ValueError`` for NaN or infinity, which JSON cannot
    represent) and leaves the previous file as it was.
    """
    text = json.dumps(obj, indent=indent, ensure_ascii=False, allow_nan=False)
    atomic_write_text(path, text + "\n")
