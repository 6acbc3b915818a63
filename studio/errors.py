"""Errors a person can act on.

Every error that reaches a user is a :class:`StudioError` carrying a message (what went wrong)
and a hint (what to do about it). This module is the lowest layer: everything may import it.
"""

from __future__ import annotations


class StudioError(Exception):
    """An error with a message for people and an actionable hint."""

    title = "Error"

    def __init__(self, message: str, hint: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return f"{self.message} ({self.hint})" if self.hint else self.message


class InvalidRequest(StudioError):
    """A generation request (or one of its fields) is not acceptable."""

    title = "Invalid settings"

    def __init__(self, field: str, message: str, hint: str = "") -> None:
        super().__init__(f"{field}: {message}", hint)
        self.field = field


class CheckpointError(StudioError):
    """A model file is missing, unreadable, of the wrong kind, or does not fit its set."""

    title = "Model file problem"


class OutOfMemory(StudioError):
    """The device ran out of memory."""

    title = "Out of memory"


class MediaError(StudioError):
    """An image or video could not be read or written."""

    title = "Media problem"


class Cancelled(Exception):  # noqa: N818 - it is an outcome, not a failure
    """The user cancelled the job. Nothing was written."""
