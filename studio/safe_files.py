"""Opening files that came from users without trusting them: regular files only, read bounded.

A FIFO, a socket or a device named like a weights file would make a plain ``open`` block or
read forever; these helpers refuse them before reading (:class:`NotARegularFile`, which callers
turn into their own specific error) and never block while checking.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path


class NotARegularFile(OSError):
    """The path exists but is a FIFO, socket, device or folder, not a regular file."""


def kind_of(path: Path) -> str:
    """"regular file", "folder", "FIFO", "socket", "device" or "missing" (symlinks followed)."""
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return "missing"
    if stat.S_ISREG(mode):
        return "regular file"
    if stat.S_ISDIR(mode):
        return "folder"
    if stat.S_ISFIFO(mode):
        return "FIFO"
    if stat.S_ISSOCK(mode):
        return "socket"
    return "device"


def is_regular_file(path: Path) -> bool:
    return kind_of(path) == "regular file"


def require_regular_file(path: Path) -> None:
    """Raise :class:`NotARegularFile` (or ``FileNotFoundError``) unless ``path`` is one."""
    kind = kind_of(Path(path))
    if kind == "missing":
        raise FileNotFoundError(2, "No such file", str(path))
    if kind != "regular file":
        raise NotARegularFile(f"{path} is a {kind}, not a regular file")


def read_bytes_bounded(path: Path, limit: int) -> bytes:
    """The whole content of a regular file of at most ``limit`` bytes.

    Opened non-blocking, so a FIFO swapped in after a check cannot hang the read; the type is
    checked on the open descriptor.
    """
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0))
    with os.fdopen(fd, "rb") as handle:
        info = os.fstat(handle.fileno())
        if not stat.S_ISREG(info.st_mode):
            raise NotARegularFile(f"{path} is not a regular file")
        if info.st_size > limit:
            raise ValueError(f"{path} is {info.st_size:,} bytes, over the {limit:,}-byte limit")
        return handle.read(limit + 1)[:limit]
