"""When an operator goes: each of its active chats is handed over to the queue (at its head,
marked with who handed it over) when a colleague is online to take it, or kept as a pending
conversation; and the visitors in its chats learn its status."""

from __future__ import annotations

from .chats import Chats
from .context import Context
from .presence import Presence
from .protocol import ACTIVE, HAND_OVER, WAITING
from .storage.records import Chat


class Handover:
    def __init__(self, ctx: Context, chats: Chats, presence: Presence):
        self.hub, self.clock = ctx.hub, ctx.clock
        self.chats = chats
        self.presence = presence

    async def operator_status(self, operator_id: int, status: str) -> None:
        """Tell the visitors in an operator's open chats that it is online or away now."""
        for chat in await self.chats.store.operator_chats(operator_id):
            ev = {"type": "operator_status", "chat_id": chat.id, "status": status}
            self.hub.publish([f"v:{chat.visitor_id}"], ev)

    async def operator_left(self, operator_id: int, chats: str = HAND_OVER) -> None:
        """The operator went offline (or its console is gone): each active chat is handed over
        to the queue, at its head, when a colleague is online to take it and ``chats`` says so;
        otherwise it stays the operator's, pending."""
        for chat in await self.chats.store.operator_chats(operator_id):
            if chat.status != ACTIVE:
                continue
            if chats == HAND_OVER and self.presence.any_online():
                await self._hand_over(chat, operator_id)
            else:
                await self.chats.pend(chat, operator_id, "operator_offline")

    async def _hand_over(self, chat: Chat, operator_id: int) -> None:
        t = self.clock.now_ms()
        who = await self.chats.who(operator_id)
        event = {"type": "chat_requeued", "ts": t, "reason": "handed_over", "operator": who}
        changes = {
            "status": WAITING,
            "operator_id": None,
            "queued_at": t,
            "accepted_at": None,
            "handed_over_by": operator_id,
            "escalated_at": None,
        }
        pairs = await self.chats.store.append_events(chat, [event], changes)
        await self.chats.publish(chat, pairs, extra_topics=[f"op:{operator_id}"])
        self.chats.waiting[chat.id] = t
        self.chats.queue_changed()
