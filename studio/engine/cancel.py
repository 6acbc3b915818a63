"""Cooperative cancellation shared between the GUI thread and the engine."""

from __future__ import annotations

import threading

from studio.errors import Cancelled


class CancelToken:
    """A thread-safe flag. The GUI calls :meth:`set`; the engine calls :meth:`check`.

    The engine checks before every model call, between VAE chunks, while loading and between
    export frames, so cancellation takes effect within one step.
    """

    __slots__ = ("_event",)

    def __init__(self) -> None:
        self._event = threading.Event()

    def set(self) -> None:
        self._event.set()

    @property
    def is_set(self) -> bool:
        return self._event.is_set()

    def check(self) -> None:
        """Raise :class:`~studio.errors.Cancelled` if cancellation was requested."""
        if self._event.is_set():
            raise Cancelled()


class _NeverCancel(CancelToken):
    """A token that cannot be set: the shared default for callers that cannot cancel."""

    __slots__ = ()

    def set(self) -> None:
        raise RuntimeError("NEVER is shared and cannot be set; create a CancelToken instead")


NEVER: CancelToken = _NeverCancel()
"""The default token for callers that cannot cancel (setting it is a programmer error)."""
