"""Streams: the connections that carry a party's events, over WebSocket or long-poll alike.

Attaching a stream subscribes it to its party's topics; ``welcome`` and ``replay`` give a
(re)connecting client exactly what it missed by its cursors (docs/PROTOCOL.md §4).
A stream is anything with ``deliver(text, event)`` and ``close(code, reason)``.
"""

from __future__ import annotations

import asyncio
import collections
import secrets
from typing import Any

from .accounts import Accounts
from .chats import Chats, may_see
from .context import Context
from .direct import Direct
from .invitations import Invitations
from .monitor import Monitor
from .presence import Presence
from .protocol import CLOSE_SESSION_ENDED, POLL_BUFFER_MAX, ApiError, Party, encode
from .routing import Routing
from .transfers import Transfers


class PollConn:
    """A long-poll connection: events collected between polls, and the poll waiting for them."""

    def __init__(self, conn_id: str, party: Party, now: float, on_close: Any):
        self.id = conn_id
        #: Called once when the connection closes (the streams forget it).
        self._on_close = on_close
        self.party = party
        self.buffer: list[tuple[str, dict | None]] = []
        self.overflow = False
        self.delivered: dict[int, int] = {}
        self.waiter: asyncio.Future | None = None
        #: When the client last polled (``clock.monotonic()``).
        self.last_poll = now
        self.closed = False

    def deliver(self, text: str, event: dict | None) -> None:
        if len(self.buffer) >= POLL_BUFFER_MAX:
            # Chat events come back from the database by the cursors, and snapshots are sent
            # afresh (see Streams.poll_collect); of the rest, keep the newest.
            self.overflow = True
            rest = [(t, e) for t, e in self.buffer if not (e and "seq" in e)]
            self.buffer = rest[-POLL_BUFFER_MAX // 2 :]
        self.buffer.append((text, event))
        self.wake()

    def wake(self) -> None:
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_result(None)

    def close(self, code: int, reason: str = "") -> None:
        """Like a WebSocket's close: a held poll answers now, and the connection is gone."""
        if self.closed:
            return
        self.closed = True
        self.wake()
        self._on_close(self)


class Streams:
    """Open streams by party and session, and what each gets on connecting and on polling."""

    def __init__(
        self,
        ctx: Context,
        accounts: Accounts,
        presence: Presence,
        monitor: Monitor,
        invitations: Invitations,
        chats: Chats,
        routing: Routing,
        transfers: Transfers,
        direct: Direct,
    ):
        self.config, self.hub, self.clock = ctx.config, ctx.hub, ctx.clock
        self.store = ctx.storage.chats
        self.accounts = accounts
        self.presence = presence
        self.monitor = monitor
        self.invitations = invitations
        self.chats = chats
        self.routing = routing
        self.transfers = transfers
        self.direct = direct
        self.poll_conns: dict[str, PollConn] = {}
        #: Open WebSockets per client address (``[limits] sockets_per_ip``).
        self.sockets_per_ip: collections.Counter = collections.Counter()
        self._session_streams: dict[int, set] = {}

    # -- attaching ----------------------------------------------------------------------------

    async def attach(self, stream: Any, party: Party) -> None:
        """Subscribe a stream (WebSocket or PollConn) to its party's topics."""
        if party.role == "visitor":
            self.hub.subscribe(stream, party.topic, "visitors")
            await self.monitor.stream_opened(party.visitor_id, party.ip, party.user_agent)
            return
        self.hub.subscribe(stream, party.topic, "ops")
        self._session_streams.setdefault(party.session_id, set()).add(stream)
        await self.presence.stream_opened(party.operator_id)

    def detach(self, stream: Any, party: Party) -> None:
        self.hub.unsubscribe(stream)
        if party.role != "operator":
            self.monitor.stream_closed(party.visitor_id)
            return
        streams = self._session_streams.get(party.session_id)
        if streams is not None:
            streams.discard(stream)
            if not streams:
                del self._session_streams[party.session_id]
        self.presence.stream_closed(party.operator_id)

    async def welcome(
        self, party: Party, cursors: dict[int, int], stream: Any = None
    ) -> list[tuple[str, Any]]:
        """What a newly identified stream gets: ``welcome``, snapshots, then the replay."""
        replay, chats = await self.replay(party, cursors)
        if stream is not None:
            self._note(stream, replay, {c.id: cursors[c.id] for c in chats if c.id in cursors})
        ev: dict[str, Any] = {
            "type": "welcome",
            "role": party.role,
            "heartbeat": self.config.realtime_heartbeat,
            "chats": [await self.chats.summary(c, party.role) for c in chats],
        }
        if party.role == "visitor":
            ev["visitor_id"] = party.visitor_id
            ev["online"] = self.presence.any_online()
            ev["departments"] = self.routing.departments.for_visitors()
            ev["typing_preview"] = self.config.chat_typing_preview
            extra = self.routing.position_events(party.visitor_id)
            inv = self.invitations.pending(party.visitor_id)
            if inv is not None:
                extra.append(self.invitations.invitation_event(inv))
        else:
            op = await self.accounts.store.operator(party.operator_id)
            ev["operator"] = self.routing.departments.operator_view(op)
            ev["departments"] = self.routing.departments.list()
            ev["directs"] = await self.direct.summaries(party.operator_id)
            extra = await self.snapshots(party.operator_id)
            extra += await self.transfers.welcome_events(party.operator_id)
        out = [(encode(ev), ev)] + [(encode(e), e) for e in extra]
        return out + replay

    async def snapshots(self, operator_id: int) -> list[dict]:
        """What an operator's console needs besides chat events: queue, team, visitors."""
        return [
            await self.routing.queue_event(operator_id),
            await self.presence.operators_event(),
            self.monitor.snapshot_event(),
        ]

    async def replay(self, party: Party, cursors: dict[int, int]):
        """Events the party missed according to its cursors (docs/PROTOCOL.md §4).

        Returns ``([(json, event-or-None)], [chats described])``; chat events come as stored
        JSON with a small dict carrying ``chat_id`` and ``seq`` for bookkeeping.
        """
        out: list[tuple[str, dict | None]] = []
        chats = []
        for chat_id, cursor in cursors.items():
            chat = await self.store.chat(chat_id)
            last = chat.last_vseq if chat and party.role == "visitor" else chat and chat.last_seq
            if chat is None or not may_see(party, chat) or cursor > last:
                ev = {"type": "reset", "chat_id": chat_id, "reason": "unknown_cursor"}
                out.append((encode(ev), ev))
                continue
            chats.append(chat)
            out.extend(await self.stored(party, chat.id, cursor))
        for chat in await self.chats.own_open_chats(party):
            if chat.id not in cursors:
                chats.append(chat)
                out.extend(await self.stored(party, chat.id, 0))
        return out, chats

    async def stored(self, party: Party, chat_id: int, after: int) -> list[tuple[str, dict]]:
        """The chat's events after the cursor, in the party's own sequence."""
        if party.role == "visitor":
            texts = await self.store.visitor_events_after(chat_id, after)
        else:
            texts = await self.store.events_after(chat_id, after)
        seq = after
        out = []
        for text in texts:
            seq += 1
            out.append((text, {"chat_id": chat_id, "seq": seq}))
        return out

    def _note(self, stream: Any, pairs: list[tuple[str, Any]], cursors: dict[int, int]) -> None:
        """In a cluster, the hub remembers how far each stream got in each chat (to notice a
        gap in what other processes send, and to catch up after Redis was away): as far as
        the client's cursor, then what the replay sent. (A client already up to date is
        replayed nothing, and a catch-up must not take that for nothing seen.)"""
        delivered = getattr(self.hub, "delivered", None)
        if delivered is None:
            return
        seen = delivered(stream)
        for chat_id, cursor in cursors.items():
            if cursor > seen.get(chat_id, 0):
                seen[chat_id] = cursor
        for _text, ev in pairs:
            if ev and "seq" in ev and ev["seq"] > seen.get(ev["chat_id"], 0):
                seen[ev["chat_id"]] = ev["seq"]

    async def fill(self, stream: Any, chat_id: int, after: int) -> None:
        """(In a cluster.) A chat's events the stream missed, from the database: another
        process's event arrived with a gap before it."""
        party = getattr(stream, "party", None)
        if party is None:
            return
        seen = self.hub.delivered(stream)
        for text, ev in await self.stored(party, chat_id, after):
            if ev["seq"] > seen.get(chat_id, 0):
                seen[chat_id] = ev["seq"]
                stream.deliver(text, ev)

    async def catch_up(self) -> None:
        """(In a cluster, when Redis is back, and every 2 s while it is away.) Every stream of
        this process gets what the others stored meanwhile: its chats' new events, a chat that
        became its own, and, for a console, the queue, the team and the visitors afresh."""
        for stream in self.hub.all_subscribers():
            party = getattr(stream, "party", None)
            if party is None or getattr(stream, "closed", False) is True:
                continue
            seen = self.hub.delivered(stream)
            replay, _chats = await self.replay(party, dict(seen))
            for text, ev in replay:
                if ev and "seq" in ev:
                    if ev["seq"] <= seen.get(ev["chat_id"], 0):
                        continue
                    seen[ev["chat_id"]] = ev["seq"]
                elif ev and ev.get("type") == "reset":
                    continue  # a chat it no longer follows: nothing to say
                stream.deliver(text, ev)
            if party.role == "operator":
                for snap in await self.snapshots(party.operator_id):
                    stream.deliver(encode(snap), snap)

    async def sync(self, party: Party, stream: Any, cursors: dict[int, int]) -> dict:
        """The ``sync`` command: replay by cursors into the stream that asked."""
        if stream is None:
            raise ApiError("unknown_type", "'sync' needs a stream; long-poll sends cursors instead")
        for text, ev in (await self.replay(party, cursors))[0]:
            stream.deliver(text, ev)
        return {}

    # -- sessions -----------------------------------------------------------------------------

    async def sessions_ended(self, session_ids: list[int], reason: str) -> None:
        """Close the streams of ended sessions (logout, password change, disabled, expiry)."""
        ev = {"type": "session_ended", "reason": reason}
        text = encode(ev)
        for sid in session_ids:
            for stream in list(self._session_streams.get(sid, ())):
                stream.deliver(text, ev)
                stream.close(CLOSE_SESSION_ENDED, reason)

    async def end_vanished_sessions(self) -> None:
        """Close streams whose session row is gone (``cutelive passwd``, expiry, another tool)."""
        if not self._session_streams:
            return
        gone = await self.accounts.vanished_sessions(list(self._session_streams))
        if gone:
            await self.sessions_ended(gone, "expired")

    # -- long-poll connections ----------------------------------------------------------------

    async def new_poll_conn(self, party: Party) -> PollConn:
        conn = PollConn(secrets.token_urlsafe(18), party, self.clock.monotonic(), self._closed)
        self.poll_conns[conn.id] = conn
        await self.attach(conn, party)
        return conn

    def _closed(self, conn: PollConn) -> None:
        if self.poll_conns.pop(conn.id, None) is not None:
            self.detach(conn, conn.party)

    def drop_forgotten_polls(self) -> None:
        """Long-poll connections whose client stopped polling are closed."""
        mono = self.clock.monotonic()
        expiry = self.config.realtime_poll_timeout + 30
        for conn in list(self.poll_conns.values()):
            if conn.waiter is None and mono - conn.last_poll > expiry:
                conn.close(1000)

    async def poll_collect(self, conn: PollConn, cursors: dict[int, int]) -> list[str]:
        """Events for a poll: a replay for what the client lacks, then the buffer, deduplicated."""
        out: list[str] = []
        have = dict(cursors)
        if conn.overflow:
            conn.overflow = False
            if conn.party.role == "operator":
                for snap in await self.snapshots(conn.party.operator_id):
                    out.append(encode(snap))
            for text, ev in (await self.replay(conn.party, cursors))[0]:
                out.append(text)
                if ev and "seq" in ev:
                    have[ev["chat_id"]] = ev["seq"]
        else:
            # A lost answer leaves the client behind what we handed out: replay the difference.
            for chat_id, sent in list(conn.delivered.items()):
                cur = cursors.get(chat_id, 0)
                chat = await self.store.chat(chat_id) if cur < sent else None
                if chat is not None and may_see(conn.party, chat):
                    for text, ev in await self.stored(conn.party, chat_id, cur):
                        out.append(text)
                        have[chat_id] = ev["seq"]
        for text, ev in conn.buffer:
            if ev and "seq" in ev:
                if ev["seq"] <= have.get(ev["chat_id"], 0):
                    continue
                have[ev["chat_id"]] = ev["seq"]
            out.append(text)
        conn.buffer = []
        for chat_id, seq in have.items():
            if seq > cursors.get(chat_id, 0):
                conn.delivered[chat_id] = seq
        return out

    def held_polls(self) -> int:
        return sum(
            1 for c in self.poll_conns.values() if c.waiter is not None and not c.waiter.done()
        )


def not_replayed(
    welcome: list[tuple[str, Any]], held: list[tuple[str, Any]], cursors: dict[int, int]
) -> list:
    """The live events held back while a stream's hello was answered, less the chat events
    the client has: those its replay carries (with a networked database the replay's reads give
    the loop back, and a message committed meanwhile arrives both ways), and those up to the
    cursor it sent (a cluster's catch-up may deliver a chat's events from the start to a
    stream whose welcome is not written yet). A chat the welcome reset keeps its events."""
    reset = {ev.get("chat_id") for _text, ev in welcome if ev and ev.get("type") == "reset"}
    has = {chat_id: cursor for chat_id, cursor in cursors.items() if chat_id not in reset}
    for _text, ev in welcome:
        if ev and "seq" in ev and "chat_id" in ev:
            has[ev["chat_id"]] = max(has.get(ev["chat_id"], 0), ev["seq"])
    return [
        (text, ev)
        for text, ev in held
        if not (ev and "seq" in ev and ev["seq"] <= has.get(ev.get("chat_id"), 0))
    ]
