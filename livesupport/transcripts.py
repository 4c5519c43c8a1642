"""Reading conversations: a transcript as its reader may see it, the visitor's chats, and the
console's lists (the Chats page and History)."""

from __future__ import annotations

import json

from .chats import Chats
from .protocol import Party


class Transcripts:
    def __init__(self, chats: Chats):
        self.chats = chats
        self.store = chats.store

    async def transcript(self, party: Party, chat_id: int) -> dict:
        chat = await self.chats.chat_for(party, chat_id)
        if party.role == "visitor":
            stored = await self.store.visitor_events_after(chat.id, 0)
        else:
            stored = await self.store.events_after(chat.id, 0)
        events = [json.loads(t) for t in stored]
        return {"chat": await self.chats.summary(chat, party.role), "events": events}

    async def visitor_list(self, party: Party) -> list[dict]:
        """The visitor's chats, newest first."""
        chats = await self.store.visitor_chats(party.visitor_id)
        return [await self.chats.summary(c, "visitor") for c in chats]

    async def console_list(self, party: Party, status: str, limit: int, before: int):
        """Chats by status (or ``mine``, or ``open``: with their last message), newest first,
        for the console's Chats page and History."""
        mine = party.operator_id if status == "mine" else None
        status_filter = None if status == "mine" else status or None
        chats = await self.store.list_chats(status_filter, mine, limit, before)
        out = [await self.chats.summary(c, "operator") for c in chats]
        if status == "open":
            for s, c in zip(out, chats, strict=True):
                last = await self.store.last_message(c.id)
                s["last_message"] = (
                    {k: last[k] for k in ("from", "text", "ts", "seq")} if last else None
                )
        return out
