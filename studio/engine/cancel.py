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


NEVER = CancelToken()
"""A token nobody sets; the default for callers that cannot cancel."""
