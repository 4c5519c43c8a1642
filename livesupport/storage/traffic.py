"""Visits and page views (written in batches), and the automatic invitation rules."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from .records import InviteRule, Visit
from .schema import InviteRuleRow

if TYPE_CHECKING:
    from . import Storage

_VISIT_DETAIL = (
    "id",
    "number",
    "started_at",
    "last_seen",
    "landing_url",
    "referrer",
    "search_terms",
    "ip",
    "browser",
    "os",
    "device",
    "country",
    "pages",
)


def _rule(row: InviteRuleRow) -> InviteRule:
    return InviteRule.from_row(row.id, row.name, row.enabled, row.message, row.conditions)


class TrafficStore:
    def __init__(self, storage: Storage):
        self._storage = storage

    # -- visits -------------------------------------------------------------------------------

    async def start_visit(self, visitor_id: int, at: int, **fields: str) -> Visit:
        """Number and store the visitor's next visit (landing page, referrer, browser…)."""
        execute = self._storage.execute

        def start() -> Visit:
            with self._storage.atomic():
                row = execute(
                    "SELECT created_at, (SELECT COALESCE(MAX(number), 0) FROM visit WHERE "
                    "visitor_id = ?), (SELECT COUNT(*) FROM chat WHERE visitor_id = ?) "
                    "FROM visitor WHERE id = ?",
                    (visitor_id, visitor_id, visitor_id),
                ).fetchone()
                first_seen, visits, chats = row if row else (at, 0, 0)
                cols = ", ".join(fields)
                visit_id = self._storage.insert(
                    f"INSERT INTO visit (visitor_id, number, started_at, last_seen, {cols}) "
                    f"VALUES (?, ?, ?, ?{', ?' * len(fields)})",
                    (visitor_id, visits + 1, at, at, *fields.values()),
                )
            return Visit(
                id=visit_id,
                number=visits + 1,
                started_at=at,
                last_seen=at,
                pages=0,
                first_seen=first_seen,
                previous_chats=chats,
                **{k: fields.get(k, "") for k in _VISIT_TEXT},
            )

        return await self._storage.run(start)

    async def resumable_visit(self, visitor_id: int) -> Visit | None:
        """The visitor's newest visit that never ended (a restart cut it), if any."""
        row = await self._storage.fetchone(
            "SELECT v.id, v.number, v.started_at, v.last_seen, v.landing_url, v.referrer, "
            "v.search_terms, v.ip, v.user_agent, v.browser, v.os, v.device, v.country, v.pages, "
            "r.created_at, (SELECT COUNT(*) FROM chat WHERE visitor_id = ?) "
            "FROM visit v JOIN visitor r ON r.id = v.visitor_id "
            "WHERE v.visitor_id = ? AND v.ended_at IS NULL ORDER BY v.id DESC LIMIT 1",
            (visitor_id, visitor_id),
        )
        return Visit(*row) if row else None

    async def write_views(
        self, views: list[tuple], landing: list[tuple], ended: list[tuple[int, int]]
    ) -> None:
        """Group commit: page views, landing pages and visit ends since the last write."""
        await self._storage.run(self._write_views, views, landing, ended)

    def _write_views(self, views: list[tuple], landing: list[tuple], ended: list) -> None:
        pages: dict[int, tuple[int, int]] = {}
        for visit_id, _vid, _u, _t, _r, ts in views:
            n, _ = pages.get(visit_id, (0, 0))
            pages[visit_id] = (n + 1, ts)
        greatest = self._storage.dialect["greatest"]
        many = self._storage.executemany
        with self._storage.atomic():
            many(
                "INSERT INTO page_view (visit_id, visitor_id, url, title, referrer, ts) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                views,
            )
            many(
                "UPDATE visit SET pages = pages + ?, last_seen = ? WHERE id = ?",
                [(n, ts, visit_id) for visit_id, (n, ts) in pages.items()],
            )
            many(
                "UPDATE visit SET landing_url = ?, referrer = ?, search_terms = ? WHERE id = ?",
                landing,
            )
            many(
                f"UPDATE visit SET ended_at = ?, last_seen = {greatest}(last_seen, ?) WHERE id = ?",
                [(t, t, visit_id) for t, visit_id in ended],
            )

    async def mark_seen(self, at: int, visit_ids: list[int]) -> None:
        """When each visitor still on the site was last seen (before a stop)."""
        await self._storage.run(
            self._storage.executemany,
            "UPDATE visit SET last_seen = ? WHERE id = ?",
            [(at, v) for v in visit_ids],
        )

    async def purge_views(self, before: int, batch: int) -> int:
        """Delete up to ``batch`` page views older than ``before``; returns how many."""
        cur = await self._storage.run(
            self._storage.execute,
            "DELETE FROM page_view WHERE id IN (SELECT id FROM page_view WHERE ts < ? LIMIT ?)",
            (before, batch),
        )
        return cur.rowcount

    async def visits(self, visitor_id: int, limit: int = 20, trail: int = 500) -> list[dict]:
        """A visitor's newest visits, each with its page trail."""
        execute = self._storage.execute

        def load() -> list[dict]:
            out = []
            for row in execute(
                f"SELECT {', '.join(_VISIT_DETAIL)} FROM visit WHERE visitor_id = ? "
                "ORDER BY id DESC LIMIT ?",
                (visitor_id, limit),
            ).fetchall():
                visit = dict(zip(_VISIT_DETAIL, row, strict=True))
                visit["trail"] = [
                    {"url": u, "title": ti, "ts": ts}
                    for u, ti, ts in execute(
                        "SELECT url, title, ts FROM page_view WHERE visit_id = ? "
                        "ORDER BY id LIMIT ?",
                        (visit["id"], trail),
                    ).fetchall()
                ]
                out.append(visit)
            return out

        return await self._storage.run(load)

    # -- invitation rules ---------------------------------------------------------------------

    async def rules(self, enabled_only: bool = False) -> list[InviteRule]:
        q = InviteRuleRow.select().order_by(InviteRuleRow.id)
        if enabled_only:
            q = q.where(InviteRuleRow.enabled == True)  # noqa: E712 (SQL, not Python)
        return [_rule(r) for r in await self._storage.run(list, q)]

    async def create_rule(self, name: str, message: str, enabled: bool, conditions: dict):
        row = await self._storage.run(
            lambda: InviteRuleRow.create(
                name=name,
                message=message,
                enabled=enabled,
                conditions=json.dumps(conditions),
                created_at=self._storage.clock.now_ms(),
            )
        )
        return _rule(row)

    async def update_rule(self, rule_id: int, **changes: Any) -> InviteRule | None:
        """Change a rule's fields; None when there is no such rule."""
        if "conditions" in changes:
            changes["conditions"] = json.dumps(changes["conditions"])

        def update() -> InviteRuleRow | None:
            if changes:
                InviteRuleRow.update(**changes).where(InviteRuleRow.id == rule_id).execute()
            return InviteRuleRow.get_or_none(InviteRuleRow.id == rule_id)

        row = await self._storage.run(update)
        return _rule(row) if row is not None else None

    async def delete_rule(self, rule_id: int) -> bool:
        q = InviteRuleRow.delete().where(InviteRuleRow.id == rule_id)
        return await self._storage.run(q.execute) > 0


#: Visit columns that are text (set when a visit starts, or resumed after a restart).
_VISIT_TEXT = (
    "landing_url",
    "referrer",
    "search_terms",
    "ip",
    "user_agent",
    "browser",
    "os",
    "device",
    "country",
)
