"""Receipts: how far each party of a chat has got, as two cursors per party ("delivered up to
seq N", "read up to seq N"). They are not chat events: they take no ``seq``, only move
forward, and reach both parties as an ephemeral ``receipt`` (docs/PROTOCOL.md §5.7).

Each party counts in its own numbering (a visitor's skips operator-only notes), so a cursor is
kept in both: ``{"visitor": {"delivered": [SEQ, VSEQ], "read": [SEQ, VSEQ]}, "operator": ...}``.
"""

from __future__ import annotations

import json

from .chats import Chats
from .context import Context
from .protocol import ApiError, Party, not_assigned, receipts_view
from .storage.records import Chat

KINDS = ("delivered", "read")


def _cursors(chat: Chat) -> dict:
    return json.loads(chat.receipts) if chat.receipts else {}


class Receipts:
    def __init__(self, ctx: Context, chats: Chats):
        self.hub = ctx.hub
        self.store = ctx.storage.chats
        self.chats = chats

    async def set(
        self, party: Party, chat_id: int, delivered: int | None = None, read: int | None = None
    ) -> dict:
        """The ``receipt`` command: move the party's cursors forward; returns the chat's."""
        if delivered is None and read is None:
            raise ApiError("invalid_field", "give 'delivered' or 'read'", field="read")
        chat = await self.chats.chat_for(party, chat_id)
        role = party.role
        if role == "operator" and chat.operator_id != party.operator_id:
            raise not_assigned(chat.id)
        last = chat.last_vseq if role == "visitor" else chat.last_seq
        for kind, value in (("delivered", delivered), ("read", read)):
            if value is not None and value > last:
                raise ApiError(
                    "invalid_field",
                    f"'{kind}' is beyond the chat's last seq {last}",
                    field=kind,
                    limit=last,
                )
        cursors = _cursors(chat)
        mine = cursors.get(role) or {k: [0, 0] for k in KINDS}
        own = 1 if role == "visitor" else 0  # where this party's own numbers are kept
        new_read = max(read or 0, mine["read"][own])
        wanted = {"read": new_read, "delivered": max(delivered or 0, new_read)}
        changed = False
        for kind in KINDS:
            if wanted[kind] > mine[kind][own]:
                mine[kind] = await self._both(chat, role, wanted[kind])
                changed = True
        if changed:
            cursors[role] = mine
            await self.store.set_receipts(chat, json.dumps(cursors, separators=(",", ":")))
            self._publish(chat, role)
        return {"receipts": receipts_view(chat.receipts, role)}

    async def _both(self, chat: Chat, role: str, value: int) -> list[int]:
        """``[seq, vseq]`` for a cursor given in the party's own numbering."""
        if chat.last_seq == chat.last_vseq:  # no notes in this chat: one numbering
            return [value, value]
        if role == "visitor":
            return [await self.store.seq_of_vseq(chat.id, value), value]
        return [value, await self.store.vseq_at(chat.id, value)]

    def _publish(self, chat: Chat, role: str) -> None:
        """Both parties learn of the moved cursors, each in its own numbering."""
        for who, topic in (
            ("visitor", f"v:{chat.visitor_id}"),
            ("operator", f"op:{chat.operator_id}"),
        ):
            if who == "operator" and not chat.operator_id:
                continue
            view = receipts_view(chat.receipts, who)[role]
            self.hub.publish(
                [topic], {"type": "receipt", "chat_id": chat.id, "party": role, **view}
            )
