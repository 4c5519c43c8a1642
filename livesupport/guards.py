"""Guards that keep one process healthy under load: rate limits, the open-file guard, and the
event loop's own lag."""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from typing import Any

from .clock import Clock
from .protocol import rate_limited

log = logging.getLogger("cutelive")


class RateLimiter:
    """Token buckets per key: ``count`` events per ``period`` seconds, bursts up to ``count``.

    ``name`` is the limit's setting (``visitor_messages``), named in the error it raises.
    """

    def __init__(self, name: str, rate: tuple[int, float], clock: Clock):
        self.name = name
        self.count, period = rate
        self.period = period
        self.rate = self.count / period if period > 0 else float("inf")
        self.clock = clock
        self._buckets: dict[Any, list[float]] = {}
        #: In a cluster: told ``(name, key)`` of each token taken here, for the other
        #: processes (``taken_elsewhere``), so that a limit holds across them.
        self.shared: Callable[[str, Any], None] | None = None

    def _tokens(self, key: Any, now: float) -> list[float]:
        b = self._buckets.get(key)
        if b is None:
            b = self._buckets[key] = [float(self.count), now]
        b[0] = min(self.count, b[0] + (now - b[1]) * self.rate)
        b[1] = now
        return b

    def hit(self, key: Any) -> float:
        """Take one token; returns 0 when allowed, else the seconds until one is free."""
        b = self._tokens(key, self.clock.monotonic())
        if b[0] >= 1:
            b[0] -= 1
            if self.shared is not None:
                self.shared(self.name, key)
            return 0.0
        return (1 - b[0]) / self.rate

    def taken_elsewhere(self, key: Any, n: int) -> None:
        """Another process of the cluster took ``n`` tokens for ``key``."""
        b = self._tokens(key, self.clock.monotonic())
        b[0] = max(-self.count, b[0] - n)

    def check(self, key: Any, what: str) -> None:
        """Take one token or raise ``rate_limited`` naming the limit: "too many {what}"."""
        wait = self.hit(key)
        if wait:
            raise rate_limited(
                self.name,
                f"too many {what}; limit {self.name} is {self.count} per {self.period:g} s",
                wait,
            )

    def forget_idle(self) -> None:
        """Drop full buckets so that memory stays bounded by the active keys."""
        now = self.clock.monotonic()
        full = [
            k for k, b in self._buckets.items() if b[0] + (now - b[1]) * self.rate >= self.count
        ]
        for k in full:
            del self._buckets[k]


class FdGuard:
    """Keeps the process below its open-file limit: refuse new work before ``accept`` fails.

    Counting ``/proc/self/fd`` costs a few milliseconds at 20,000 files, so the count is
    estimated from the last real count plus the connections accepted since, and recounted
    only when the estimate nears the cap (and then at most every 100 ms).
    """

    def __init__(self, soft_ratio: float = 0.9, hard_ratio: float = 0.97):
        try:
            import resource

            soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
            if hard != resource.RLIM_INFINITY and soft < hard:
                resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
                soft = hard
        except (ImportError, ValueError, OSError):
            soft = 1024
        self.limit = soft if soft > 0 else 1024
        self.soft_cap = int(self.limit * soft_ratio)
        self.hard_cap = int(self.limit * hard_ratio)
        self._count = self.count_open()
        self._counted_at = time.monotonic()
        self._since = 0
        self._logged = 0.0

    @staticmethod
    def count_open() -> int:
        try:
            return len(os.listdir("/proc/self/fd"))
        except OSError:
            return 0

    def accepted(self) -> None:
        self._since += 1

    def estimate(self) -> int:
        est = self._count + self._since
        now = time.monotonic()
        if (est >= self.soft_cap or now - self._counted_at > 5) and now - self._counted_at > 0.1:
            self._count = self.count_open()
            self._counted_at = now
            self._since = 0
            est = self._count
        return est

    def full(self, hard: bool = False) -> bool:
        n = self.estimate()
        if n < (self.hard_cap if hard else self.soft_cap):
            return False
        now = time.monotonic()
        if now - self._logged > 60:
            self._logged = now
            log.warning(
                "%d of %d files open: refusing new connections (server_full)", n, self.limit
            )
        return True


class LagMonitor:
    """Measures the event loop's own lateness: a timer every ``interval`` notes how late it ran.

    Garbage-collection pauses and blocking calls show up here. ``snapshot(reset=True)`` returns
    the figures since the last reset.
    """

    def __init__(self, call_later, interval: float = 0.05):
        self.call_later = call_later
        self.interval = interval
        self._due = 0.0
        self.samples: list[float] = []
        self.max_ms = 0.0
        self._handle = None

    def start(self) -> None:
        self._due = time.monotonic() + self.interval
        self._handle = self.call_later(self.interval, self._tick)

    def stop(self) -> None:
        if self._handle is not None:
            self._handle.cancel()

    def _tick(self) -> None:
        now = time.monotonic()
        lag = max(0.0, (now - self._due) * 1000)
        if len(self.samples) < 100_000:
            self.samples.append(lag)
        self.max_ms = max(self.max_ms, lag)
        self._due = now + self.interval
        self._handle = self.call_later(self.interval, self._tick)

    def snapshot(self, reset: bool = False) -> dict:
        xs = sorted(self.samples)

        def pct(p: float) -> float:
            return round(xs[min(len(xs) - 1, int(p * len(xs)))], 2) if xs else 0.0

        out = {
            "samples": len(xs),
            "p50_ms": pct(0.5),
            "p99_ms": pct(0.99),
            "max_ms": round(self.max_ms, 2),
        }
        if reset:
            self.samples = []
            self.max_ms = 0.0
        return out
