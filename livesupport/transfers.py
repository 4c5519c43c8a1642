"""Transfers and internal notes: the matters between operators.

A transfer: the operator of an active chat offers it to a colleague or a department, with a
note; the receiver accepts (the chat and its whole history move) or declines; an offer nobody
answers expires. Offers live in memory: a restart drops them and the chat stays the sender's.
An internal note is a chat event only operators receive (docs/PROTOCOL.md §5.5)."""

from __future__ import annotations

import secrets
from typing import Any

from .chats import Chats, own_active
from .context import Context
from .departments import Departments, department_offline
from .presence import Presence
from .protocol import ACTIVE, ONLINE, ApiError, Party, chat_closed, invalid_field, not_found

OFFERED, ACCEPTED, DECLINED, EXPIRED = "offered", "accepted", "declined", "expired"


class Transfers:
    def __init__(self, ctx: Context, chats: Chats, departments: Departments, presence: Presence):
        self.config, self.hub, self.clock = ctx.config, ctx.hub, ctx.clock
        self.chats = chats
        self.departments = departments
        self.presence = presence
        #: Offers by id (kept a while after they end, so a late answer is told why).
        self.offers: dict[str, dict[str, Any]] = {}
        #: In a cluster: offers made on another process -> that process, which answers them.
        self.elsewhere: dict[str, str] = {}

    # -- offering -----------------------------------------------------------------------------

    async def offer(
        self,
        party: Party,
        chat_id: int,
        operator_id: int | None = None,
        department: str | None = None,
        note: str = "",
    ) -> dict:
        chat = await self.chats.chat_for(party, chat_id)
        own_active(party, chat)
        if chat.status != ACTIVE:
            raise chat_closed(chat.id, chat.status)
        if (operator_id is None) == (department is None):
            raise invalid_field("operator_id", "give exactly one of 'operator_id' or 'department'")
        if any(o["chat_id"] == chat.id and o["state"] == OFFERED for o in self.offers.values()):
            raise ApiError(
                "transfer_pending", f"chat {chat.id} already has a transfer offered", 409
            )
        to_operator = to_department = None
        if operator_id is not None:
            receivers = {await self._receiver(party, operator_id)}
            to_operator = await self.chats.who(operator_id)
        else:
            d = await self.departments.named(department)
            receivers = set(self.departments.online_members(d)) - {party.operator_id}
            if not receivers:
                raise department_offline(d)
            to_department = d.ref()
        self._forget_old()
        offer = {
            "id": secrets.token_urlsafe(12),
            "chat_id": chat.id,
            "from": await self.chats.who(party.operator_id),
            "to_operator": to_operator,
            "to_department": to_department,
            "note": note.strip(),
            "created_at": self.clock.now_ms(),
            "state": OFFERED,
            "receivers": receivers,
            "declined": set(),
        }
        self.offers[offer["id"]] = offer
        offer["timer"] = self.clock.call_later(
            self.config.chat_transfer_timeout, lambda: self._expire(offer["id"])
        )
        await self._announce(offer)
        return {"transfer": await self.view(offer)}

    async def _receiver(self, party: Party, operator_id: int) -> int:
        if operator_id == party.operator_id:
            raise invalid_field("operator_id", "you cannot transfer a chat to yourself")
        op = await self.chats.accounts.operator(operator_id)
        if op is None:
            raise ApiError(
                "unknown_operator", f"no operator {operator_id}", 404, field="operator_id"
            )
        if op.disabled:
            raise ApiError(
                "operator_disabled", f"{op.display_name} is disabled", 409, field="operator_id"
            )
        if self.presence.status_of(op.id) != ONLINE:
            raise ApiError(
                "operator_not_online",
                f"{op.display_name} is not online",
                409,
                field="operator_id",
            )
        return op.id

    # -- answering ----------------------------------------------------------------------------

    def _offered_to(self, party: Party, transfer_id: str) -> dict:
        offer = self.offers.get(transfer_id)
        if offer is None or offer["state"] != OFFERED:
            state = offer["state"] if offer else None
            raise not_found(
                f"no transfer {transfer_id} is offered" + (f" (it was {state})" if state else "")
            )
        if party.operator_id not in offer["receivers"]:
            raise ApiError("forbidden", "this transfer is not offered to you", 403)
        return offer

    async def accept(self, party: Party, transfer_id: str) -> dict:
        if transfer_id not in self.offers and transfer_id in self.elsewhere:
            return await self._ask_elsewhere("accept", party, transfer_id)
        offer = self._offered_to(party, transfer_id)
        if self.presence.status_of(party.operator_id) != ONLINE:
            raise ApiError("status_not_online", "set your status to online to accept chats", 409)
        chat = await self.chats.store.chat(offer["chat_id"])
        self._offered_to(party, transfer_id)  # again: another receiver may have been first
        if chat is None or chat.status != ACTIVE or chat.operator_id != offer["from"]["id"]:
            await self._end(offer, EXPIRED)
            raise ApiError("transfer_void", "the chat was closed or changed hands meanwhile", 409)
        await self._end(offer, ACCEPTED, announce=False)  # before any await: one taker
        t = self.clock.now_ms()
        me = await self.chats.who(party.operator_id)
        events: list[dict] = []
        if offer["note"]:
            events.append(
                {
                    "type": "note",
                    "ts": t,
                    "operator": offer["from"],
                    "text": offer["note"],
                    "client_id": "transfer-" + offer["id"],
                    "transfer": True,
                }
            )
        events.append(
            {
                "type": "chat_transferred",
                "ts": t,
                "from": offer["from"],
                "operator": me,
                "department": offer["to_department"],
            }
        )
        changes: dict[str, Any] = {"operator_id": party.operator_id, "accepted_at": t}
        if offer["to_department"]:
            changes["department_id"] = offer["to_department"]["id"]
        pairs = await self.chats.store.append_events(chat, events, changes)
        self.chats.deliver(chat, pairs, [f"op:{offer['from']['id']}"])
        await self.chats.replay_to(chat, party.operator_id)
        await self.chats.changed.emit(chat)
        await self._announce(offer)
        return {"chat": await self.chats.summary(chat, "operator")}

    async def _ask_elsewhere(self, answer: str, party: Party, transfer_id: str) -> dict:
        """(In a cluster.) The offer was made on another process: that process answers it."""
        data = {"answer": answer, "operator_id": party.operator_id, "id": transfer_id}
        return await self.hub.call(self.elsewhere[transfer_id], "transfer", data)

    async def answered_elsewhere(self, data: dict) -> dict:
        """(In a cluster.) An operator on another process answers an offer made here."""
        party = Party("operator", operator_id=data["operator_id"])
        if data["answer"] == "accept":
            return await self.accept(party, data["id"])
        return await self.decline(party, data["id"])

    def seen_elsewhere(self, origin: str, event: dict) -> None:
        """(In a cluster.) Another process announced an offer: where to send answers to it."""
        offer_id = event["transfer"]["id"]
        if offer_id not in self.offers:
            if len(self.elsewhere) > 10_000:
                self.elsewhere.clear()
            self.elsewhere[offer_id] = origin

    async def decline(self, party: Party, transfer_id: str) -> dict:
        if transfer_id not in self.offers and transfer_id in self.elsewhere:
            return await self._ask_elsewhere("decline", party, transfer_id)
        offer = self._offered_to(party, transfer_id)
        offer["declined"].add(party.operator_id)
        if offer["receivers"] <= offer["declined"]:
            await self._end(offer, DECLINED)
        else:  # others may still take it; this operator is done with it
            ev = {"type": "transfer", "transfer": dict(await self.view(offer), state=DECLINED)}
            self.hub.publish([f"op:{party.operator_id}"], ev)
        return {}

    def _expire(self, transfer_id: str) -> None:
        offer = self.offers.get(transfer_id)
        if offer is not None and offer["state"] == OFFERED:
            self.clock.spawn(self._end(offer, EXPIRED))

    async def _end(self, offer: dict, state: str, announce: bool = True) -> None:
        offer["state"] = state
        offer["ended_at"] = self.clock.now_ms()
        timer = offer.pop("timer", None)
        if timer is not None:
            timer.cancel()
        if announce:
            await self._announce(offer)

    # -- internal notes -----------------------------------------------------------------------

    async def note(self, party: Party, chat_id: int, text: str, client_id: str) -> dict:
        """An internal note: a chat event for operators only, by any operator, on any chat;
        idempotent by ``client_id`` like a message."""
        chat = await self.chats.chat_for(party, chat_id)
        existing = await self.chats.store.event_by_client_id(chat.id, client_id)
        if existing is not None:
            return {"note": existing}
        event = {
            "type": "note",
            "ts": self.clock.now_ms(),
            "operator": await self.chats.who(party.operator_id),
            "text": text,
            "client_id": client_id,
        }
        pairs = await self.chats.store.append_events(chat, [event])
        await self.chats.publish(chat, pairs, extra_topics=[f"op:{party.operator_id}"])
        return {"note": pairs[0][0]}

    # -- telling ------------------------------------------------------------------------------

    async def view(self, offer: dict) -> dict:
        chat = await self.chats.store.chat(offer["chat_id"])
        left = offer["created_at"] + self.config.chat_transfer_timeout * 1000 - self.clock.now_ms()
        return {
            "id": offer["id"],
            "chat_id": offer["chat_id"],
            "from": offer["from"],
            "to_operator": offer["to_operator"],
            "to_department": offer["to_department"],
            "note": offer["note"],
            "created_at": offer["created_at"],
            "expires_in": max(0, round(left / 1000)) if offer["state"] == OFFERED else 0,
            "state": offer["state"],
            "chat": dict(
                await self.chats.summary(chat, "operator"), first_message=chat.first_message
            )
            if chat
            else None,
        }

    async def _announce(self, offer: dict) -> None:
        topics = [f"op:{offer['from']['id']}"]
        topics += [f"op:{o}" for o in sorted(offer["receivers"] - offer["declined"])]
        self.hub.publish(topics, {"type": "transfer", "transfer": await self.view(offer)})

    async def welcome_events(self, operator_id: int) -> list[dict]:
        """After ``welcome``: the offers this operator made or may answer."""
        out = []
        for offer in self.offers.values():
            if offer["state"] != OFFERED:
                continue
            mine = offer["from"]["id"] == operator_id
            if mine or operator_id in offer["receivers"] - offer["declined"]:
                out.append({"type": "transfer", "transfer": await self.view(offer)})
        return out

    def _forget_old(self) -> None:
        """Offers that ended over an hour ago are forgotten."""
        limit = self.clock.now_ms() - 3_600_000
        for key in [k for k, o in self.offers.items() if o.get("ended_at", limit + 1) < limit]:
            del self.offers[key]
