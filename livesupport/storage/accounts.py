"""Operators, their console sessions, and anonymous visitors."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import peewee

from .records import Operator, Session, Visitor, from_row
from .schema import OperatorRow, SessionRow

if TYPE_CHECKING:
    from . import Storage


class Duplicate(Exception):
    """A row that a unique column already holds (a username taken meanwhile, say)."""


def token_hash(token: str) -> str:
    """Tokens are stored hashed, so a copy of the database does not hand out live tokens."""
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


def _operator(row: OperatorRow) -> Operator:
    return from_row(Operator, row, is_admin=bool(row.is_admin), disabled=bool(row.disabled))


class AccountStore:
    """Operators (cached: they are few and read on every event), sessions and visitors."""

    def __init__(self, storage: Storage):
        self._storage = storage
        self._operators: dict[int, Operator] = {}
        #: In a cluster: told the id of each operator changed here (the others ``forget``).
        self.updated: Callable[[int], None] | None = None

    # -- operators ----------------------------------------------------------------------------

    async def operator_count(self) -> int:
        return await self._storage.run(OperatorRow.select().count)

    async def operator(self, operator_id: int) -> Operator | None:
        """An operator by id, cached; change operators only through ``update_operator``."""
        op = self._operators.get(operator_id)
        if op is None:
            row = await self._storage.run(OperatorRow.get_or_none, OperatorRow.id == operator_id)
            if row is not None:
                op = self._operators[operator_id] = _operator(row)
        return op

    async def operators(self) -> list[Operator]:
        rows = await self._storage.run(lambda: list(OperatorRow.select().order_by(OperatorRow.id)))
        return [_operator(r) for r in rows]

    async def operator_by_username(self, username: str) -> Operator | None:
        row = await self._storage.run(OperatorRow.get_or_none, OperatorRow.username == username)
        return _operator(row) if row is not None else None

    async def create_operator(
        self,
        username: str,
        display_name: str,
        password_hash: str,
        is_admin: bool,
        max_chats: int | None = None,
    ) -> Operator:
        """Raises ``Duplicate`` when the username is taken."""

        def create() -> OperatorRow:
            try:
                return OperatorRow.create(
                    username=username,
                    display_name=display_name,
                    password_hash=password_hash,
                    is_admin=is_admin,
                    max_chats=max_chats,
                    created_at=self._storage.clock.now_ms(),
                )
            except peewee.IntegrityError:
                raise Duplicate(username) from None

        return _operator(await self._storage.run(create))

    async def update_operator(self, operator_id: int, **changes: Any) -> None:
        query = OperatorRow.update(**changes).where(OperatorRow.id == operator_id)
        await self._storage.run(query.execute)
        self._operators.pop(operator_id, None)
        if self.updated is not None:
            self.updated(operator_id)

    def forget(self, operator_id: int) -> None:
        """Another process changed the operator: read it afresh next time."""
        self._operators.pop(operator_id, None)

    # -- sessions -----------------------------------------------------------------------------

    async def create_session(
        self, token: str, operator_id: int, lifetime: float, ip: str, user_agent: str
    ) -> None:
        t = self._storage.clock.now_ms()
        await self._storage.run(
            lambda: SessionRow.create(
                token_hash=token_hash(token),
                operator_id=operator_id,
                created_at=t,
                expires_at=t + int(lifetime * 1000),
                ip=ip,
                user_agent=user_agent,
            )
        )

    async def session_by_token(self, token: str) -> Session | None:
        """The session of a cookie; an expired one is deleted and answers None."""

        def find() -> Session | None:
            row = SessionRow.get_or_none(SessionRow.token_hash == token_hash(token))
            if row is None:
                return None
            if row.expires_at < self._storage.clock.now_ms():
                row.delete_instance()
                return None
            return Session(row.id, row.operator_id, row.expires_at)

        return await self._storage.run(find)

    async def delete_sessions(
        self,
        operator_id: int,
        keep_session_id: int | None = None,
        only_session_id: int | None = None,
    ) -> list[int]:
        """Delete an operator's sessions (all, all but one, or just one); returns their ids."""

        def delete() -> list[int]:
            q = SessionRow.select(SessionRow.id).where(SessionRow.operator_id == operator_id)
            if keep_session_id is not None:
                q = q.where(SessionRow.id != keep_session_id)
            if only_session_id is not None:
                q = q.where(SessionRow.id == only_session_id)
            ids = [s.id for s in q]
            if ids:
                SessionRow.delete().where(SessionRow.id.in_(ids)).execute()
            return ids

        return await self._storage.run(delete)

    async def delete_session_rows(self, session_ids: list[int]) -> None:
        q = SessionRow.delete().where(SessionRow.id.in_(session_ids))
        await self._storage.run(q.execute)

    async def live_sessions(self, session_ids: list[int]) -> set[int]:
        """Which of these sessions still exist and have not expired."""
        now = self._storage.clock.now_ms()

        def alive() -> set[int]:
            q = SessionRow.select(SessionRow.id).where(
                SessionRow.id.in_(session_ids) & (SessionRow.expires_at > now)
            )
            return {s.id for s in q}

        return await self._storage.run(alive)

    # -- visitors -----------------------------------------------------------------------------

    async def create_visitor(self, token: str, ip: str, user_agent: str) -> Visitor:
        t = self._storage.clock.now_ms()
        visitor_id = await self._storage.run(
            self._storage.insert,
            "INSERT INTO visitor (token_hash, created_at, ip, user_agent) VALUES (?, ?, ?, ?)",
            (token_hash(token), t, ip, user_agent),
        )
        return Visitor(visitor_id, t)

    async def visitor_id_by_token(self, token: str) -> int | None:
        row = await self._storage.fetchone(
            "SELECT id FROM visitor WHERE token_hash = ?",
            (token_hash(token),),
        )
        return row[0] if row else None

    async def visitor_id_by_link(self, token: str, now: int) -> int | None:
        """The visitor of an unexpired link to a conversation (``chat_link``)."""
        row = await self._storage.fetchone(
            "SELECT visitor_id FROM chat_link WHERE token_hash = ? AND expires_at > ?",
            (token_hash(token), now),
        )
        return row[0] if row else None

    async def visitor(self, visitor_id: int) -> Visitor | None:
        row = await self._storage.fetchone(
            "SELECT id, created_at FROM visitor WHERE id = ?",
            (visitor_id,),
        )
        return Visitor(*row) if row else None
