"""Chats, their events (the persisted stream with per-chat ``seq``), and offline messages."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import peewee

from ..protocol import ACTIVE, OPEN_STATUSES, OPERATOR_ONLY_EVENTS, PENDING, WAITING
from .accounts import Duplicate, token_hash
from .group_commit import GroupCommit
from .records import CHAT_COLUMNS, Chat, OfflineMessage, OutboxMail, from_row
from .schema import OfflineMessageRow

if TYPE_CHECKING:
    from . import Storage

_CHAT_SQL = ", ".join(CHAT_COLUMNS)
_OPEN = "status IN (" + ", ".join("?" * len(OPEN_STATUSES)) + ")"


def _offline(row: OfflineMessageRow) -> OfflineMessage:
    return from_row(OfflineMessage, row)


def _dumps(ev: dict) -> str:
    return json.dumps(ev, ensure_ascii=False, separators=(", ", ": "))


def _as_visitor_sees(seq: int, vseq: int, data: str) -> str:
    """A stored event as the visitor gets it: numbered in the visitor's own sequence."""
    if seq == vseq:
        return data
    ev = json.loads(data)
    ev["seq"] = vseq
    return _dumps(ev)


class StoredEvent(tuple):
    """``(event, json)`` as operators get it (the chat's ``seq``), and ``visitor``: the same
    pair as the visitor gets it (numbered in its own sequence; the very same objects while the
    two sequences agree), or None for an event only operators receive."""

    visitor: tuple[dict, str] | None

    def __new__(cls, ev: dict, text: str, visitor: tuple[dict, str] | None):
        self = super().__new__(cls, (ev, text))
        self.visitor = visitor
        return self


class ChatStore:
    """Chats with a cache in front (the hot path reads a chat per message), and events.

    Every write to a chat goes through this class, which keeps the cached record current.
    """

    #: Chats kept in the cache at most; the oldest entry goes first.
    CACHE_SIZE = 20_000

    def __init__(self, storage: Storage):
        self._storage = storage
        self._chats: dict[int, Chat] = {}
        #: Off when other processes write the same chats (a cluster): every read asks the
        #: database.
        self.cached = True
        #: Messages that arrive together are stored together (SQLite); appends in order.
        self.group = GroupCommit(storage, self._append, self._changed)

    def _rows(self, sql: str, params: tuple) -> list[Chat]:
        return [Chat(*row) for row in self._storage.execute(sql, params).fetchall()]

    async def chat(self, chat_id: int) -> Chat | None:
        c = self._chats.get(chat_id) if self.cached else None
        if c is None:
            rows = await self._storage.run(
                self._rows, f"SELECT {_CHAT_SQL} FROM chat WHERE id = ?", (chat_id,)
            )
            if not rows:
                return None
            c = rows[0]
            if not self.cached:
                return c
            if len(self._chats) >= self.CACHE_SIZE:
                del self._chats[next(iter(self._chats))]
            self._chats[chat_id] = c
        return c

    async def open_chats(self) -> list[Chat]:
        sql = f"SELECT {_CHAT_SQL} FROM chat WHERE {_OPEN} ORDER BY id"
        return await self._storage.run(self._rows, sql, OPEN_STATUSES)

    async def visitor_chats(self, visitor_id: int, open_only: bool = False) -> list[Chat]:
        """A visitor's chats, newest first."""
        # Raw SQL: every visitor hello asks this twice (monitor, replay), and after a restart
        # 10,000 hellos come at once; building the query with peewee cost more than running it.
        if open_only:
            sql = f"SELECT {_CHAT_SQL} FROM chat WHERE visitor_id = ? AND {_OPEN} ORDER BY id DESC"
            return await self._storage.run(self._rows, sql, (visitor_id, *OPEN_STATUSES))
        sql = f"SELECT {_CHAT_SQL} FROM chat WHERE visitor_id = ? ORDER BY id DESC"
        return await self._storage.run(self._rows, sql, (visitor_id,))

    async def operator_chats(self, operator_id: int) -> list[Chat]:
        """An operator's open chats, oldest first."""
        sql = f"SELECT {_CHAT_SQL} FROM chat WHERE operator_id = ? AND {_OPEN} ORDER BY id"
        return await self._storage.run(self._rows, sql, (operator_id, *OPEN_STATUSES))

    async def list_chats(
        self, status: str | None, operator_id: int | None, limit: int, before: int
    ) -> list[Chat]:
        """Chats by status and operator, newest first, ``limit`` of them below id ``before``."""
        where, params = [], []
        if status == "open":
            where.append(_OPEN)
            params.extend(OPEN_STATUSES)
        elif status:
            where.append("status = ?")
            params.append(status)
        if operator_id is not None:
            where.append("operator_id = ?")
            params.append(operator_id)
        if before:
            where.append("id < ?")
            params.append(before)
        sql = f"SELECT {_CHAT_SQL} FROM chat"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY id DESC LIMIT ?"
        return await self._storage.run(self._rows, sql, (*params, limit))

    # -- events -------------------------------------------------------------------------------

    async def events_after(self, chat_id: int, after: int) -> list[str]:
        """The stored JSON of the chat's events with ``seq > after``, in order."""
        cur = await self._storage.run(
            self._storage.execute,
            "SELECT data FROM event WHERE chat_id = ? AND seq > ? ORDER BY seq",
            (chat_id, after),
        )
        return [row[0] for row in cur.fetchall()]

    async def visitor_events_after(self, chat_id: int, after: int) -> list[str]:
        """The chat's events a visitor receives, after ``after`` in the visitor's sequence,
        as the visitor gets them (no operator-only event; ``seq`` the visitor's own)."""
        cur = await self._storage.run(
            self._storage.execute,
            "SELECT seq, vseq, data FROM event WHERE chat_id = ? AND vseq > ? ORDER BY seq",
            (chat_id, after),
        )
        return [_as_visitor_sees(*row) for row in cur.fetchall()]

    async def last_message(self, chat_id: int) -> dict | None:
        row = await self._storage.fetchone(
            "SELECT data FROM event WHERE chat_id = ? AND type = 'message' "
            "ORDER BY seq DESC LIMIT 1",
            (chat_id,),
        )
        return json.loads(row[0]) if row else None

    async def event_by_client_id(
        self, chat_id: int, client_id: str, role: str = "operator"
    ) -> dict | None:
        """A stored message (or note) by its client id, as the party of ``role`` sees it; a
        visitor never sees an operator-only event."""
        row = await self._storage.fetchone(
            "SELECT seq, vseq, data FROM event WHERE chat_id = ? AND client_id = ?",
            (chat_id, client_id),
        )
        if row is None:
            return None
        if role == "operator":
            return json.loads(row[2])
        return json.loads(_as_visitor_sees(*row)) if row[1] is not None else None

    def _append(self, chat: Chat, events: list[dict], chat_changes: dict) -> list[StoredEvent]:
        execute = self._storage.execute
        out = []
        seq, vseq = execute(
            "SELECT last_seq, last_vseq FROM chat WHERE id = ?" + self._storage.dialect["lock_row"],
            (chat.id,),
        ).fetchone()
        for ev in events:
            seq += 1
            ev["chat_id"] = chat.id
            ev["seq"] = seq
            ev.setdefault("ts", self._storage.clock.now_ms())
            text = _dumps(ev)
            if ev["type"] in OPERATOR_ONLY_EVENTS:
                own, visitor = None, None
            else:
                vseq += 1
                own = vseq
                if vseq == seq:
                    visitor = (ev, text)
                else:
                    vev = dict(ev, seq=vseq)
                    visitor = (vev, _dumps(vev))
            execute(
                "INSERT INTO event (chat_id, seq, vseq, type, ts, client_id, data) "
                "VALUES (?, ?, ?, ?, ?, ?, ?)",
                (chat.id, seq, own, ev["type"], ev["ts"], ev.get("client_id"), text),
            )
            out.append(StoredEvent(ev, text, visitor))
        chat_changes.update(last_seq=seq, last_vseq=vseq)  # the caller's record follows
        execute(
            "UPDATE chat SET " + ", ".join(f"{k} = ?" for k in chat_changes) + " WHERE id = ?",
            (*chat_changes.values(), chat.id),
        )
        return out

    def _changed(self, chat: Chat, changes: dict) -> None:
        cached = self._chats.get(chat.id)
        for obj in (chat, cached) if cached is not None and cached is not chat else (chat,):
            for k, v in changes.items():
                setattr(obj, k, v)

    async def append_events(
        self,
        chat: Chat,
        events: list[dict],
        chat_changes: dict | None = None,
        also: tuple[str, tuple] | None = None,
    ) -> list[StoredEvent]:
        """Store events (and optional chat column changes) in one transaction, with ``also``:
        one more statement of another store that must commit with them (a file made complete).

        Each event gets the chat's next ``seq``; returns ``StoredEvent`` pairs in order. The
        caller publishes them only after this returns, i.e. after the commit. Raises
        ``Duplicate("client_id")``, storing nothing, when an event with one of the events'
        client ids was stored meanwhile (a retry that overtook the first send).
        """
        changes = dict(chat_changes or {})

        def append() -> list[StoredEvent]:
            with self._storage.atomic():
                if also is not None:
                    self._storage.execute(*also)
                return self._append(chat, events, changes)

        async with self.group.in_order():
            try:
                out = await self._storage.run(append)
            except peewee.IntegrityError as e:
                if "client_id" not in str(e):
                    raise
                raise Duplicate("client_id") from None
        self._changed(chat, changes)
        return out

    async def append_message(
        self, chat: Chat, event: dict, on_commit: Callable[[list[StoredEvent]], None]
    ) -> list[StoredEvent]:
        """Store one message (``append_events`` with one event and no chat changes) and hand
        its pair to ``on_commit`` as soon as it is committed, before anything else of the
        chat is stored; then return it. Raises ``Duplicate`` as ``append_events`` does. On
        SQLite it shares its commit with the messages that came in the same turn of the loop
        (``GroupCommit``)."""
        if self.group.on():
            return await self.group.add(chat, event, on_commit)
        pairs = await self.append_events(chat, [event])
        on_commit(pairs)
        return pairs

    async def create_chat(self, fields: dict, events: list[dict]) -> tuple[Chat, list]:
        """A new chat and its first events, in one transaction."""
        cols = [c for c in CHAT_COLUMNS if c != "id"]
        defaults = Chat.__dataclass_fields__
        values = {c: fields.get(c, defaults[c].default) for c in cols}
        values.update(last_seq=0)

        def create() -> tuple[Chat, list]:
            with self._storage.atomic():
                chat_id = self._storage.insert(
                    f"INSERT INTO chat ({', '.join(cols)}) VALUES ({', '.join('?' * len(cols))})",
                    [values[c] for c in cols],
                )
                chat = Chat(id=chat_id, **values)
                return chat, self._append(chat, events, {})

        chat, pairs = await self._storage.run(create)
        chat.last_seq = pairs[-1][0]["seq"] if pairs else 0
        chat.last_vseq = sum(1 for p in pairs if p.visitor is not None)
        return chat, pairs

    async def accept_chat(
        self, chat_id: int, operator_id: int, at: int, events: list[dict]
    ) -> tuple[Chat, list] | None:
        """Atomically assign a waiting (or pending) chat and store the events; None when it is
        no longer either (another operator was first)."""

        def claim() -> list | None:
            with self._storage.atomic():
                n = self._storage.execute(
                    "UPDATE chat SET operator_id = ?, status = ?, accepted_at = ?, "
                    "answered_at = COALESCE(answered_at, ?), handed_over_by = NULL, "
                    "pending_since = NULL WHERE id = ? AND status IN (?, ?)",
                    (operator_id, ACTIVE, at, at, chat_id, WAITING, PENDING),
                ).rowcount
                if n != 1:
                    return None
                self._chats.pop(chat_id, None)
                chat = self._rows(f"SELECT {_CHAT_SQL} FROM chat WHERE id = ?", (chat_id,))[0]
                return [chat, self._append(chat, events, {})]

        self._chats.pop(chat_id, None)
        async with self.group.in_order():
            got = await self._storage.run(claim)
        if got is None:
            return None
        chat, pairs = got
        chat.last_seq = pairs[-1][0]["seq"]
        chat.last_vseq += sum(1 for p in pairs if p.visitor is not None)
        if self.cached:
            self._chats[chat_id] = chat
        return chat, pairs

    async def delete_chat(self, chat_id: int) -> None:
        """A chat and everything of it: its events, files, links; mail and offline messages
        that named it keep their text but no longer point at it."""

        def delete() -> None:
            execute = self._storage.execute
            with self._storage.atomic():
                execute(
                    "DELETE FROM file_chunk WHERE file_id IN "
                    "(SELECT id FROM file WHERE chat_id = ?)",
                    (chat_id,),
                )
                for table in ("file", "event", "chat_link"):
                    execute(f"DELETE FROM {table} WHERE chat_id = ?", (chat_id,))
                for table in ("outbox", "offline_message"):
                    execute(f"UPDATE {table} SET chat_id = NULL WHERE chat_id = ?", (chat_id,))
                execute("DELETE FROM chat WHERE id = ?", (chat_id,))

        async with self.group.in_order():
            await self._storage.run(delete)
        self._chats.pop(chat_id, None)

    # -- receipts -----------------------------------------------------------------------------

    async def set_receipts(self, chat: Chat, receipts: str) -> None:
        """Store the chat's receipt cursors (``receipts.py`` owns their shape)."""
        await self._storage.run(
            self._storage.execute, "UPDATE chat SET receipts = ? WHERE id = ?", (receipts, chat.id)
        )
        self._changed(chat, {"receipts": receipts})

    async def seq_of_vseq(self, chat_id: int, vseq: int) -> int:
        """The chat's ``seq`` of the event the visitor numbers ``vseq``."""
        row = await self._storage.fetchone(
            "SELECT seq FROM event WHERE chat_id = ? AND vseq = ?",
            (chat_id, vseq),
        )
        return row[0] if row else 0

    async def vseq_at(self, chat_id: int, seq: int) -> int:
        """The visitor's number of its last event at or before the chat's ``seq``."""
        row = await self._storage.fetchone(
            "SELECT MAX(vseq) FROM event WHERE chat_id = ? AND seq <= ?",
            (chat_id, seq),
        )
        return row[0] or 0 if row else 0

    # -- links that reopen a conversation ----------------------------------------------------

    async def create_link(
        self, token: str, chat_id: int, visitor_id: int, created_at: int, expires_at: int
    ) -> None:
        """Store a link's token (its hash only) until it expires."""
        await self._storage.run(
            self._storage.execute,
            "INSERT INTO chat_link (token_hash, chat_id, visitor_id, created_at, expires_at) "
            "VALUES (?, ?, ?, ?, ?)",
            (token_hash(token), chat_id, visitor_id, created_at, expires_at),
        )

    # -- offline messages ---------------------------------------------------------------------

    async def offline_message_by_client_id(
        self, visitor_id: int, client_id: str
    ) -> OfflineMessage | None:
        row = await self._storage.run(
            OfflineMessageRow.get_or_none,
            (OfflineMessageRow.visitor_id == visitor_id)
            & (OfflineMessageRow.client_id == client_id),
        )
        return _offline(row) if row is not None else None

    async def create_offline_message(
        self, mail: dict | None = None, **fields: Any
    ) -> tuple[OfflineMessage, OutboxMail | None]:
        """A new offline message and, in the same transaction, its notification ``mail``
        (an outbox entry, see ``OutboxStore.add``)."""

        def create() -> tuple[OfflineMessage, OutboxMail | None]:
            with self._storage.atomic():
                msg = _offline(OfflineMessageRow.create(read=False, **fields))
                if mail is None:
                    return msg, None
                return msg, self._storage.outbox.add(dict(mail, offline_message_id=msg.id))

        return await self._storage.run(create)

    async def offline_message(self, message_id: int) -> OfflineMessage | None:
        row = await self._storage.run(
            OfflineMessageRow.get_or_none, OfflineMessageRow.id == message_id
        )
        return _offline(row) if row is not None else None

    async def reply_offline_message(
        self, message_id: int, text: str, operator_id: int, at: int, mail: dict
    ) -> tuple[OfflineMessage, OutboxMail] | None:
        """Keep an operator's reply with the message (marked read) and queue its ``mail``,
        in one transaction; None when the message has been answered already."""

        def reply() -> tuple[OfflineMessage, OutboxMail] | None:
            with self._storage.atomic():
                n = (
                    OfflineMessageRow.update(
                        reply_text=text, replied_at=at, replied_by=operator_id, read=True
                    )
                    .where(
                        (OfflineMessageRow.id == message_id)
                        & OfflineMessageRow.replied_at.is_null()
                    )
                    .execute()
                )
                if n != 1:
                    return None
                row = OfflineMessageRow.get_by_id(message_id)
                return _offline(row), self._storage.outbox.add(
                    dict(mail, offline_message_id=message_id)
                )

        return await self._storage.run(reply)

    async def offline_messages(self, limit: int = 500) -> list[OfflineMessage]:
        q = OfflineMessageRow.select().order_by(OfflineMessageRow.id.desc()).limit(limit)
        return [_offline(r) for r in await self._storage.run(list, q)]

    async def mark_offline_message(self, message_id: int, read: bool) -> OfflineMessage | None:
        def mark() -> OfflineMessageRow | None:
            OfflineMessageRow.update(read=read).where(OfflineMessageRow.id == message_id).execute()
            return OfflineMessageRow.get_or_none(OfflineMessageRow.id == message_id)

        row = await self._storage.run(mark)
        return _offline(row) if row is not None else None
