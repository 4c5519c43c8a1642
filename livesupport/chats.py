"""Conversations: starting, the queue, accepting, messages, typing, closing, missing, and the
pending state of a conversation whose operator went (``handover.py`` decides when).

Every chat event is committed (with its ``seq``) before it is acknowledged or published. A chat
an operator has answered is never lost: it is handed back to the queue only when a colleague
is online to take it, and otherwise stays assigned as *pending* until it is ended or
``[chat] pending_timeout`` passes.
"""

from __future__ import annotations

from collections.abc import Iterable

from .clock import Clock
from .context import Context
from .departments import Departments
from .guards import RateLimiter
from .hub import Hub, Signal
from .invitations import Invitations
from .presence import Presence
from .protocol import (
    ACTIVE,
    CLOSED,
    MAX_UA_CHARS,
    MISSED,
    ONLINE,
    OPEN_STATUSES,
    PENDING,
    TYPING_EXPIRES,
    WAITING,
    ApiError,
    Party,
    chat_closed,
    chat_summary,
    invalid_field,
    not_assigned,
    not_found,
    operator_ref,
)
from .site import Site
from .storage import StorageUnavailable
from .storage.accounts import Duplicate
from .storage.chats import StoredEvent
from .storage.records import Chat, Department


def message_event(who: str, op: dict | None, text: str, client_id: str, t: int) -> dict:
    return {
        "type": "message",
        "ts": t,
        "from": who,
        "operator": op,
        "text": text,
        "client_id": client_id,
    }


def may_see(party: Party, chat: Chat) -> bool:
    if party.role == "visitor":
        return chat.visitor_id == party.visitor_id
    return True  # operators are staff; every transcript is theirs to read


def own_active(party: Party, chat: Chat) -> None:
    """An operator may act on an open chat assigned to them, and on no other."""
    if chat.status not in OPEN_STATUSES:
        raise chat_closed(chat.id, chat.status)
    if chat.operator_id != party.operator_id:
        raise not_assigned(chat.id)


class Typing:
    """Typing indicators: ephemeral, throttled to one ``typing: true`` a second per side; with
    the typing preview, the visitor's text changes go out at most 4 times a second."""

    def __init__(self, hub: Hub, clock: Clock, preview: bool = False):
        self.hub = hub
        self.clock = clock
        self.preview = preview
        #: (chat, side) -> (when the last typing: true went out, the text it carried)
        self._sent: dict[tuple[int, str], tuple[float, str | None]] = {}

    def set(self, chat: Chat, who: str, typing: bool, text: str | None = None) -> None:
        key = (chat.id, who)
        mono = self.clock.monotonic()
        last = self._sent.get(key)
        if not self.preview or who != "visitor":
            text = None  # never forwarded unless the site chose to
        if typing:
            if last is not None:
                gap = mono - last[0]
                new_text = text is not None and text != last[1]
                if gap < (0.25 if new_text else 1.0):
                    return  # throttled: the receiver still shows the last one
            self._sent[key] = (mono, text)
        elif self._sent.pop(key, None) is None:
            return  # nothing to clear
        self._send(chat, who, typing, text)

    def stop(self, chat: Chat, who: str) -> None:
        """After a message: the sender no longer types."""
        if self._sent.pop((chat.id, who), None) is not None:
            self._send(chat, who, False, None)

    def forget(self, chat_id: int) -> None:
        self._sent.pop((chat_id, "visitor"), None)
        self._sent.pop((chat_id, "operator"), None)

    def _send(self, chat: Chat, who: str, typing: bool, text: str | None) -> None:
        if who == "visitor":
            if not chat.operator_id:
                return
            topic = f"op:{chat.operator_id}"
        else:
            topic = f"v:{chat.visitor_id}"
        ev = {
            "type": "typing",
            "chat_id": chat.id,
            "from": who,
            "typing": typing,
            "expires_in": TYPING_EXPIRES,
        }
        if text is not None and typing:
            ev["text"] = text
        self.hub.publish([topic], ev)


class Chats:
    """The chats and their queue. Announces ``changed(chat)`` after any change of a chat's
    status or operator."""

    def __init__(
        self,
        ctx: Context,
        presence: Presence,
        invitations: Invitations,
        site: Site,
        departments: Departments,
    ):
        config, hub, clock = ctx.config, ctx.hub, ctx.clock
        self.config, self.hub, self.clock = config, hub, clock
        self.store, self.accounts = ctx.storage.chats, ctx.storage.accounts
        self.presence = presence
        self.invitations = invitations
        self.site = site
        self.departments = departments
        self.typing = Typing(hub, clock, config.chat_typing_preview)
        self.rl_messages = RateLimiter("visitor_messages", config.limits_visitor_messages, clock)
        self.rl_chats = RateLimiter("chats_per_ip", config.limits_chats_per_ip, clock)
        #: Waiting chat id -> queued_at (ms), oldest first when sorted.
        self.waiting: dict[int, int] = {}
        #: Pending chat id -> pending_since (ms).
        self.pending: dict[int, int] = {}
        #: Visitor-facing mail (reply links, transcripts) can be sent.
        self.mail = config.mail_enabled
        self._queue_dirty = False
        self.changed = Signal("chat_changed")
        #: ``queue_due()``: the queue changed (once per loop iteration however many changes);
        #: routing assigns what it can and sends each operator its queue.
        self.queue_due = Signal("queue_due")
        #: ``replied(chat, event)``: an operator wrote in a chat (the visitor may be away).
        self.replied = Signal("replied")

    async def start(self) -> set[int]:
        """Load the queue after a (re)start; returns the operators who have open chats. Times
        stamped before the system clock was set back count from now, not from the future."""
        operators, now = set(), self.clock.now_ms()
        for chat in await self.store.open_chats():
            if chat.status == WAITING:
                self.waiting[chat.id] = min(chat.queued_at, now)
            elif chat.status == PENDING:
                self.pending[chat.id] = min(chat.pending_since or chat.created_at, now)
            elif chat.operator_id:
                operators.add(chat.operator_id)
        return operators

    # -- reading ------------------------------------------------------------------------------

    async def summary(self, chat: Chat, role: str) -> dict:
        op = await self.accounts.operator(chat.operator_id) if chat.operator_id else None
        s = chat_summary(chat, role, op, self.departments.ref(chat.department_id))
        s["operator_status"] = self.presence.status_of(op.id) if op else None
        return s

    async def chat_for(self, party: Party, chat_id: int) -> Chat:
        """A chat the party may see; any other id gets the same 404 as a missing one."""
        chat = await self.store.chat(chat_id)
        if chat is None or not may_see(party, chat):
            raise not_found(f"no chat {chat_id}", chat_id=chat_id)
        return chat

    async def own_open_chats(self, party: Party) -> list[Chat]:
        if party.role == "visitor":
            return (await self.store.visitor_chats(party.visitor_id, open_only=True))[::-1]
        return await self.store.operator_chats(party.operator_id)

    # -- the queue ----------------------------------------------------------------------------

    def queue_changed(self) -> None:
        """Consoles get the new queue once per loop iteration, however many changes."""
        if self._queue_dirty:
            return
        self._queue_dirty = True

        async def flush() -> None:
            self._queue_dirty = False
            await self.queue_due.emit()

        self.clock.call_later(0, lambda: self.clock.spawn(flush()))

    async def waiting_chats(self) -> list[Chat]:
        """The waiting chats in queue order: handed-over conversations first, then oldest."""
        # (A copy: with a networked database the reads suspend, and the queue may change.)
        since = dict(self.waiting)
        chats = [c for c in [await self.store.chat(cid) for cid in since] if c]
        chats.sort(key=lambda c: (c.handed_over_by is None, since[c.id]))
        return chats

    async def tick(self) -> None:
        """Queue timeouts (a chat nobody ever answered is missed; an answered one waits on as
        pending), and pending timeouts (forgotten once closed: on a full disk, next tick)."""
        now = self.clock.now_ms()
        for chat_id, queued_at in list(self.waiting.items()):
            if now - queued_at >= self.config.chat_queue_timeout * 1000:
                await self.miss(chat_id)
        for chat_id, since in list(self.pending.items()):
            if now - since >= self.config.chat_pending_timeout * 1000:
                chat = await self.store.chat(chat_id)
                if chat is None or chat.status != PENDING:
                    self.pending.pop(chat_id, None)
                else:
                    event = {"type": "chat_closed", "by": "system", "reason": "pending_timeout"}
                    await self._end(chat, CLOSED, event)

    # -- publishing ---------------------------------------------------------------------------

    async def publish(self, chat: Chat, pairs: list, extra_topics: Iterable[str] = ()) -> None:
        ops = [f"op:{chat.operator_id}"] if chat.operator_id else []
        ops.extend(extra_topics)
        self.deliver(chat, pairs, ops)
        if any(ev["type"] not in ("message", "note") for ev, _ in pairs):
            await self.changed.emit(chat)

    def deliver(self, chat: Chat, pairs: list[StoredEvent], op_topics: list | None = None) -> None:
        """Stored events to the chat's visitor (only those it receives, in its own sequence)
        and to the operator topics given (by default, the chat's operator's)."""
        if op_topics is None:
            op_topics = [f"op:{chat.operator_id}"] if chat.operator_id else []
        visitor = f"v:{chat.visitor_id}"
        for pair in pairs:
            ev, text = pair
            seen = pair.visitor
            if seen is not None and seen[1] is text:  # the same for everyone: encoded once
                self.hub.publish([visitor, *op_topics], ev, text)
                continue
            if op_topics:
                self.hub.publish(op_topics, ev, text)
            if seen is not None:
                self.hub.publish([visitor], *seen)

    async def who(self, operator_id: int) -> dict:
        o = await self.accounts.operator(operator_id)
        return operator_ref(operator_id, o.display_name if o else "")

    # -- starting -----------------------------------------------------------------------------

    async def _open_chat_of(self, party: Party, client_id: str | None) -> dict | None:
        """A visitor has at most one open chat: the same first client id returns it again."""
        for chat in await self.store.visitor_chats(party.visitor_id, open_only=True):
            first = (
                await self.store.event_by_client_id(chat.id, client_id, "visitor")
                if client_id
                else None
            )
            if first is not None:
                return {"chat": await self.summary(chat, "visitor"), "message": first}
            raise ApiError(
                "chat_already_open",
                f"chat {chat.id} is still open; send messages there",
                409,
                chat_id=chat.id,
            )
        return None

    async def start_chat(self, party: Party, **form: str) -> dict:
        """The visitor's ``start_chat``: its pre-chat form and first message (``form``)."""
        again = await self._open_chat_of(party, form["client_id"])
        if again is not None:
            return again
        self.site.check_prechat(form)
        form.setdefault("name", "")
        department = await self.departments.for_chat(form.get("department"))
        self.rl_chats.check(party.ip, "new chats from this address")
        self.rl_messages.check(party.visitor_id, "messages")
        chat, pairs = await self._create(party, form, department=department)
        self.invitations.chat_started(party.visitor_id)
        return {"chat": await self.summary(chat, "visitor"), "message": pairs[-1].visitor[0]}

    async def accept_invitation(self, party: Party, invitation_id: str, **form: str) -> dict:
        """The visitor accepts an invitation, optionally with a name and a first message."""
        inv = self.invitations.pending(party.visitor_id)
        if inv is None or inv["id"] != invitation_id:
            raise not_found("no such invitation, or it expired")
        if form.get("text") and not form.get("client_id"):
            raise invalid_field("client_id", "'client_id' is required with 'text'")
        await self._open_chat_of(party, None)
        self.rl_chats.check(party.ip, "new chats from this address")
        self.invitations.answer(party.visitor_id, invitation_id, True)
        form["name"] = form.get("name") or "Visitor"
        chat, _pairs = await self._create(party, form, invitation=inv)
        return {"chat": await self.summary(chat, "visitor")}

    async def _create(
        self,
        party: Party,
        form: dict,
        invitation: dict | None = None,
        department: Department | None = None,
    ):
        """Store a new chat with its first events; accepted at once for an operator's invitation
        when that operator is online, otherwise queued."""
        name, text, client_id = form["name"], form.get("text", ""), form.get("client_id")
        email = form.get("email", "")
        page_url, page_title = form.get("page_url", ""), form.get("page_title", "")
        t = self.clock.now_ms()
        op = invitation["operator"] if invitation else None
        active = op is not None and self.presence.status_of(op["id"]) == ONLINE
        started = {
            "type": "chat_started",
            "ts": t,
            "name": name,
            "email": email,
            "page_url": page_url,
            "page_title": page_title,
        }
        if invitation:
            started["invitation"] = {"message": invitation["message"], "operator": op}
        events = [started]
        if active:
            events.append({"type": "chat_accepted", "ts": t, "operator": op})
        if text:
            events.append(message_event("visitor", None, text, client_id, t))
        fields = {
            "visitor_id": party.visitor_id,
            "status": ACTIVE if active else WAITING,
            "operator_id": op["id"] if active else None,
            "accepted_at": t if active else None,
            "answered_at": t if active else None,
            "name": name,
            "email": email,
            "page_url": page_url,
            "page_title": page_title,
            "ip": party.ip,
            "user_agent": party.user_agent[:MAX_UA_CHARS],
            "created_at": t,
            "queued_at": t,
            "closed_at": None,
            "first_message": (text or (invitation or {}).get("message", ""))[:200],
            "department_id": department.id if department else None,
        }
        chat, pairs = await self.store.create_chat(fields, events)
        await self.publish(chat, pairs)
        if not active:
            self.waiting[chat.id] = t
            self.queue_changed()
        return chat, pairs

    # -- talking ------------------------------------------------------------------------------

    async def message(self, party: Party, chat_id: int, text: str, client_id: str) -> dict:
        chat = await self.chat_for(party, chat_id)
        # A message sent again (its ack lost) gets the stored one back. That is rare, so it is
        # looked for only when a check or the unique index on client_id refuses this one.
        try:
            if party.role == "visitor":
                if chat.status not in OPEN_STATUSES:
                    raise chat_closed(chat.id, chat.status)
                self.rl_messages.check(party.visitor_id, "messages")
            else:
                own_active(party, chat)
        except ApiError:
            existing = await self.store.event_by_client_id(chat.id, client_id, party.role)
            if existing is not None:
                return {"message": existing}
            raise
        op = await self.who(party.operator_id) if party.role == "operator" else None
        if op is not None and chat.status == PENDING:
            if self.presence.status_of(party.operator_id) == ONLINE:
                await self.resume(chat, op)
        event = message_event(party.role, op, text, client_id, self.clock.now_ms())
        try:  # delivered as soon as it is committed, in the order of the chat's events
            pairs = await self.store.append_message(chat, event, lambda p: self.deliver(chat, p))
        except Duplicate:  # sent before: the stored one
            return {"message": await self.store.event_by_client_id(chat.id, client_id, party.role)}
        self.typing.stop(chat, party.role)
        if party.role == "operator":
            await self.replied.emit(chat, pairs[0][0])
        # As the sender sees it: a visitor's message is numbered in the visitor's sequence.
        return {"message": (pairs[0].visitor if party.role == "visitor" else pairs[0])[0]}

    async def set_typing(
        self, party: Party, chat_id: int, typing: bool, text: str | None = None
    ) -> dict:
        chat = await self.chat_for(party, chat_id)
        if chat.status not in OPEN_STATUSES:
            return {}
        if party.role == "operator" and chat.operator_id != party.operator_id:
            raise not_assigned(chat.id)
        self.typing.set(chat, party.role, typing, text)
        return {}

    # -- ending -------------------------------------------------------------------------------

    async def close(self, party: Party, chat_id: int) -> dict:
        chat = await self.chat_for(party, chat_id)
        op = None
        if party.role == "operator":
            own_active(party, chat)
            op = await self.who(party.operator_id)
        elif chat.status not in OPEN_STATUSES:
            raise chat_closed(chat.id, chat.status)
        await self._end(chat, CLOSED, {"type": "chat_closed", "by": party.role, "operator": op})
        return {"chat": await self.summary(chat, party.role)}

    async def _end(self, chat: Chat, status: str, event: dict) -> None:
        was_waiting = chat.status == WAITING
        t = self.clock.now_ms()
        event["ts"] = t
        changes = {"status": status, "closed_at": t, "pending_since": None}
        pairs = await self.store.append_events(chat, [event], changes)
        await self.publish(chat, pairs)
        self.typing.forget(chat.id)
        self.pending.pop(chat.id, None)
        if was_waiting:
            self.waiting.pop(chat.id, None)
            self.queue_changed()

    async def miss(self, chat_id: int) -> None:
        """Nobody took it in time. Never answered: the chat ends as missed and the visitor is
        offered the offline form. Answered before (handed over): it stays with the operator who
        handed it over, as pending."""
        queued_at = self.waiting.pop(chat_id, None)
        chat = await self.store.chat(chat_id)
        if chat is None or chat.status != WAITING:
            return
        try:
            if chat.answered_at is None:
                await self._end(chat, MISSED, {"type": "chat_missed", "reason": "queue_timeout"})
                return
            self.queue_changed()
            await self.pend(chat, chat.handed_over_by, "queue_timeout")
        except StorageUnavailable:
            # Nothing was stored, so it still waits: back in the queue, and the next tick
            # tries again.
            if queued_at is not None:
                self.waiting[chat_id] = queued_at
                self.queue_changed()
            raise

    # -- operators ----------------------------------------------------------------------------

    async def accept(self, party: Party, chat_id: int) -> dict:
        """Take a waiting chat, or a pending one (a colleague's conversation kept for a reply)."""
        chat = await self.chat_for(party, chat_id)
        if self.presence.status_of(party.operator_id) != ONLINE:
            raise ApiError("status_not_online", "set your status to online to accept chats", 409)
        chat = await self.take(chat, party.operator_id)
        if chat is None:
            raise ApiError(
                "chat_taken",
                f"chat {chat_id} was taken or is no longer waiting",
                409,
                chat_id=chat_id,
            )
        return {"chat": await self.summary(chat, "operator")}

    async def take(self, chat: Chat, operator_id: int, assigned: bool = False) -> Chat | None:
        """Give a waiting (or pending) chat to an operator, atomically: None when it is no
        longer either (another operator, or routing, was first). ``assigned``: by routing."""
        previous = chat.operator_id if chat.status == PENDING else None
        t = self.clock.now_ms()
        event = {"type": "chat_accepted", "ts": t, "operator": await self.who(operator_id)}
        if assigned:
            event["assigned"] = True
        got = await self.store.accept_chat(chat.id, operator_id, t, [event])
        if got is None:
            return None
        chat, pairs = got
        self.waiting.pop(chat.id, None)
        self.pending.pop(chat.id, None)
        # The visitor (and a colleague who kept it pending) get the event; the operator's
        # streams get the whole chat from seq 1.
        others = [f"op:{previous}"] if previous and previous != operator_id else []
        self.deliver(chat, pairs, others)
        await self.replay_to(chat, operator_id)
        await self.changed.emit(chat)
        self.queue_changed()
        return chat

    async def replay_to(self, chat: Chat, operator_id: int) -> None:
        """A chat's whole history (from seq 1) to the operator who now has it."""
        seq = 0
        for text in await self.store.events_after(chat.id, 0):
            seq += 1
            self.hub.publish([f"op:{operator_id}"], {"chat_id": chat.id, "seq": seq}, text)

    async def pend(self, chat: Chat, operator_id: int | None, reason: str) -> None:
        """Keep the conversation assigned for a later reply; the visitor is told, and may leave
        an e-mail address when mail is configured."""
        t = self.clock.now_ms()
        who = await self.who(operator_id) if operator_id else None
        event = {"type": "chat_pending", "ts": t, "reason": reason, "operator": who}
        event["mail"] = self.mail
        changes = {"status": PENDING, "operator_id": operator_id, "pending_since": t}
        changes["handed_over_by"] = None
        pairs = await self.store.append_events(chat, [event], changes)
        await self.publish(chat, pairs)
        self.pending[chat.id] = t

    async def resume(self, chat: Chat, op: dict) -> None:
        """The operator of a pending chat is back and writes: the chat is active again."""
        t = self.clock.now_ms()
        event = {"type": "chat_resumed", "ts": t, "operator": op}
        changes = {"status": ACTIVE, "pending_since": None, "accepted_at": t}
        pairs = await self.store.append_events(chat, [event], changes)
        await self.publish(chat, pairs)
        self.pending.pop(chat.id, None)


async def changed_elsewhere(chats: Chats, chat_id: int) -> None:
    """(In a cluster.) Another process changed the chat: this one's queue and pending list
    follow it."""
    c = await chats.store.chat(chat_id)
    status = c.status if c is not None else None
    for table, state in ((chats.waiting, WAITING), (chats.pending, PENDING)):
        if status != state:
            table.pop(chat_id, None)
        elif chat_id not in table:
            table[chat_id] = c.queued_at if state == WAITING else c.pending_since or c.created_at
    if status not in OPEN_STATUSES:
        chats.typing.forget(chat_id)
