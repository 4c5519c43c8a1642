"""Departments and their members."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import peewee

from .accounts import Duplicate
from .records import Department
from .schema import DepartmentMemberRow, DepartmentRow, OperatorRow

if TYPE_CHECKING:
    from . import Storage

_FIELDS = ("key", "name", "email", "auto_assign", "escalate_after")


class DepartmentStore:
    def __init__(self, storage: Storage):
        self._storage = storage

    def _all(self) -> list[Department]:
        members: dict[int, list[int]] = {}
        for m in DepartmentMemberRow.select().order_by(DepartmentMemberRow.operator_id):
            members.setdefault(m.department_id, []).append(m.operator_id)
        return [
            Department(
                id=r.id,
                key=r.key,
                name=r.name,
                email=r.email,
                auto_assign=bool(r.auto_assign),
                escalate_after=r.escalate_after,
                created_at=r.created_at,
                members=members.get(r.id, []),
            )
            for r in DepartmentRow.select().order_by(DepartmentRow.name)
        ]

    async def all(self) -> list[Department]:
        """Every department with its members, by name."""
        return await self._storage.run(self._all)

    def _set_members(self, department_id: int, members: list[int]) -> None:
        DepartmentMemberRow.delete().where(
            DepartmentMemberRow.department_id == department_id
        ).execute()
        known = {r.id for r in OperatorRow.select(OperatorRow.id).where(OperatorRow.id << members)}
        rows = [{"department_id": department_id, "operator_id": o} for o in members if o in known]
        if rows:
            DepartmentMemberRow.insert_many(rows).execute()

    async def create(self, fields: dict[str, Any], members: list[int]) -> int:
        """A new department; raises ``Duplicate(field)`` when its key or name is taken."""

        def create() -> int:
            with self._storage.atomic():
                self._unique(fields, None)
                row = DepartmentRow.create(
                    created_at=self._storage.clock.now_ms(),
                    **{k: fields[k] for k in _FIELDS if k in fields},
                )
                self._set_members(row.id, members)
                return row.id

        return await self._storage.run(create)

    def _unique(self, fields: dict[str, Any], department_id: int | None) -> None:
        for name in ("key", "name"):
            if name not in fields:
                continue
            column = getattr(DepartmentRow, name)
            q = DepartmentRow.select().where(peewee.fn.LOWER(column) == fields[name].lower())
            if department_id is not None:
                q = q.where(DepartmentRow.id != department_id)
            if q.exists():
                raise Duplicate(name)

    async def update(
        self, department_id: int, fields: dict[str, Any], members: list[int] | None
    ) -> bool:
        """Change a department; False when there is none with that id."""

        def update() -> bool:
            with self._storage.atomic():
                if not DepartmentRow.select().where(DepartmentRow.id == department_id).exists():
                    return False
                self._unique(fields, department_id)
                changes = {k: fields[k] for k in _FIELDS if k in fields}
                if changes:
                    DepartmentRow.update(**changes).where(
                        DepartmentRow.id == department_id
                    ).execute()
                if members is not None:
                    self._set_members(department_id, members)
                return True

        return await self._storage.run(update)

    async def delete(self, department_id: int) -> bool:
        """Delete a department: its chats and offline messages keep no department."""

        def delete() -> bool:
            with self._storage.atomic():
                execute = self._storage.execute
                execute(
                    "UPDATE chat SET department_id = NULL WHERE department_id = ?", (department_id,)
                )
                execute(
                    "UPDATE offline_message SET department_id = NULL WHERE department_id = ?",
                    (department_id,),
                )
                execute("DELETE FROM department_member WHERE department_id = ?", (department_id,))
                return (
                    execute("DELETE FROM department WHERE id = ?", (department_id,)).rowcount == 1
                )

        return await self._storage.run(delete)

    async def recent_waits(self, per_department: int) -> dict[int | None, list[int]]:
        """The last ``per_department`` waits (ms from entering the queue to being accepted) of
        each department's chats (None: chats of no department), newest first."""

        def waits() -> dict[int | None, list[int]]:
            out: dict[int | None, list[int]] = {}
            cur = self._storage.execute(
                "SELECT department_id, accepted_at - queued_at FROM chat "
                "WHERE accepted_at IS NOT NULL AND accepted_at >= queued_at "
                "ORDER BY accepted_at DESC LIMIT 5000"
            )
            for dept, wait in cur.fetchall():
                got = out.setdefault(dept, [])
                if len(got) < per_department:
                    got.append(wait)
            return out

        return await self._storage.run(waits)
