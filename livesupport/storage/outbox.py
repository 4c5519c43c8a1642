"""The outbox: outgoing e-mail kept until the SMTP server accepts it (table ``outbox``).

A row is written in the same transaction as the record it is about (an offline message, a
reply), so a message is never stored without its mail nor a mail without its message. Each
try is claimed before it is made (``claim``), so one row is never sent by two senders, and
a crash during a try leaves the row queued for its next one.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..protocol import MAIL_FAILED, MAIL_QUEUED, MAIL_SENT
from .records import OutboxMail, from_row
from .schema import OutboxRow

if TYPE_CHECKING:
    from . import Storage

_FIELDS = tuple(OutboxMail.__dataclass_fields__)
#: The columns of a record (everything but the message's bytes).
_COLUMNS = [getattr(OutboxRow, f) for f in _FIELDS]


def _mail(row: OutboxRow) -> OutboxMail:
    return from_row(OutboxMail, row)


class OutboxStore:
    def __init__(self, storage: Storage):
        self._storage = storage

    def add(self, fields: dict[str, Any]) -> OutboxMail:
        """Queue a mail inside the caller's transaction (synchronous: for another store that
        writes the mail with its own record). ``fields``: kind, recipient, subject, message
        (bytes), created_at, and chat_id or offline_message_id."""
        row = OutboxRow.create(
            state=MAIL_QUEUED, attempts=0, next_attempt_at=fields["created_at"], **fields
        )
        return _mail(row)

    async def queue(self, fields: dict[str, Any]) -> OutboxMail:
        """Queue a mail on its own (see ``add``)."""

        def queue() -> OutboxMail:
            with self._storage.atomic():
                return self.add(fields)

        return await self._storage.run(queue)

    async def mail(self, mail_id: int) -> OutboxMail | None:
        q = OutboxRow.select(*_COLUMNS).where(OutboxRow.id == mail_id)
        rows = await self._storage.run(list, q)
        return _mail(rows[0]) if rows else None

    async def message(self, mail_id: int) -> bytes:
        """The mail's bytes, as the SMTP server will get them."""
        q = OutboxRow.select(OutboxRow.message).where(OutboxRow.id == mail_id)
        rows = await self._storage.run(list, q)
        return bytes(rows[0].message) if rows else b""

    async def due(self, now: int, limit: int) -> list[OutboxMail]:
        """Queued mail whose next try is due, the longest due first."""
        q = (
            OutboxRow.select(*_COLUMNS)
            .where((OutboxRow.state == MAIL_QUEUED) & (OutboxRow.next_attempt_at <= now))
            .order_by(OutboxRow.next_attempt_at, OutboxRow.id)
            .limit(limit)
        )
        return [_mail(r) for r in await self._storage.run(list, q)]

    async def next_due(self) -> int | None:
        """When the next queued mail is due (ms); None when nothing is queued."""
        q = (
            OutboxRow.select(OutboxRow.next_attempt_at)
            .where(OutboxRow.state == MAIL_QUEUED)
            .order_by(OutboxRow.next_attempt_at)
            .limit(1)
        )
        rows = await self._storage.run(list, q)
        return rows[0].next_attempt_at if rows else None

    async def due_now(self, now: int) -> None:
        """Make every queued mail due at ``now`` (at start: try what waits at once)."""
        q = OutboxRow.update(next_attempt_at=now).where(
            (OutboxRow.state == MAIL_QUEUED) & (OutboxRow.next_attempt_at > now)
        )
        await self._storage.run(q.execute)

    async def queued_count(self) -> int:
        q = OutboxRow.select().where(OutboxRow.state == MAIL_QUEUED)
        return await self._storage.run(q.count)

    async def claim(self, mail: OutboxMail, retry_at: int) -> bool:
        """Start a try: count it and set when the next one is due, before the mail goes out
        (a crash during the try then leaves it queued for that one). False when the row is
        no longer as ``mail`` says (another sender took it, or it is no longer queued)."""
        q = OutboxRow.update(attempts=mail.attempts + 1, next_attempt_at=retry_at).where(
            (OutboxRow.id == mail.id)
            & (OutboxRow.state == MAIL_QUEUED)
            & (OutboxRow.attempts == mail.attempts)
        )
        if await self._storage.run(q.execute) != 1:
            return False
        mail.attempts += 1
        mail.next_attempt_at = retry_at
        return True

    async def sent(self, mail: OutboxMail, at: int) -> None:
        """The SMTP server accepted the mail."""
        await self._finish(mail, state=MAIL_SENT, sent_at=at, last_error="")

    async def retry(self, mail: OutboxMail, error: str) -> None:
        """A try failed; the mail stays queued for the try ``claim`` set."""
        await self._finish(mail, last_error=error)

    async def failed(self, mail: OutboxMail, error: str) -> None:
        """The mail is given up: refused for good, or not accepted in time."""
        await self._finish(mail, state=MAIL_FAILED, last_error=error)

    async def _finish(self, mail: OutboxMail, **changes: Any) -> None:
        q = OutboxRow.update(**changes).where(OutboxRow.id == mail.id)
        await self._storage.run(q.execute)
        for k, v in changes.items():
            setattr(mail, k, v)

    async def recent(self, limit: int) -> list[OutboxMail]:
        """The newest mail first."""
        q = OutboxRow.select(*_COLUMNS).order_by(OutboxRow.id.desc()).limit(limit)
        return [_mail(r) for r in await self._storage.run(list, q)]

    async def for_offline_messages(self, message_ids: list[int]) -> list[OutboxMail]:
        """The mail about these offline messages (notifications, replies), oldest first."""
        if not message_ids:
            return []
        q = (
            OutboxRow.select(*_COLUMNS)
            .where(OutboxRow.offline_message_id.in_(message_ids))
            .order_by(OutboxRow.id)
        )
        return [_mail(r) for r in await self._storage.run(list, q)]
