"""Generated secrets and the settings edited in the console, as key/value rows."""

from __future__ import annotations

import json
import secrets
from typing import TYPE_CHECKING

from .schema import MetaRow

if TYPE_CHECKING:
    from . import Storage


class SiteStore:
    def __init__(self, storage: Storage):
        self._storage = storage

    async def secret(self, key: str, nbytes: int = 32) -> str:
        """A secret generated into the database on first use (at start, before serving); the
        first process to store it wins, and every process uses that one."""

        def secret() -> str:
            row = MetaRow.get_or_none(MetaRow.key == key)
            if row is None:
                value = secrets.token_urlsafe(nbytes)
                MetaRow.insert(key=key, value=value).on_conflict_ignore().execute()
                row = MetaRow.get(MetaRow.key == key)
            return row.value

        return await self._storage.run(secret)

    async def settings(self) -> dict:
        """The console-edited settings document; empty when never saved."""
        row = await self._storage.run(MetaRow.get_or_none, MetaRow.key == "settings")
        return json.loads(row.value) if row else {}

    async def save_settings(self, settings: dict) -> None:
        value = json.dumps(settings)
        q = MetaRow.insert(key="settings", value=value).on_conflict(
            conflict_target=[MetaRow.key], update={MetaRow.value: value}
        )
        await self._storage.run(q.execute)
