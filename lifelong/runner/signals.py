"""How a run is asked to stop: Ctrl-C, SIGTERM or a caller's event (``StopFlag``), and the
tests' pause at a chosen step (``TestPause``)."""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import time
from pathlib import Path

from lifelong import checkpoint


class StopFlag:
    """Ctrl-C / SIGTERM, or the caller's ``stop_event``, ask the loop to stop after the
    current step and checkpoint; a signal sets the event too, so a live stream waiting for
    data (the served learner's) hears it."""

    def __init__(self, event: threading.Event | None = None) -> None:
        self._requested = False
        self.signum = signal.SIGINT  # the signal that asked (a caller's event counts as Ctrl-C)
        self._event = event
        self._old: dict = {}

    @property
    def requested(self) -> bool:
        return self._requested or (self._event is not None and self._event.is_set())

    def __enter__(self) -> StopFlag:
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(ValueError):  # not the main thread: leave signals alone
                self._old[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum, frame) -> None:
        if self._requested:
            if signum == signal.SIGINT:  # a second Ctrl-C stops at once
                raise KeyboardInterrupt
            return  # SIGTERM again (a service manager, a parent passing it on): already stopping
        self._requested, self.signum = True, signum
        if self._event is not None:  # a live stream waiting for data hears it too
            self._event.set()

    def __exit__(self, *exc) -> None:
        for sig, old in self._old.items():
            signal.signal(sig, old)


class TestPause:
    """Test-only: ``LIFELONG_TEST_PAUSE=STEP:FILE`` makes the run finish writing any
    checkpoint under way, touch FILE after step STEP and wait there (until SIGINT/SIGTERM or
    SIGKILL), so tests stop a run at a point they choose, with a known last checkpoint,
    instead of after a wall-clock delay that a fast machine outruns."""

    def __init__(self) -> None:
        step, _, flag = os.environ.get("LIFELONG_TEST_PAUSE", "").partition(":")
        self.step, self.flag = (int(step), Path(flag)) if flag else (None, None)

    def at(self, steps: int, stop: StopFlag, writer: checkpoint.Writer) -> None:
        if steps != self.step:
            return
        writer.wait()
        self.flag.touch()
        while not stop.requested:
            time.sleep(0.01)
