"""While benchmarks run, SIGTERM ends the run as Ctrl-C does, so that the results so far are kept (no pytest).

pytest handles KeyboardInterrupt (summary, session finish, the last flush of the results file); the
default SIGTERM action would kill the process without any of that. A handler the project installed
itself is left alone; ours is removed again by :meth:`SigtermAsInterrupt.restore`.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable
from types import FrameType

__all__ = ["SigtermAsInterrupt"]

#: What ``signal.getsignal`` gives back: a handler, ``SIG_DFL``/``SIG_IGN`` (ints), or None.
_Handler = Callable[[int, FrameType | None], object] | int | None


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt(f"signal {signum} (SIGTERM)")


class SigtermAsInterrupt:
    """SIGTERM raised as KeyboardInterrupt between :meth:`install` and :meth:`restore`."""

    def __init__(self) -> None:
        self._previous: _Handler = None

    def install(self) -> None:
        """Catch SIGTERM (once; in the main thread only, and only where nobody else handles it)."""
        if self._previous is not None or threading.current_thread() is not threading.main_thread():
            return
        if signal.getsignal(signal.SIGTERM) not in (signal.SIG_DFL, None):
            return
        self._previous = signal.signal(signal.SIGTERM, _interrupt)

    def restore(self) -> None:
        """Give SIGTERM back the handler it had before :meth:`install`."""
        if self._previous is not None:
            signal.signal(signal.SIGTERM, self._previous)
            self._previous = None
