"""SIGTERM handled as Ctrl-C: it raises `Interrupted`, so cleanup (`finally` blocks) runs and `molgen` exits with
128 + the signal's number (130 for SIGINT, 143 for SIGTERM), as a shell reports a process that the signal ended.

`molgen train` replaces this with its own handler during its steps (`molgen.train.signals`: a signal stops the run
after the current step and saves it).
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator


class Interrupted(KeyboardInterrupt):
    """A clean stop on a signal; `signum` is its number."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = int(signum)


@contextlib.contextmanager
def terminate_interrupts() -> Iterator[None]:
    """Within the block SIGTERM raises Interrupted(SIGTERM) as SIGINT raises KeyboardInterrupt (main thread only;
    elsewhere nothing changes)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum: int, frame: object) -> None:
        raise Interrupted(signum)

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
