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


class Clock:
    """Wall time in milliseconds, monotonic seconds, and timers on the running event loop."""

    def __init__(self) -> None:
        self._tasks: set[asyncio.Task] = set()

    def now_ms(self) -> int:
        """Milliseconds since the epoch: every timestamp in the protocol and the database."""
        return int(time.time() * 1000)

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
