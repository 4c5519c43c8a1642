"""Group commit: on SQLite, the messages that arrive in one turn of the event loop are stored in
one transaction.

A commit writes each page the transaction touched to the log: about 24 KB for one message (the
event's page, its two indexes, the chat's row), so a busy server spent its time writing the same
pages over and over. The messages of one turn are stored together, committed at the start of the
next turn; each is acknowledged and delivered only after that commit, in the order they came.
Every other append to a chat first commits the messages waiting (``in_order``), so a chat's
events are stored in the order they arrived. PostgreSQL stores each message at once.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING, Any

import peewee

from .accounts import Duplicate

if TYPE_CHECKING:
    from . import Storage
    from .records import Chat


class GroupCommit:
    """The messages waiting for the next commit, and the order of every append to a chat.

    ``append(chat, events, changes)`` stores events inside the caller's transaction and fills
    ``changes`` with the chat's columns it moved; ``changed(chat, changes)`` applies them to
    the records once committed (``ChatStore``'s own two)."""

    def __init__(
        self,
        storage: Storage,
        append: Callable[[Chat, list[dict], dict], list],
        changed: Callable[[Chat, dict], None],
    ):
        self._storage, self._append, self._changed = storage, append, changed
        #: (chat, event, on_commit, future) of each message waiting for the next commit.
        self._waiting: list[tuple[Chat, dict, Callable[[list], None], asyncio.Future]] = []
        #: Held by whatever appends to a chat, so that appends are stored in arrival order.
        self._writing = asyncio.Lock()
        self._committer: asyncio.Task | None = None

    def on(self) -> bool:
        """Whether messages are grouped: SQLite, in a running server."""
        return not self._storage.networked and self._storage.serving

    @contextlib.asynccontextmanager
    async def in_order(self) -> AsyncIterator[None]:
        """Around any other append to a chat: the messages waiting are committed first."""
        if not self.on():
            yield
            return
        async with self._writing:
            if self._waiting:
                await self._commit_waiting()
            yield

    async def flush(self) -> None:
        """Commit the messages waiting now (before the database closes)."""
        async with self.in_order():
            pass

    async def add(self, chat: Chat, event: dict, on_commit: Callable[[list], None]) -> list:
        """Store one message with the others of this turn; ``on_commit(pairs)`` right after
        the commit, then its pairs returned (or ``Duplicate`` for a client id stored before)."""
        future = asyncio.get_running_loop().create_future()
        self._waiting.append((chat, event, on_commit, future))
        if self._committer is None:
            self._committer = asyncio.ensure_future(self._commit_soon())
        return await future

    async def _commit_soon(self) -> None:
        try:
            async with self._writing:
                while self._waiting:
                    await self._commit_waiting()
        finally:
            self._committer = None

    async def _commit_waiting(self) -> None:
        """Store the messages waiting in one transaction (the caller holds ``_writing``)."""
        batch, self._waiting = self._waiting, []
        try:
            results = await self._storage.run(self._store, batch)
        except BaseException as e:  # nothing of the batch is stored: each sender is told
            for *_, future in batch:
                if not future.done():
                    future.set_exception(e)
            if not isinstance(e, Exception):
                raise
            return
        for (chat, _event, on_commit, future), (pairs, changes) in zip(batch, results, strict=True):
            if pairs is None:
                if not future.done():
                    future.set_exception(Duplicate("client_id"))
                continue
            self._changed(chat, changes)
            try:
                on_commit(pairs)
            except Exception as e:  # stored, not delivered: its sender's retry gets it back
                if not future.done():
                    future.set_exception(e)
                continue
            if not future.done():  # (a sender gone meanwhile has its message stored all the same)
                future.set_result(pairs)

    def _store(self, batch: list) -> list[tuple[list | None, dict]]:
        out: list[tuple[list | None, dict]] = []
        with self._storage.atomic():
            for chat, event, _on_commit, _future in batch:
                changes: dict[str, Any] = {}
                try:
                    out.append((self._append(chat, [event], changes), changes))
                except peewee.IntegrityError as e:
                    # Its one INSERT was refused, so it stored nothing; the others go on.
                    if "client_id" not in str(e):
                        raise
                    out.append((None, changes))
        return out
