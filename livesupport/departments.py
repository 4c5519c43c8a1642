"""Departments: who belongs where, who is available where, and what visitors see of it.

Administrators create departments and put operators in them; with none defined every operator
takes every chat and visitors are asked nothing more. The visitor's ``availability`` (site-wide
and per department) is published from here whenever it changes.
"""

from __future__ import annotations

from typing import Any

from .context import Context
from .hub import Signal
from .presence import Presence
from .protocol import ONLINE, ApiError, invalid_field, not_found
from .storage.accounts import Duplicate
from .storage.records import Chat, Department, Operator


def unknown_department(key: str, field: str = "department") -> ApiError:
    return ApiError("unknown_department", f"no department {key!r}", 404, field=field)


def department_offline(d: Department) -> ApiError:
    return ApiError(
        "department_offline",
        f"nobody in {d.name} is online; leave a message instead",
        409,
        department=d.key,
    )


class Departments:
    """Departments cached in memory (they are few and read on every routing decision)."""

    def __init__(self, ctx: Context, presence: Presence):
        self.config, self.hub, self.validate = ctx.config, ctx.hub, ctx.validate
        self.store = ctx.storage.departments
        self.presence = presence
        self.by_id: dict[int, Department] = {}
        self._availability: Any = None
        #: Other processes change departments too (a cluster): a name missing here is looked
        #: up afresh before it is refused, as their notice may still be on its way.
        self.shared = False
        #: ``changed()``: a department was created, changed or deleted.
        self.changed = Signal("departments_changed")
        presence.roster_changed.connect(self.publish_availability)

    async def start(self) -> None:
        await self._reload()
        self._availability = self.availability()

    async def _reload(self) -> None:
        self.by_id = {d.id: d for d in await self.store.all()}

    # -- reading ------------------------------------------------------------------------------

    def by_key(self, key: str) -> Department | None:
        for d in self.by_id.values():
            if d.key == key:
                return d
        return None

    def ref(self, department_id: int | None) -> dict | None:
        d = self.by_id.get(department_id) if department_id else None
        return d.ref() if d else None

    def of_operator(self, operator_id: int) -> list[int]:
        return sorted(d.id for d in self.by_id.values() if operator_id in d.members)

    def online_members(self, d: Department) -> list[int]:
        return [o for o in d.members if self.presence.status_of(o) == ONLINE]

    def escalate_after(self, d: Department) -> float:
        return d.escalate_after or self.config.chat_escalate_after

    def may_take(self, operator_id: int, chat: Chat) -> bool:
        """Whether a waiting chat reaches this operator: its department's members; everyone
        for a chat with no department (or a department gone) and for an escalated one."""
        d = self.by_id.get(chat.department_id) if chat.department_id else None
        return d is None or chat.escalated_at is not None or operator_id in d.members

    def operator_view(self, op: Operator) -> dict:
        """An operator as the console sees it: live status and departments."""
        return op.public(self.presence.status_of(op.id), self.of_operator(op.id))

    def public(self, d: Department) -> dict:
        return {
            "id": d.id,
            "key": d.key,
            "name": d.name,
            "email": d.email,
            "auto_assign": d.auto_assign,
            "escalate_after": d.escalate_after,
            "members": list(d.members),
            "online": len(self.online_members(d)),
        }

    def list(self) -> list[dict]:
        return [self.public(d) for d in sorted(self.by_id.values(), key=lambda d: d.name.lower())]

    def for_visitors(self) -> list[dict]:
        return [
            {"key": d.key, "name": d.name, "online": bool(self.online_members(d))}
            for d in sorted(self.by_id.values(), key=lambda d: d.name.lower())
        ]

    def availability(self) -> dict:
        return {
            "type": "availability",
            "online": self.presence.any_online(),
            "departments": self.for_visitors(),
        }

    def status(self, key: Any) -> dict:
        """``GET /api/status``: the site's availability, or one department's."""
        if key is None:
            return {"online": self.presence.any_online()}
        key = self.validate.kind("department_ref", "department", key)
        d = self.by_key(key)
        if d is None:
            raise unknown_department(key)
        return {"online": bool(self.online_members(d))}

    async def named(self, key: str) -> Department:
        """The department called ``key``, or the ``unknown_department`` error."""
        d = self.by_key(key)
        if d is None and self.shared:
            await self._reload()
            d = self.by_key(key)
        if d is None:
            raise unknown_department(key)
        return d

    async def for_message(self, key: str | None) -> Department | None:
        """The department a visitor named; None for none named."""
        return await self.named(key) if key else None

    async def for_chat(self, key: str | None) -> Department | None:
        """The department a visitor asked for, with someone online; None for none asked."""
        d = await self.for_message(key)
        if d is not None and not self.online_members(d):
            raise department_offline(d)
        return d

    # -- publishing ---------------------------------------------------------------------------

    def publish_availability(self) -> None:
        """Visitors learn availability (site-wide and per department) when it changes."""
        now = self.availability()
        if now != self._availability:
            self._availability = now
            self.hub.publish(["visitors"], now)

    def availability_told(self) -> None:
        """(In a cluster.) Another process's operators changed, and that process has told
        visitors; this one remembers what they were told, to tell them of the next change."""
        self._availability = self.availability()

    async def _announce(self) -> None:
        await self._reload()
        self.hub.publish(["ops"], {"type": "departments", "departments": self.list()})
        self.publish_availability()
        await self.changed.emit()

    # -- administration -----------------------------------------------------------------------

    def _fields(self, args: dict, body: dict) -> dict:
        fields = {k: args[k] for k in ("key", "name", "email", "auto_assign") if k in args}
        if "name" in fields and not fields["name"]:
            raise invalid_field("name", "'name' must not be blank")
        if "escalate_after" in body:  # null: back to [chat] escalate_after
            fields["escalate_after"] = args.get("escalate_after")
        return fields

    async def create(self, body: Any) -> dict:
        args = self.validate.request("new_department", body)
        fields = self._fields(args, body)
        try:
            new_id = await self.store.create(fields, args.get("members", []))
        except Duplicate as e:
            raise _duplicate(str(e), fields) from None
        await self._announce()
        return self.public(self.by_id[new_id])

    async def update(self, department_id: int, body: Any) -> dict:
        args = self.validate.request("department_changes", body)
        fields = self._fields(args, body)
        try:
            found = await self.store.update(department_id, fields, args.get("members"))
        except Duplicate as e:
            raise _duplicate(str(e), fields) from None
        if not found:
            raise not_found(f"no department {department_id}")
        await self._announce()
        return self.public(self.by_id[department_id])

    async def delete(self, department_id: int) -> None:
        if not await self.store.delete(department_id):
            raise not_found(f"no department {department_id}")
        await self._announce()


def _duplicate(field: str, fields: dict) -> ApiError:
    return ApiError(
        "duplicate", f"another department has the {field} {fields[field]!r}", 409, field=field
    )
