"""Ctrl+C in a command that runs jobs: the first cancels the running job at its next step (so it
keeps its saved state), a second one stops at once."""

from __future__ import annotations

import contextlib
import signal
import sys
from collections.abc import Iterator

from studio.engine.cancel import CancelToken


@contextlib.contextmanager
def sigint_cancels(cancel: CancelToken) -> Iterator[None]:
    """Within the block, the first Ctrl+C sets ``cancel``; the handler is restored after."""

    def on_sigint(signum: int, frame: object) -> None:
        print("\ncancelling the current job (Ctrl+C again to stop at once)", file=sys.stderr)
        cancel.set()
        signal.signal(signal.SIGINT, previous)

    previous = signal.signal(signal.SIGINT, on_sigint)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
