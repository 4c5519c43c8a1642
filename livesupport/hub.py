"""Publish/subscribe between the domain and the open streams, behind a small interface.

In-process by default; a Redis-backed hub with the same methods carries events between
processes (DESIGN §9).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from .protocol import encode


class Hub:
    """In-process publish/subscribe from topics to subscribers.

    A subscriber is anything with ``deliver(text, event)``. Each event is encoded once and the
    same text goes to every subscriber. Topics used: ``v:ID`` (a visitor's streams), ``visitors``
    (all visitor streams), ``op:ID`` (an operator's streams), ``ops`` (all operator streams).
    To scale out, a Redis-backed hub with the same three methods forwards ``publish`` to the
    other processes.
    """

    #: A topic's subscribers are a tuple up to this many, a set beyond: most topics are one
    #: visitor's or one operator's (a set of one is 216 bytes, a tuple 48, for each of
    #: thousands of idle sockets), while ``visitors`` has them all.
    SMALL = 8

    def __init__(self) -> None:
        self._subs: dict[str, tuple | set] = {}
        #: Each subscriber's topics: a tuple, a few bytes for each of thousands of idle sockets.
        self._topics: dict[Any, tuple[str, ...]] = {}

    def subscribe(self, sub: Any, *topics: str) -> None:
        mine = self._topics.get(sub, ())
        for t in topics:
            subs = self._subs.get(t, ())
            if isinstance(subs, set):
                subs.add(sub)
            elif sub not in subs:
                self._subs[t] = (*subs, sub) if len(subs) < self.SMALL else {*subs, sub}
        self._topics[sub] = mine + tuple(t for t in dict.fromkeys(topics) if t not in mine)

    def unsubscribe(self, sub: Any) -> None:
        for t in self._topics.pop(sub, ()):
            subs = self._subs.get(t)
            if isinstance(subs, set):
                subs.discard(sub)
            elif subs is not None:
                subs = tuple(s for s in subs if s is not sub)
                self._subs[t] = subs
            if not subs:
                self._subs.pop(t, None)

    def all_subscribers(self) -> list:
        return list(self._topics)

    def count(self, topic: str) -> int:
        return len(self._subs.get(topic, ()))

    def publish(self, topics: Iterable[str], event: dict, text: str | None = None) -> None:
        """Send one event to the subscribers of any of the topics, once each."""
        if text is None:
            text = encode(event)
        seen = set()
        for t in topics:
            for sub in list(self._subs.get(t, ())):
                if sub not in seen:
                    seen.add(sub)
                    sub.deliver(text, event)


class Signal:
    """A change one domain object announces and others react to, without knowing each other.

    Listeners may be plain functions or coroutine functions; ``emit`` awaits them in the
    order they were connected.
    """

    def __init__(self, name: str):
        self.name = name
        self._listeners: list = []

    def connect(self, listener) -> None:
        self._listeners.append(listener)

    async def emit(self, *args: Any) -> None:
        for listener in self._listeners:
            result = listener(*args)
            if result is not None and hasattr(result, "__await__"):
                await result
