"""Stopping a run cleanly: SIGINT or SIGTERM asks for a stop after the current step (the state is then saved);
a second SIGINT aborts at once."""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Callable, Iterator


class StopRequest:
    """Whether a stop was asked for, and by which signal (`signal`, None if none did).

    Args:
        note: tells the user a message.
    """

    def __init__(self, note: Callable[[str], None]) -> None:
        self.note = note
        self.requested = False
        self.signal: int | None = None

    @contextlib.contextmanager
    def handling(self) -> Iterator[None]:
        """Within the block, SIGINT and SIGTERM request a stop (in the main thread; elsewhere nothing changes)."""
        if threading.current_thread() is not threading.main_thread():
            yield
            return

        def request_stop(signum, frame) -> None:
            if self.requested and signum == signal.SIGINT:
                raise KeyboardInterrupt
            self.requested, self.signal = True, signum
            self.note(f"{signal.Signals(signum).name} received: saving after this step "
                      "(press Ctrl-C again to abort without saving)")

        previous = {s: signal.signal(s, request_stop) for s in (signal.SIGINT, signal.SIGTERM)}
        try:
            yield
        finally:
            for s, handler in previous.items():
                signal.signal(s, handler)
