"""Direct messages between operators: one sequence per pair, and each side's read cursor."""

from __future__ import annotations

from typing import TYPE_CHECKING

import peewee

from .accounts import Duplicate
from .records import DirectMessage

if TYPE_CHECKING:
    from . import Storage

_COLUMNS = "seq, from_id, low_id, high_id, text, client_id, ts"


def _pair(a: int, b: int) -> tuple[int, int]:
    """The pair's key: its lower operator id first."""
    return (a, b) if a < b else (b, a)


def _message(row: tuple) -> DirectMessage:
    seq, from_id, low, high, text, client_id, ts = row
    return DirectMessage(seq, from_id, high if from_id == low else low, text, client_id, ts)


class DirectStore:
    def __init__(self, storage: Storage):
        self._storage = storage

    async def by_client_id(self, from_id: int, client_id: str) -> DirectMessage | None:
        """The message its sender sent with this client id, if any (a retry)."""
        row = await self._storage.fetchone(
            f"SELECT {_COLUMNS} FROM direct_message WHERE from_id = ? AND client_id = ?",
            (from_id, client_id),
        )
        return _message(row) if row else None

    async def add(
        self, from_id: int, to_id: int, text: str, client_id: str, ts: int
    ) -> DirectMessage:
        """Store a message with the pair's next seq, numbered and inserted in one transaction
        (committed when this returns). Raises ``Duplicate("client_id")`` when the sender's
        message with this client id was stored meanwhile (a retry that overtook it)."""
        low, high = _pair(from_id, to_id)
        lock = self._storage.dialect["lock_pair"]

        def add() -> DirectMessage:
            execute = self._storage.execute
            with self._storage.atomic():
                if lock:
                    execute(lock, (low, high))
                last = execute(
                    "SELECT COALESCE(MAX(seq), 0) FROM direct_message "
                    "WHERE low_id = ? AND high_id = ?",
                    (low, high),
                ).fetchone()[0]
                execute(
                    "INSERT INTO direct_message "
                    "(low_id, high_id, seq, from_id, text, client_id, ts) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (low, high, last + 1, from_id, text, client_id, ts),
                )
            return DirectMessage(last + 1, from_id, to_id, text, client_id, ts)

        try:
            return await self._storage.run(add)
        except peewee.IntegrityError:
            raise Duplicate("client_id") from None

    async def after(self, a: int, b: int, after: int, limit: int) -> list[DirectMessage]:
        """The pair's messages with ``seq > after``, oldest first, at most ``limit``."""
        cur = await self._storage.run(
            self._storage.execute,
            f"SELECT {_COLUMNS} FROM direct_message WHERE low_id = ? AND high_id = ? "
            "AND seq > ? ORDER BY seq LIMIT ?",
            (*_pair(a, b), after, limit),
        )
        return [_message(r) for r in cur.fetchall()]

    async def last_seq(self, a: int, b: int) -> int:
        row = await self._storage.fetchone(
            "SELECT COALESCE(MAX(seq), 0) FROM direct_message WHERE low_id = ? AND high_id = ?",
            _pair(a, b),
        )
        return row[0]

    async def read_seq(self, operator_id: int, other_id: int) -> int:
        """How far ``operator_id`` has read its conversation with ``other_id``."""
        row = await self._storage.fetchone(
            "SELECT seq FROM direct_read WHERE operator_id = ? AND other_id = ?",
            (operator_id, other_id),
        )
        return row[0] if row else 0

    async def set_read(self, operator_id: int, other_id: int, seq: int) -> int:
        """Move the read cursor forward to ``seq`` (never back); returns the cursor now."""

        def set_read() -> int:
            execute = self._storage.execute
            with self._storage.atomic():
                row = execute(
                    "SELECT seq FROM direct_read WHERE operator_id = ? AND other_id = ?",
                    (operator_id, other_id),
                ).fetchone()
                if row is None:
                    execute(
                        "INSERT INTO direct_read (operator_id, other_id, seq) VALUES (?, ?, ?)",
                        (operator_id, other_id, seq),
                    )
                    return seq
                if seq > row[0]:
                    execute(
                        "UPDATE direct_read SET seq = ? WHERE operator_id = ? AND other_id = ?",
                        (seq, operator_id, other_id),
                    )
                    return seq
                return row[0]

        return await self._storage.run(set_read)

    async def summaries(self, operator_id: int) -> list[dict]:
        """Per colleague the operator has messages with: ``{with, last_seq, read_seq,
        their_read_seq, unread}`` (unread: their messages after my read cursor)."""

        def summaries() -> list[dict]:
            execute = self._storage.execute
            me = operator_id
            out = []
            pairs = execute(
                "SELECT CASE WHEN low_id = ? THEN high_id ELSE low_id END AS other, MAX(seq) "
                "FROM direct_message WHERE low_id = ? OR high_id = ? GROUP BY low_id, high_id "
                "ORDER BY other",
                (me, me, me),
            ).fetchall()
            reads = dict(
                execute(
                    "SELECT other_id, seq FROM direct_read WHERE operator_id = ?", (me,)
                ).fetchall()
            )
            theirs = dict(
                execute(
                    "SELECT operator_id, seq FROM direct_read WHERE other_id = ?", (me,)
                ).fetchall()
            )
            for other, last in pairs:
                read = reads.get(other, 0)
                unread = execute(
                    "SELECT COUNT(*) FROM direct_message WHERE low_id = ? AND high_id = ? "
                    "AND from_id = ? AND seq > ?",
                    (*_pair(me, other), other, read),
                ).fetchone()[0]
                out.append(
                    {
                        "with": other,
                        "last_seq": last,
                        "read_seq": read,
                        "their_read_seq": theirs.get(other, 0),
                        "unread": unread,
                    }
                )
            return out

        return await self._storage.run(summaries)
