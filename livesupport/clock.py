"""Time for the whole server: one object handed to everything that reads the time or sets a timer.

The server runs on ``Clock``, which reads the system clocks and schedules on the event loop.
Tests hand ``make_app`` a clock of their own, so a queue timeout is ``clock.advance(120)``
rather than a two-minute wait; nothing in the configuration selects it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Coroutine
from typing import Any, Protocol


class TimerHandle(Protocol):
    def cancel(self) -> None: ...


log = logging.getLogger("cutelive")


#: A clock that counts while the machine sleeps too, where there is one (Linux).
_STEADY = getattr(time, "CLOCK_BOOTTIME", time.CLOCK_MONOTONIC)


class Clock:
    """Wall time in milliseconds, monotonic seconds, and timers on the running event loop.

    The wall time is read from the system once, at start; after that it advances with a
    clock that never steps. So an NTP correction (or an administrator's ``date -s``) moves
    neither the order of anything nor a timeout, an expiry or a session's end: durations and
    timers run on elapsed time, and the timestamps follow the corrected clock from the next
    start.
    """

    def __init__(self) -> None:
        self._tasks: set[asyncio.Task] = set()
        self._wall0 = time.time()
        self._steady0 = time.clock_gettime(_STEADY)

    def now_ms(self) -> int:
        """Milliseconds since the epoch: every timestamp in the protocol and the database."""
        return int((self._wall0 + time.clock_gettime(_STEADY) - self._steady0) * 1000)

    def monotonic(self) -> float:
        """Seconds that only move forward: for rate limits, throttles and deadlines."""
        return time.monotonic()

    def call_later(self, delay: float, fn: Callable[[], Any]) -> TimerHandle:
        """Run ``fn`` after ``delay`` seconds; the handle's ``cancel()`` stops it."""
        return asyncio.get_running_loop().call_later(delay, fn)

    def spawn(self, coro: Coroutine) -> asyncio.Task:
        """Run a coroutine on its own (from a timer, say); a failure is logged, not lost."""
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(_finished)
        task.add_done_callback(self._tasks.discard)
        return task


def _finished(task: asyncio.Task) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("background task failed", exc_info=task.exception())
