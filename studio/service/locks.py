"""Inter-process file locks: one writer of the queue at a time, and proof that a job's runner lives.

Two studio processes (the desktop app and ``studio queue run``, or two terminals) share one
``STUDIO_HOME``. A :class:`FileLock` is an exclusive advisory lock on a small file: ``flock`` on
POSIX, ``msvcrt.locking`` on Windows. The operating system releases it when its process ends for
any reason, SIGKILL and power loss included, so a lock that can be taken belongs to nobody alive.
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path

log = logging.getLogger(__name__)

if os.name == "nt":  # pragma: no cover - exercised on Windows only
    import msvcrt

    def _try_lock(fd: int) -> bool:
        try:
            os.lseek(fd, 0, os.SEEK_SET)
            msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
        except OSError:
            return False
        return True

    def _unlock(fd: int) -> None:
        os.lseek(fd, 0, os.SEEK_SET)
        msvcrt.locking(fd, msvcrt.LK_UNLCK, 1)

else:
    import fcntl

    def _try_lock(fd: int) -> bool:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        return True

    def _unlock(fd: int) -> None:
        fcntl.flock(fd, fcntl.LOCK_UN)


class LockTimeout(TimeoutError):
    """:meth:`FileLock.acquire` waited longer than its timeout."""


class FileLock:
    """An exclusive lock on ``path`` (the file is created when missing and never deleted).

    Not re-entrant and not shared between threads: each holder uses its own instance. Two
    instances for the same path conflict even inside one process (every instance opens its own
    file description), which is what lets a process test whether *someone else* holds a lock.
    """

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def try_acquire(self) -> bool:
        """Take the lock if it is free; never waits. True when this instance now holds it."""
        if self._fd is not None:
            return True
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | getattr(os, "O_BINARY", 0), 0o666)
        if _try_lock(fd):
            self._fd = fd
            return True
        os.close(fd)
        return False

    def acquire(self, timeout_s: float = 30.0, poll_s: float = 0.01) -> None:
        """Wait until the lock is free and take it; :class:`LockTimeout` after ``timeout_s``."""
        deadline = time.monotonic() + timeout_s
        while not self.try_acquire():
            if time.monotonic() > deadline:
                raise LockTimeout(f"{self.path} stayed locked for {timeout_s:.0f} s")
            time.sleep(poll_s)

    def release(self) -> None:
        if self._fd is None:
            return
        fd, self._fd = self._fd, None
        try:
            _unlock(fd)
        finally:
            os.close(fd)

    def __del__(self) -> None:  # a forgotten lock must not outlive its owner
        self.release()

    def __enter__(self) -> FileLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def is_locked_elsewhere(path: Path) -> bool:
    """Whether another holder (another process, or another instance here) holds ``path``."""
    if not Path(path).exists():
        return False
    probe = FileLock(path)
    if probe.try_acquire():
        probe.release()
        return False
    return True
