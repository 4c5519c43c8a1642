"""Several processes as one site: the hub's events, notices and shared state through Redis.

With ``[cluster] redis_url`` every process builds a ``RedisHub`` instead of the in-process
``Hub``. It delivers each published event to its own subscribers at once, as the ``Hub`` does,
and also sends it to the other processes over one Redis publish/subscribe channel, which
delivers to theirs. Redis delivers at most once and not at all while it is away; the database
stays the truth (DESIGN §9). So the hub remembers, for each subscriber, the last ``seq`` it
delivered of each chat: an event from another process that skips numbers (or any event after
Redis comes back, or a process vanishes) makes the streams read what is missing from the
database (``gaps``, ``reconnected``), and while Redis is away they read new events every 2 s.

Besides events, processes send one another *notices* (``notify(kind, data)``: a chat changed,
the settings changed, an operator's presence) and share small state under keys with an expiry
(``share``): each process's present operators. One process at a time holds the *lease*
(``leader``) and runs what must happen once: timeouts, expiries, purges.
"""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
import time
from collections.abc import Callable, Iterable
from typing import Any

from .config import ConfigError
from .hub import Hub, Signal
from .protocol import ApiError, encode
from .storage import safe_url

log = logging.getLogger("cutelive")


class ClusterUnusable(ConfigError):
    """``[cluster] redis_url`` cannot be used at start: the start is refused (exit status 2)."""


def cluster_namespace(database_url: str) -> str:
    """The prefix of a cluster's Redis keys and channel: processes on the same database are
    one site, and sites sharing a Redis server stay apart."""
    import urllib.parse

    u = urllib.parse.urlsplit(database_url)
    return f"cutelive:{u.hostname}:{u.port or 5432}{u.path}"


class RedisHub(Hub):
    """The hub of one process in a cluster (see the module's docstring)."""

    #: Seconds between a process's presence refreshes; its shared state lives 3 of them.
    REFRESH = 1.0
    #: Seconds the lease is held without renewal.
    LEASE = 5.0
    #: Seconds a process's stale part of shared state is kept in Redis; a state's key goes
    #: as long after the last share, so a site whose processes all stopped leaves no key.
    SHARED_KEPT = 60.0

    def __init__(self, url: str, namespace: str):
        super().__init__()
        self.url = url
        self.namespace = namespace
        #: This process among the others.
        self.origin = secrets.token_hex(6)
        self._channel = f"{namespace}:events"
        self._client: Any = None
        self._outgoing: list[bytes] = []
        self._flushing = False
        self._reader: asyncio.Task | None = None
        self._stopping = False
        #: Whether Redis answers: while it does not, streams read the database every 2 s.
        self.connected = False
        #: ``reconnected()``: Redis came back (or this process started): read what was missed.
        self.reconnected = Signal("reconnected")
        #: ``gaps(subscriber, chat_id, after)``: an event from another process skipped numbers.
        self.gaps = Signal("gaps")
        self._handlers: dict[str, Callable[[Any], Any]] = {}
        #: subscriber -> chat id -> the last seq delivered to it.
        self._delivered: dict[Any, dict[int, int]] = {}
        #: (subscriber, chat) pairs being filled from the database -> the newest seq that
        #: arrived meanwhile (the fill goes on until it has delivered that far).
        self._filling: dict[tuple[Any, int], int] = {}
        self._shared: dict[str, dict[str, Any]] = {}
        self._is_leader = False
        #: Tokens of rate limits taken here since the last batch: name -> key -> count.
        self._hits: dict[str, dict[Any, int]] = {}
        #: Requests to other processes waiting for their answer, by id.
        self._calls: dict[str, asyncio.Future] = {}
        self.on("reply", self._replied)
        #: Event type -> functions called with (origin, event) for each such event from
        #: another process, before its subscribers get it.
        self._watchers: dict[str, list[Callable[[str, dict], None]]] = {}

    # -- start and stop -----------------------------------------------------------------------

    async def start(self) -> None:
        """Connect and subscribe; a Redis that cannot be used is ``ClusterUnusable``."""
        import redis.asyncio as redis  # only when configured

        try:
            self._client = redis.from_url(self.url, socket_connect_timeout=5, socket_timeout=10)
            await self._client.ping()
        except Exception as e:
            raise ClusterUnusable(
                f"[cluster] redis_url: cannot use Redis at {safe_url(self.url)}: "
                f"{' '.join(str(e).split()) or type(e).__name__}"
            ) from None
        ready = asyncio.get_running_loop().create_future()
        self._reader = asyncio.get_running_loop().create_task(self._read(ready))
        await ready

    async def stop(self) -> None:
        self._stopping = True
        if self._is_leader:
            try:
                await self._client.delete(f"{self.namespace}:leader")
            except Exception:
                pass
        if self._reader is not None:
            self._reader.cancel()
            try:
                await self._reader
            except BaseException:
                pass
        if self._client is not None:
            try:
                await self._client.aclose()
            except Exception:
                pass

    async def _read(self, ready: asyncio.Future) -> None:
        pause = 0.2
        while not self._stopping:
            pubsub = self._client.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.subscribe(self._channel)
                was = self.connected
                self.connected = True
                pause = 0.2
                await self._load_shared()
                if not ready.done():
                    ready.set_result(None)
                elif not was:
                    log.info("Redis is back: events between processes flow again")
                await self.reconnected.emit()
                while not self._stopping:
                    msg = await pubsub.get_message(timeout=1.0)
                    if msg is not None and msg.get("type") == "message":
                        self._received(msg["data"])
            except asyncio.CancelledError:
                raise
            except Exception as e:
                if not ready.done():
                    ready.set_exception(
                        ClusterUnusable(f"[cluster] redis_url: cannot subscribe: {e}")
                    )
                    return
                if self.connected:
                    log.warning(
                        "Redis at %s is out of reach (%s): each process serves its own "
                        "connections and reads new events from the database every 2 s",
                        safe_url(self.url),
                        e,
                    )
                self.connected = False
                await asyncio.sleep(pause)
                pause = min(pause * 2, 2.0)
            finally:
                try:
                    await pubsub.aclose()
                except Exception:
                    pass

    # -- events -------------------------------------------------------------------------------

    def subscribe(self, sub: Any, *topics: str) -> None:
        super().subscribe(sub, *topics)
        self._delivered.setdefault(sub, {})

    def unsubscribe(self, sub: Any) -> None:
        super().unsubscribe(sub)
        self._delivered.pop(sub, None)

    def publish(self, topics: Iterable[str], event: dict, text: str | None = None) -> None:
        topics = list(topics)
        if text is None:
            text = encode(event)
        self._deliver_local(topics, event, text)
        self._send({"o": self.origin, "t": topics, "e": text})

    def _deliver_local(self, topics: list[str], event: dict, text: str, remote=False) -> None:
        seq, chat_id = event.get("seq"), event.get("chat_id")
        seen = set()
        for t in topics:
            for sub in list(self._subs.get(t, ())):
                if sub in seen:
                    continue
                seen.add(sub)
                if seq is None or chat_id is None:
                    sub.deliver(text, event)
                    continue
                last = self._delivered.setdefault(sub, {})
                before = last.get(chat_id)
                key = (sub, chat_id)
                if remote and key in self._filling:
                    self._filling[key] = max(self._filling[key], seq)
                    continue  # the fill from the database brings it
                if before is not None and seq <= before:
                    continue  # already delivered (a fill got there first)
                if before is not None and seq > before + 1:
                    # Numbers skipped: another process's event was lost on the way (it may
                    # have died before sending it); the database has it.
                    self._filling[key] = seq
                    asyncio.get_running_loop().create_task(self._fill(sub, chat_id))
                    continue
                last[chat_id] = seq
                sub.deliver(text, event)

    def delivered(self, sub: Any) -> dict[int, int]:
        """Chat id -> the last seq this subscriber was given (filled by the streams too)."""
        return self._delivered.setdefault(sub, {})

    async def _fill(self, sub: Any, chat_id: int) -> None:
        key = (sub, chat_id)
        try:
            for _ in range(10):
                last = self._delivered.get(sub, {}).get(chat_id, 0)
                if last >= self._filling.get(key, 0) or sub not in self._delivered:
                    break
                await self.gaps.emit(sub, chat_id, last)
        except Exception as e:  # the database is away too: the reconnect's catch-up helps
            log.debug("filling chat %s from the database: %s", chat_id, e)
        finally:
            self._filling.pop(key, None)

    def _received(self, data: bytes) -> None:
        try:
            msg = json.loads(data)
        except ValueError:
            return
        if msg.get("o") == self.origin:
            return
        if "e" in msg:
            text = msg["e"]
            try:
                event = json.loads(text)
            except ValueError:
                return
            for watcher in self._watchers.get(event.get("type"), ()):
                watcher(msg["o"], event)
            self._deliver_local(msg["t"], event, text, remote=True)
            return
        kind = msg.get("k")
        if kind == "share":
            self._shared.setdefault(msg["n"], {})[msg["o"]] = msg["d"]
        handler = self._handlers.get(kind if kind != "share" else f"share:{msg['n']}")
        if handler is not None:
            result = handler(msg.get("d"))
            if asyncio.iscoroutine(result):
                asyncio.get_running_loop().create_task(result)

    # -- notices and shared state -------------------------------------------------------------

    # -- limits across processes ------------------------------------------------------------

    def share_limits(self, limiters: list) -> None:
        """Rate limits that hold across the cluster: the tokens each process takes reach the
        others' buckets with the next batch it sends (``RateLimiter.taken_elsewhere``)."""
        by_name = {limiter.name: limiter for limiter in limiters}
        for limiter in limiters:
            limiter.shared = self._took

        def apply(data: dict) -> None:
            for name, hits in data.items():
                limiter = by_name.get(name)
                for key, n in hits if limiter is not None else ():
                    limiter.taken_elsewhere(tuple(key) if isinstance(key, list) else key, n)

        self.on("limits", apply)

    def _took(self, name: str, key: Any) -> None:
        per_key = self._hits.setdefault(name, {})
        per_key[key] = per_key.get(key, 0) + 1
        self._send_later(None)

    def watch(self, event_type: str, fn: Callable[[str, dict], None]) -> None:
        """Call ``fn(origin, event)`` for each event of this type another process publishes."""
        self._watchers.setdefault(event_type, []).append(fn)

    def live_origins(self) -> set[str]:
        """The other processes that shared their presence lately (every process does, each
        second): those alive."""
        return set(self.shared("presence"))

    # -- requests to one process -------------------------------------------------------------

    def serve(self, name: str, handler: Callable[[Any], Any]) -> None:
        """Answer ``call(origin, name, data)`` from other processes with ``await handler(data)``
        (an ``ApiError`` it raises is answered as that error)."""

        async def answer(msg: dict) -> None:
            if msg.get("to") != self.origin:
                return
            reply: dict = {"id": msg["id"], "to": msg["from"]}
            try:
                reply["result"] = await handler(msg["data"])
            except ApiError as e:
                reply["error"] = [e.code, e.message, e.status, e.extra]
            self.notify("reply", reply)

        self.on(f"call:{name}", answer)

    async def call(self, origin: str, name: str, data: Any, timeout: float = 5.0) -> Any:
        """Ask the process ``origin`` (``serve``); its answer, or its ``ApiError``."""
        request_id = secrets.token_hex(6)
        future = asyncio.get_running_loop().create_future()
        self._calls[request_id] = future
        self.notify(
            f"call:{name}", {"id": request_id, "from": self.origin, "to": origin, "data": data}
        )
        try:
            reply = await asyncio.wait_for(future, timeout)
        except TimeoutError:
            raise ApiError(
                "peer_unavailable",
                "the process serving that visitor did not answer in time; try again shortly",
                503,
                retry_after=2,
            ) from None
        finally:
            self._calls.pop(request_id, None)
        if "error" in reply:
            code, message, status, extra = reply["error"]
            raise ApiError(code, message, status, **(extra or {}))
        return reply.get("result")

    def _replied(self, reply: dict) -> None:
        if reply.get("to") == self.origin:
            future = self._calls.get(reply.get("id"))
            if future is not None and not future.done():
                future.set_result(reply)

    def on(self, kind: str, handler: Callable[[Any], Any]) -> None:
        """Call ``handler(data)`` for each notice of ``kind`` from another process."""
        self._handlers[kind] = handler

    def notify(self, kind: str, data: Any = None) -> None:
        """Tell the other processes (at most once; they also look again after a reconnect)."""
        self._send({"o": self.origin, "k": kind, "d": data})

    def share(self, name: str, data: Any) -> None:
        """This process's part of the state ``name`` (every process has one), for the others
        (``on("share:NAME", ...)``, ``shared(name)``); it lapses unless shared again within
        3 × ``REFRESH``."""
        stamped = {"until": time.time() + 3 * self.REFRESH, "data": data}
        self._send({"o": self.origin, "k": "share", "n": name, "d": stamped})
        key = f"{self.namespace}:{name}"
        self._send_later(("hset", key, self.origin, json.dumps(stamped)))
        self._send_later(("pexpire", key, int(self.SHARED_KEPT * 1000)))

    def shared(self, name: str) -> dict[str, Any]:
        """The other processes' live parts of ``name``, by process."""
        now = time.time()
        parts = self._shared.get(name, {})
        for origin in [o for o, p in parts.items() if p["until"] < now]:
            del parts[origin]
        return {o: p["data"] for o, p in parts.items() if o != self.origin}

    async def _load_shared(self) -> None:
        for name in list(self._shared) + ["presence"]:
            raw = await self._client.hgetall(f"{self.namespace}:{name}")
            now = time.time()
            part = self._shared.setdefault(name, {})
            for origin, value in raw.items():
                stamped = json.loads(value)
                if stamped["until"] >= now:
                    part[origin.decode()] = stamped
                elif stamped["until"] < now - self.SHARED_KEPT:
                    await self._client.hdel(f"{self.namespace}:{name}", origin)

    async def leader(self) -> bool:
        """Whether this process holds the lease for what must happen once (renewed on each
        call; a process that stops answering loses it after ``LEASE`` seconds)."""
        if not self.connected:
            return False
        key = f"{self.namespace}:leader"
        try:
            if self._is_leader:
                held = await self._client.get(key)
                if held is not None and held.decode() == self.origin:
                    await self._client.pexpire(key, int(self.LEASE * 1000))
                    return True
                self._is_leader = False
            self._is_leader = bool(
                await self._client.set(key, self.origin, nx=True, px=int(self.LEASE * 1000))
            )
        except Exception:
            self._is_leader = False
        return self._is_leader

    # -- sending ------------------------------------------------------------------------------

    def _send(self, msg: dict) -> None:
        self._send_later(("publish", self._channel, json.dumps(msg, separators=(",", ":"))))

    def _send_later(self, command: tuple | None) -> None:
        if command is not None:
            self._outgoing.append(command)
        if not self._flushing:
            self._flushing = True
            asyncio.get_running_loop().call_soon(
                lambda: asyncio.get_running_loop().create_task(self._flush())
            )

    async def _flush(self) -> None:
        """Everything published since the last flush, in order, in one round trip."""
        try:
            while (self._outgoing or self._hits) and not self._stopping:
                if self._hits:
                    hits = {n: list(per_key.items()) for n, per_key in self._hits.items()}
                    self._hits = {}
                    self._send({"o": self.origin, "k": "limits", "d": hits})
                batch, self._outgoing = self._outgoing, []
                if not self.connected:
                    continue  # at most once: the others read the database meanwhile
                pipe = self._client.pipeline(transaction=False)
                for command, *args in batch:
                    getattr(pipe, command)(*args)
                try:
                    await pipe.execute()
                except Exception as e:
                    log.debug("publishing to Redis failed: %s", e)
        finally:
            self._flushing = False
