"""Routing: which operators a waiting chat reaches, automatic assignment within each
operator's maximum, escalation of a department's chat nobody takes, and the visitor's place in
the queue with an estimated wait (docs/PROTOCOL.md §5.5).

Runs whenever the queue is due (``Chats.queue_due``: once per loop iteration however many
changes), one run at a time, so two assignments never decide on the same free slot.
"""

from __future__ import annotations

import asyncio
from collections import deque

from .chats import Chats
from .context import Context
from .departments import Departments
from .presence import Presence
from .protocol import ACTIVE, ONLINE, WAITING
from .storage.records import Chat, Department

#: The waits the estimate is the median of.
WAITS_KEPT = 20


class Routing:
    def __init__(self, ctx: Context, chats: Chats, departments: Departments, presence: Presence):
        self.config, self.hub, self.clock = ctx.config, ctx.hub, ctx.clock
        self.store = ctx.storage.departments
        self.chats = chats
        self.departments = departments
        self.presence = presence
        self._lock = asyncio.Lock()
        #: The last waits (ms) of each department's chats (None: of no department), newest first.
        self._waits: dict[int | None, deque[int]] = {}
        #: What each waiting chat's visitor was last told: (visitor, position, estimated wait).
        self._told: dict[int, tuple[int, int, int | None]] = {}
        #: When each operator last got a new chat (ms): the tie-break of assignment.
        self._last_new: dict[int, int] = {}
        #: Whether this process assigns chats. In a cluster only the process holding the lease
        #: does, so two processes never fill the same operator's last free slot at once.
        self.assigns = True
        chats.queue_due.connect(self.run)
        chats.changed.connect(self._chat_changed)
        presence.roster_changed.connect(self._slot_may_be_free)
        departments.changed.connect(chats.queue_changed)  # who sees which chat changed

    async def start(self) -> None:
        for dept, waits in (await self.store.recent_waits(WAITS_KEPT)).items():
            self._waits[dept] = deque(waits, maxlen=WAITS_KEPT)

    # -- the queue ----------------------------------------------------------------------------

    async def run(self) -> None:
        """Assign what can be assigned, then send each operator its queue and each waiting
        visitor its place."""
        async with self._lock:
            await self._assign()
            waiting = await self.chats.waiting_chats()
            await self._publish_queues(waiting)
            self._publish_positions(waiting)

    async def _item(self, chat: Chat) -> dict:
        item = dict(await self.chats.summary(chat, "operator"), first_message=chat.first_message)
        if chat.handed_over_by:
            item["handed_over_by"] = await self.chats.who(chat.handed_over_by)
        return item

    async def queue_event(self, operator_id: int) -> dict:
        """The waiting chats this operator may take, in queue order."""
        waiting = await self.chats.waiting_chats()
        mine = [c for c in waiting if self.departments.may_take(operator_id, c)]
        return {"type": "queue", "chats": [await self._item(c) for c in mine]}

    async def _publish_queues(self, waiting: list[Chat]) -> None:
        items = {c.id: await self._item(c) for c in waiting}
        if not self.departments.by_id:  # everyone sees everything: encoded once
            self.hub.publish(["ops"], {"type": "queue", "chats": list(items.values())})
            return
        for op_id in list(self.presence.present):
            ev = {
                "type": "queue",
                "chats": [items[c.id] for c in waiting if self.departments.may_take(op_id, c)],
            }
            self.hub.publish([f"op:{op_id}"], ev)

    # -- the visitor's place ------------------------------------------------------------------

    def estimated_wait(self, department_id: int | None) -> int | None:
        """The median of the pool's last waits, in seconds; None before there are any.
        (Not ``statistics.median``: its imports cost the executable's start.)"""
        waits = sorted(self._waits.get(department_id) or ())
        if not waits:
            return None
        mid = len(waits) // 2
        median = waits[mid] if len(waits) % 2 else (waits[mid - 1] + waits[mid]) / 2
        return round(median / 1000)

    def _positions(self, waiting: list[Chat]) -> dict[int, tuple[Chat, int, int | None]]:
        out: dict[int, tuple[Chat, int, int | None]] = {}
        count: dict[int | None, int] = {}
        for c in waiting:
            pool = c.department_id if self.departments.ref(c.department_id) else None
            count[pool] = count.get(pool, 0) + 1
            out[c.id] = (c, count[pool], self.estimated_wait(pool))
        return out

    def _publish_positions(self, waiting: list[Chat]) -> None:
        # A site without departments behaves as before they existed: no queue_position.
        places = self._positions(waiting) if self.departments.by_id else {}
        for chat_id in list(self._told):
            if chat_id not in places:
                del self._told[chat_id]
        for chat_id, (chat, position, estimate) in places.items():
            told = (chat.visitor_id, position, estimate)
            if self._told.get(chat_id) == told:
                continue
            self._told[chat_id] = told
            self.hub.publish([f"v:{chat.visitor_id}"], _position_event(chat_id, position, estimate))

    def position_events(self, visitor_id: int) -> list[dict]:
        """After ``welcome``: the place of the visitor's waiting chat, as last told (a chat
        that entered the queue since is told by the next run, on this stream too)."""
        return [
            _position_event(chat_id, position, estimate)
            for chat_id, (visitor, position, estimate) in self._told.items()
            if visitor == visitor_id
        ]

    def _chat_changed(self, chat: Chat) -> None:
        if chat.status == ACTIVE and chat.id in self._told and chat.accepted_at:
            # It left the queue for an operator: one more wait for the estimate.
            pool = chat.department_id if self.departments.ref(chat.department_id) else None
            waits = self._waits.setdefault(pool, deque(maxlen=WAITS_KEPT))
            waits.appendleft(max(0, chat.accepted_at - chat.queued_at))
            del self._told[chat.id]
        if chat.status != WAITING:
            self._slot_may_be_free()

    def changed_elsewhere(self) -> None:
        """(In a cluster.) Another process queued a chat, or took one from the queue, ended or
        moved it: the process that assigns looks again."""
        if self.assigns:
            self._slot_may_be_free()

    def _slot_may_be_free(self) -> None:
        """A chat ended or moved, or an operator came or went: with automatic assignment, a
        waiting chat may find an operator now."""
        if self._assigning():
            self.chats.queue_changed()

    def _assigning(self) -> bool:
        return any(d.auto_assign for d in self.departments.by_id.values())

    # -- assignment ---------------------------------------------------------------------------

    async def _assign(self) -> None:
        if not self.assigns or not self._assigning():
            return
        for chat in await self.chats.waiting_chats():
            d = self.departments.by_id.get(chat.department_id) if chat.department_id else None
            if d is None or not d.auto_assign:
                continue
            operator_id = await self._pick(d)
            if operator_id is None:
                continue
            if await self.chats.take(chat, operator_id, assigned=True) is not None:
                self._last_new[operator_id] = self.clock.now_ms()

    async def load(self, operator_id: int) -> int:
        """The operator's active chats now."""
        return sum(
            1 for c in await self.chats.store.operator_chats(operator_id) if c.status == ACTIVE
        )

    def capacity(self, max_chats: int | None) -> int:
        """An operator's maximum: its own, or ``[chat] max_chats``."""
        return self.config.chat_max_chats if max_chats is None else max_chats

    async def _pick(self, d: Department) -> int | None:
        """The online member with a free slot and the fewest active chats; ties: the one whose
        last new chat is oldest."""
        best = None
        for op_id in d.members:
            if self.presence.status_of(op_id) != ONLINE:
                continue
            op = await self.chats.accounts.operator(op_id)
            if op is None or op.disabled:
                continue
            load = await self.load(op_id)
            if load >= self.capacity(op.max_chats):
                continue
            key = (load, self._last_new.get(op_id, 0), op_id)
            if best is None or key < best:
                best = key
        return best[2] if best else None

    # -- escalation ---------------------------------------------------------------------------

    async def tick(self) -> None:
        """A department's chat waiting past its ``escalate_after`` is offered to everyone."""
        if not self.departments.by_id:
            return
        now = self.clock.now_ms()
        escalated = False
        for chat in await self.chats.waiting_chats():
            d = self.departments.by_id.get(chat.department_id) if chat.department_id else None
            if d is None or chat.escalated_at is not None:
                continue
            if now - chat.queued_at >= self.departments.escalate_after(d) * 1000:
                await self.chats.store.append_events(chat, [], {"escalated_at": now})
                escalated = True
        if escalated:
            self.chats.queue_changed()


def _position_event(chat_id: int, position: int, estimate: int | None) -> dict:
    return {
        "type": "queue_position",
        "chat_id": chat_id,
        "position": position,
        "estimated_wait": estimate,
    }
