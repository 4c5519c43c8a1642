"""Canned replies: text an operator inserts in the composer by typing ``/shortcut``.

Each operator manages their own; administrators manage the shared ones, which every operator
may use, or — with a department — only that department's members, in its chats. Placeholders
(``{visitor}``, ``{operator}``) are stored as typed and filled in by the console, as text.
The console fetches the list when it needs it; changes are not pushed.
"""

from __future__ import annotations

from typing import Any

from .context import Context
from .departments import Departments, unknown_department
from .protocol import ApiError, Party, invalid_field, not_found
from .storage.accounts import Duplicate
from .storage.records import CannedReply


def _duplicate(shortcut: str, shared: bool) -> ApiError:
    whose = "a shared reply" if shared else "another of your replies"
    return ApiError("duplicate", f"{whose} has the shortcut /{shortcut}", 409, field="shortcut")


def _admins_only() -> ApiError:
    return ApiError("forbidden", "only administrators may manage shared replies", 403)


class Canned:
    """Canned replies, checked against who is asking."""

    def __init__(self, ctx: Context, departments: Departments):
        self.validate = ctx.validate
        self.accounts = ctx.storage.accounts
        self.store = ctx.storage.canned
        self.departments = departments

    def public(self, r: CannedReply, usable: bool) -> dict:
        """As the console sees it; ``usable``: offered to this operator in the composer (an
        administrator also sees other departments' replies, to manage them)."""
        return {
            "id": r.id,
            "shortcut": r.shortcut,
            "text": r.text,
            "shared": r.operator_id is None,
            "department_id": r.department_id,
            "department": self.departments.ref(r.department_id),
            "usable": usable,
            "updated_at": r.updated_at,
        }

    async def _is_admin(self, party: Party) -> bool:
        op = await self.accounts.operator(party.operator_id)
        return bool(op and op.is_admin)

    def _usable(self, r: CannedReply, mine: set[int]) -> bool:
        return r.department_id is None or r.department_id in mine

    async def listing(self, party: Party) -> list[dict]:
        """``GET /api/console/canned``: the operator's own, the shared ones, and their
        departments' (an administrator: every department's, marked not usable when not a
        member)."""
        admin = await self._is_admin(party)
        mine = set(self.departments.of_operator(party.operator_id))
        out = []
        for r in await self.store.visible(party.operator_id):
            usable = self._usable(r, mine)
            if usable or admin:
                out.append(self.public(r, usable))
        return out

    def _department(self, department_id: int) -> int:
        if department_id not in self.departments.by_id:
            raise unknown_department(str(department_id), field="department_id")
        return department_id

    async def create(self, party: Party, body: Any) -> dict:
        args = self.validate.request("new_canned_reply", body)
        department_id = args.get("department_id")
        shared = args.get("shared", department_id is not None)
        if department_id is not None and not shared:
            raise invalid_field("department_id", "a department's replies are shared ones")
        if shared and not await self._is_admin(party):
            raise _admins_only()
        if department_id is not None:
            self._department(department_id)
        try:
            r = await self.store.create(
                None if shared else party.operator_id, department_id, args["shortcut"], args["text"]
            )
        except Duplicate:
            raise _duplicate(args["shortcut"], shared) from None
        return self.public(r, self._usable(r, set(self.departments.of_operator(party.operator_id))))

    async def _editable(self, party: Party, reply_id: int) -> CannedReply:
        """The reply if this operator may change it: their own (another's is "missing"), or
        a shared one for an administrator."""
        r = await self.store.get(reply_id)
        if r is None or r.operator_id not in (None, party.operator_id):
            raise not_found(f"no canned reply {reply_id}")
        if r.operator_id is None and not await self._is_admin(party):
            raise _admins_only()
        return r

    async def update(self, party: Party, reply_id: int, body: Any) -> dict:
        args = self.validate.request("canned_reply_changes", body)
        r = await self._editable(party, reply_id)
        changes = {k: args[k] for k in ("shortcut", "text") if k in args}
        if "department_id" in body:  # null: for everyone
            if r.operator_id is not None:
                raise invalid_field("department_id", "a personal reply has no department")
            department_id = args.get("department_id")
            changes["department_id"] = department_id and self._department(department_id)
        try:
            r = await self.store.update(r, changes)
        except Duplicate:
            raise _duplicate(changes["shortcut"], r.operator_id is None) from None
        return self.public(r, self._usable(r, set(self.departments.of_operator(party.operator_id))))

    async def delete(self, party: Party, reply_id: int) -> None:
        r = await self._editable(party, reply_id)
        await self.store.delete(r.id)
