"""Canned replies: each operator's own and the shared ones (some for one department)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .accounts import Duplicate
from .records import CannedReply, from_row
from .schema import CannedReplyRow

if TYPE_CHECKING:
    from . import Storage


def _reply(row: CannedReplyRow) -> CannedReply:
    return from_row(CannedReply, row)


class CannedStore:
    def __init__(self, storage: Storage):
        self._storage = storage

    async def visible(self, operator_id: int) -> list[CannedReply]:
        """The operator's own replies and every shared one (the domain knows who belongs to
        which department), by shortcut."""

        def visible() -> list[CannedReply]:
            q = CannedReplyRow.select().where(
                (CannedReplyRow.operator_id == operator_id) | CannedReplyRow.operator_id.is_null()
            )
            return [_reply(r) for r in q.order_by(CannedReplyRow.shortcut, CannedReplyRow.id)]

        return await self._storage.run(visible)

    async def get(self, reply_id: int) -> CannedReply | None:
        def get() -> CannedReply | None:
            row = CannedReplyRow.get_or_none(CannedReplyRow.id == reply_id)
            return _reply(row) if row else None

        return await self._storage.run(get)

    def _unique(self, operator_id: int | None, shortcut: str, reply_id: int | None) -> None:
        """Shortcuts are unique per owner: among an operator's own, and among the shared."""
        owner = (
            CannedReplyRow.operator_id.is_null()
            if operator_id is None
            else CannedReplyRow.operator_id == operator_id
        )
        q = CannedReplyRow.select().where(owner & (CannedReplyRow.shortcut == shortcut))
        if reply_id is not None:
            q = q.where(CannedReplyRow.id != reply_id)
        if q.exists():
            raise Duplicate("shortcut")

    async def create(
        self, operator_id: int | None, department_id: int | None, shortcut: str, text: str
    ) -> CannedReply:
        """A new reply; raises ``Duplicate("shortcut")`` when its owner has that shortcut."""

        def create() -> CannedReply:
            with self._storage.atomic():
                self._unique(operator_id, shortcut, None)
                now = self._storage.clock.now_ms()
                row = CannedReplyRow.create(
                    operator_id=operator_id,
                    department_id=department_id,
                    shortcut=shortcut,
                    text=text,
                    created_at=now,
                    updated_at=now,
                )
                return _reply(row)

        return await self._storage.run(create)

    async def update(self, reply: CannedReply, changes: dict[str, Any]) -> CannedReply:
        """Change ``shortcut``, ``text`` or ``department_id``; raises ``Duplicate``."""

        def update() -> CannedReply:
            with self._storage.atomic():
                if "shortcut" in changes:
                    self._unique(reply.operator_id, changes["shortcut"], reply.id)
                CannedReplyRow.update(updated_at=self._storage.clock.now_ms(), **changes).where(
                    CannedReplyRow.id == reply.id
                ).execute()
                return _reply(CannedReplyRow.get_by_id(reply.id))

        return await self._storage.run(update)

    async def delete(self, reply_id: int) -> bool:
        def delete() -> bool:
            return CannedReplyRow.delete().where(CannedReplyRow.id == reply_id).execute() == 1

        return await self._storage.run(delete)
