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

    def secret(self, key: str, nbytes: int = 32) -> str:
        """A secret generated into the database on first use (at start, before serving)."""
        row = MetaRow.get_or_none(MetaRow.key == key)
        if row is None:
            value = secrets.token_urlsafe(nbytes)
            MetaRow.insert(key=key, value=value).on_conflict_ignore().execute()
            row = MetaRow.get(MetaRow.key == key)
        return row.value

    async def settings(self) -> dict:
        """The console-edited settings document; empty when never saved."""
        row = await self._storage.run(MetaRow.get_or_none, MetaRow.key == "settings")
        return json.loads(row.value) if row else {}

    async def save_settings(self, settings: dict) -> None:
        q = MetaRow.insert(key="settings", value=json.dumps(settings)).on_conflict_replace()
        await self._storage.run(q.execute)
