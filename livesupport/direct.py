"""Direct messages between operators (docs/PROTOCOL.md §5.6): numbered per pair of operators,
idempotent by the sender's client id, committed before they are acknowledged or published,
each side with its own read cursor.

A pair's sequence is separate from the chats': a console learns each conversation's last
``seq`` and its read cursor from ``welcome`` (``directs``) and fetches what it lacks with
``GET /api/console/direct/ID?after=SEQ``.
"""

from __future__ import annotations

from .context import Context
from .protocol import ApiError, Party, encode, invalid_field, operator_ref
from .storage.accounts import Duplicate
from .storage.records import DirectMessage, Operator

#: The most messages one ``GET /api/console/direct/ID`` answers (``more`` says there are more).
HISTORY_PAGE = 200


class Direct:
    """Sending, reading and resuming direct messages."""

    def __init__(self, ctx: Context):
        self.hub, self.clock = ctx.hub, ctx.clock
        self.store = ctx.storage.direct
        self.accounts = ctx.storage.accounts

    async def _colleague(self, party: Party, operator_id: int) -> Operator:
        """Another operator who exists; refused for myself or an unknown id."""
        if operator_id == party.operator_id:
            raise invalid_field("operator_id", "'operator_id' is you; write to a colleague")
        op = await self.accounts.operator(operator_id)
        if op is None:
            raise ApiError(
                "unknown_operator", f"no operator {operator_id}", 404, field="operator_id"
            )
        return op

    async def event(self, msg: DirectMessage, viewer: int) -> dict:
        """A message as ``viewer`` (one of its two operators) receives it."""
        sender = await self.accounts.operator(msg.from_id)
        receiver = await self.accounts.operator(msg.to_id)
        return {
            "type": "direct",
            "with": msg.to_id if viewer == msg.from_id else msg.from_id,
            "seq": msg.seq,
            "ts": msg.ts,
            "from": operator_ref(msg.from_id, sender.display_name if sender else ""),
            "to": operator_ref(msg.to_id, receiver.display_name if receiver else ""),
            "text": msg.text,
            "client_id": msg.client_id,
        }

    async def send(self, party: Party, operator_id: int, text: str, client_id: str) -> dict:
        """The ``direct`` command: a retry with a known client id returns the stored message."""
        me = party.operator_id
        again = await self.store.by_client_id(me, client_id)
        if again is not None:
            return {"direct": await self.event(again, me)}
        to = await self._colleague(party, operator_id)
        if to.disabled:
            raise ApiError(
                "operator_disabled",
                f"{to.display_name} is disabled and cannot read messages",
                409,
                field="operator_id",
            )
        try:
            msg = await self.store.add(me, to.id, text, client_id, self.clock.now_ms())
        except Duplicate:  # the same message, sent again before the first send had finished
            again = await self.store.by_client_id(me, client_id)
            if again is None:
                raise
            return {"direct": await self.event(again, me)}
        mine = await self.event(msg, me)
        self._publish(me, mine)
        self._publish(to.id, dict(mine, **{"with": me}))
        return {"direct": mine}

    def _publish(self, operator_id: int, ev: dict) -> None:
        # The streams' bookkeeping reads ``seq`` as a chat's: a direct message goes out as
        # text with only its type beside it (a long-poll overflow may drop it; the console
        # then sees a gap at the next one and fetches what it lacks).
        self.hub.publish([f"op:{operator_id}"], {"type": ev["type"]}, encode(ev))

    async def read(self, party: Party, operator_id: int, seq: int) -> dict:
        """The ``direct_read`` command: my read cursor forward to ``seq``; my other streams and
        the colleague (a read receipt) hear of it."""
        me = party.operator_id
        other = await self._colleague(party, operator_id)
        last = await self.store.last_seq(me, other.id)
        if seq > last:
            raise ApiError(
                "invalid_field",
                f"'seq' is beyond the last message ({last}) with operator {other.id}",
                field="seq",
                limit=last,
            )
        now = await self.store.set_read(me, other.id, seq)
        ev = {"type": "direct_read", "with": other.id, "reader": me, "seq": now}
        self._publish(me, ev)
        self._publish(other.id, dict(ev, **{"with": me}))
        return {"direct_read": {"with": other.id, "seq": now}}

    async def summaries(self, operator_id: int) -> list[dict]:
        """For ``welcome``: each conversation of the operator, with the colleague's name."""
        out = await self.store.summaries(operator_id)
        for s in out:
            op = await self.accounts.operator(s["with"])
            s["name"] = op.display_name if op else ""
        return out

    async def history(self, party: Party, operator_id: int, after: int) -> dict:
        """``GET /api/console/direct/ID?after=SEQ``: the messages after the cursor, oldest
        first, and both read cursors."""
        me = party.operator_id
        other = await self._colleague(party, operator_id)
        msgs = await self.store.after(me, other.id, after, HISTORY_PAGE + 1)
        return {
            "with": other.id,
            "messages": [await self.event(m, me) for m in msgs[:HISTORY_PAGE]],
            "more": len(msgs) > HISTORY_PAGE,
            "read_seq": await self.store.read_seq(me, other.id),
            "their_read_seq": await self.store.read_seq(other.id, me),
        }
