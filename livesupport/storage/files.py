"""Files attached to chats, kept in the database: a ``file`` row and the bytes in pieces
(``file_chunk``), written as an upload arrives. So a backup of the database holds the files,
a chat's deletion removes them, and every process sharing a database sees them."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .records import StoredFile

if TYPE_CHECKING:
    from . import Storage


class FileStore:
    def __init__(self, storage: Storage):
        self._storage = storage

    def _execute(self, sql: str, params: tuple = ()):
        return self._storage.execute(sql, params)

    async def begin(self, chat_id: int, name: str, at: int) -> int:
        """A new, incomplete file; its id. Nobody sees it until ``complete``."""
        return await self._storage.run(
            self._storage.insert,
            "INSERT INTO file (chat_id, name, created_at) VALUES (?, ?, ?)",
            (chat_id, name, at),
        )

    async def write(self, file_id: int, n: int, data: bytes) -> None:
        """Piece ``n`` (from 0) of an incomplete file, committed on its own."""
        await self._storage.run(
            self._execute,
            "INSERT INTO file_chunk (file_id, n, data) VALUES (?, ?, ?)",
            (file_id, n, data),
        )

    def complete_statement(self, file_id: int, type_: str, size: int) -> tuple[str, tuple]:
        """The statement that makes a file complete, for the transaction that stores its chat
        event (``ChatStore.append_events(..., also=...)``)."""
        return (
            "UPDATE file SET complete = 1, type = ?, size = ? WHERE id = ? AND complete = 0",
            (type_, size, file_id),
        )

    async def discard(self, file_id: int) -> None:
        """An upload that failed: its row and pieces go."""

        def discard() -> None:
            with self._storage.atomic():
                self._execute("DELETE FROM file_chunk WHERE file_id = ?", (file_id,))
                self._execute("DELETE FROM file WHERE id = ? AND complete = 0", (file_id,))

        await self._storage.run(discard)

    async def purge_incomplete(self, before: int) -> int:
        """At start: uploads begun before ``before`` and left unfinished by a stopped process
        (another process sharing the database may be receiving newer ones); how many."""

        def purge() -> int:
            with self._storage.atomic():
                ids = "SELECT id FROM file WHERE complete = 0 AND created_at < ?"
                self._execute(f"DELETE FROM file_chunk WHERE file_id IN ({ids})", (before,))
                return self._execute(
                    "DELETE FROM file WHERE complete = 0 AND created_at < ?", (before,)
                ).rowcount

        return await self._storage.run(purge)

    async def file(self, file_id: int) -> StoredFile | None:
        """A complete file's record."""
        row = await self._storage.fetchone(
            "SELECT id, chat_id, name, type, size, created_at FROM file "
            "WHERE id = ? AND complete = 1",
            (file_id,),
        )
        return StoredFile(*row) if row else None

    async def chunk(self, file_id: int, n: int) -> bytes | None:
        """Piece ``n`` of a file, or None past its end."""
        row = await self._storage.fetchone(
            "SELECT data FROM file_chunk WHERE file_id = ? AND n = ?",
            (file_id, n),
        )
        return bytes(row[0]) if row else None
