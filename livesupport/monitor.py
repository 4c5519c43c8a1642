"""Live traffic: who is on the site now, their visits and page views, for the console.

Page views arrive by beacon (``POST /api/visitor/track``) and are written in batches about
once a second; presence comes from the visitor's streams. Consoles get a ``visitors`` snapshot
on hello and ``visitors_changed`` deltas coalesced in windows of at most ``COALESCE`` seconds.
"""

from __future__ import annotations

import heapq
import logging
from dataclasses import dataclass
from typing import Any

from .config import split_url
from .context import Context
from .enrichment import GeoIP, UserAgents, clip, search_terms
from .guards import RateLimiter
from .hub import Signal
from .protocol import (
    ACTIVE,
    MAX_TITLE_CHARS,
    MAX_UA_CHARS,
    MAX_URL_CHARS,
    OPEN_STATUSES,
    PENDING,
    WAITING,
    ApiError,
    chat_summary,
    not_found,
    operator_ref,
)
from .storage import StorageUnavailable
from .storage.records import Chat, Visit

log = logging.getLogger("cutelive")

#: A visitor whose visit was cut by a server restart (not by leaving) resumes it within this.
VISIT_RESUME = 30 * 60
#: How long a visitor who left stays in the monitor (shown as "left").
KEEP_LEFT_MS = 60_000
#: Page views deleted per tick when purging old ones, so a purge never stalls the loop.
PURGE_BATCH = 5000


@dataclass(eq=False, slots=True)
class LiveVisitor:
    """A visitor on the site now (or just gone): what the monitor shows, kept in memory."""

    visitor_id: int
    visit_id: int
    visit_number: int
    first_seen: int
    started_at: int
    ip: str
    user_agent: str
    browser: str
    os: str
    device: str
    country: str
    landing_url: str = ""
    referrer: str = ""
    search_terms: str = ""
    url: str = ""
    title: str = ""
    page_since: int = 0
    last_activity: int = 0
    pages: int = 0
    previous_chats: int = 0
    left_at: int | None = None
    leave_timer: Any = None
    leave_at: float = 0.0  # clock.monotonic() when a visitor without streams leaves
    chat_id: int | None = None
    chat_status: str | None = None
    chat_operator: dict | None = None
    #: The name and e-mail address the visitor gave in a chat (kept after it ends).
    name: str = ""
    email: str = ""
    invitation: dict | None = None
    auto_invited: bool = False
    state: str = "browsing"
    #: The wall-clock second the monitor looks at this visitor again (0: not set).
    look_at: int = 0

    @classmethod
    def of_visit(cls, visitor_id: int, visit: Visit) -> LiveVisitor:
        return cls(
            visitor_id=visitor_id,
            visit_id=visit.id,
            visit_number=visit.number,
            first_seen=visit.first_seen,
            started_at=visit.started_at,
            ip=visit.ip,
            user_agent=visit.user_agent,
            browser=visit.browser,
            os=visit.os,
            device=visit.device,
            country=visit.country,
            landing_url=visit.landing_url,
            referrer=visit.referrer,
            search_terms=visit.search_terms,
            last_activity=visit.last_seen,
            pages=visit.pages,
            previous_chats=visit.previous_chats,
        )

    def pending_invitation(self, now_ms: int) -> dict | None:
        inv = self.invitation
        if inv and inv["state"] == "pending" and inv["expires_at"] > now_ms:
            return inv
        return None


class Monitor:
    """Visitors on the site, their visits and page views, and the consoles' view of them.

    Announces ``page_viewed(live_visitor)`` after each page view (for automatic invitations).
    """

    COALESCE = 0.15
    #: Page views held in memory while the disk is full (some tens of MB); past it the oldest
    #: are dropped, with a warning.
    HELD_VIEWS_MAX = 100_000

    def __init__(self, ctx: Context):
        config = self.config = ctx.config
        self.storage, self.hub, clock = ctx.storage, ctx.hub, ctx.clock
        self.clock = clock
        self.live: dict[int, LiveVisitor] = {}
        self._views: list[tuple] = []
        self._ended: list[tuple[int, int]] = []
        self._landing: list[tuple] = []
        self._dirty: set[int] = set()
        self._gone: set[int] = set()
        #: When a visitor's row may change with time alone (browsing becomes idle, one who left
        #: is forgotten): visitor ids by the wall-clock second to look at them again, at most
        #: one second per visitor (``LiveVisitor.look_at``). The tick looks at those due
        #: instead of walking every visitor every second.
        self._due: dict[int, set[int]] = {}
        self._due_seconds: list[int] = []  # a heap of ``_due``'s keys
        self._flush_scheduled = False
        #: In a cluster: the other processes' visitors, by process, as their rows last said
        #: (``mirror``); their consoles' live changes arrive as usual.
        self._cluster = getattr(self.hub, "live_origins", None) is not None
        self._others: dict[str, dict[int, dict]] = {}
        self._dropping_views = False
        self._last_purge: float | None = None
        self.ua = UserAgents()
        self.geo = GeoIP(config.monitor_geoip_db)
        self._idle_ms = config.monitor_idle_after * 1000
        self.rl_beacons = RateLimiter(
            "beacons_per_visitor", config.monitor_beacons_per_visitor, clock
        )
        self.page_viewed = Signal("page_viewed")

    # -- visitors and visits ------------------------------------------------------------------

    async def _live(self, vid: int, ip: str, ua: str, url: str = "", referrer: str = ""):
        lv = self.live.get(vid)
        if lv is not None and lv.left_at is None:
            return lv
        t = self.clock.now_ms()
        if lv is None:
            # After a restart, a visitor who never left carries on with the visit it had.
            visit = await self.storage.traffic.resumable_visit(vid)
            if visit is not None and t - visit.last_seen <= VISIT_RESUME * 1000:
                return await self._went_live(LiveVisitor.of_visit(vid, visit))
        ua = ua[:MAX_UA_CHARS]
        browser, os_, device = self.ua.parse(ua)
        visit = await self.storage.traffic.start_visit(
            vid,
            t,
            landing_url=url,
            referrer=referrer,
            search_terms=search_terms(referrer),
            ip=ip,
            user_agent=ua,
            browser=browser,
            os=os_,
            device=device,
            country=self.geo.country(ip),
        )
        return await self._went_live(LiveVisitor.of_visit(vid, visit))

    async def _went_live(self, lv: LiveVisitor) -> LiveVisitor:
        for chat in (await self.storage.chats.visitor_chats(lv.visitor_id, open_only=True))[:1]:
            await self._set_chat(lv, chat)
        self.live[lv.visitor_id] = lv
        self._gone.discard(lv.visitor_id)
        self._check_at(lv, lv.last_activity + self._idle_ms)
        self.touch(lv.visitor_id)
        return lv

    async def track(self, vid: int, body: Any, ip: str, ua: str) -> None:
        """A page view beacon of visitor ``vid``: ``{"token", "url", "title", "referrer"}``."""
        fields = {
            "url": clip(body.get("url"), MAX_URL_CHARS),
            "title": clip(body.get("title"), MAX_TITLE_CHARS),
            "referrer": clip(body.get("referrer"), MAX_URL_CHARS),
        }
        for name, value in fields.items():
            if value is None:
                raise ApiError("invalid_field", f"'{name}' is not valid Unicode", field=name)
        url, title, referrer = fields["url"], fields["title"], fields["referrer"]
        if not isinstance(body.get("url"), str) or not url:
            raise ApiError("invalid_field", "'url' is required", field="url")
        u = split_http(url)
        if u is None or not u.netloc:
            raise ApiError("invalid_field", "'url' must be an http(s) URL", field="url")
        if referrer and split_http(referrer) is None:
            referrer = ""
        self.rl_beacons.check(vid, "page views")
        lv = await self._live(vid, ip, ua, url, referrer)
        t = self.clock.now_ms()
        if not lv.landing_url:  # the visit began with a stream (pop-out, restored window)
            lv.landing_url, lv.referrer, lv.search_terms = url, referrer, search_terms(referrer)
            self._landing.append((url, referrer, lv.search_terms, lv.visit_id))
        lv.url, lv.title, lv.page_since, lv.last_activity = url, title, t, t
        self._check_at(lv, t + self._idle_ms)
        lv.pages += 1
        self._views.append((lv.visit_id, vid, url, title, referrer, t))
        if self.hub.count(f"v:{vid}") == 0:
            self._start_leave(lv)
        self.touch(vid)
        await self.page_viewed.emit(lv)

    async def stream_opened(self, visitor_id: int, ip: str, user_agent: str) -> None:
        lv = await self._live(visitor_id, ip, user_agent)
        if lv.leave_timer is not None:
            lv.leave_timer.cancel()
            lv.leave_timer = None
        self.touch(lv.visitor_id)

    def stream_closed(self, visitor_id: int) -> None:
        lv = self.live.get(visitor_id)
        if lv is None or lv.left_at is not None:
            return
        if self.hub.count(f"v:{visitor_id}") == 0:
            self._start_leave(lv)
        self.touch(lv.visitor_id)

    def _start_leave(self, lv: LiveVisitor) -> None:
        # Every beacon of a visitor without a stream moves the deadline; the timer already
        # running then re-arms itself for the rest instead of being cancelled and made anew
        # (a timer per page view was a measurable share of the beacon path).
        grace = self.config.monitor_leave_grace
        lv.leave_at = self.clock.monotonic() + grace
        if lv.leave_timer is None:
            lv.leave_timer = self.clock.call_later(grace, lambda: self._leave(lv))

    def _leave(self, lv: LiveVisitor) -> None:
        lv.leave_timer = None
        rest = lv.leave_at - self.clock.monotonic()
        if rest > 0.001 and self.live.get(lv.visitor_id) is lv:
            lv.leave_timer = self.clock.call_later(rest, lambda: self._leave(lv))
            return
        if self.live.get(lv.visitor_id) is not lv or self.hub.count(f"v:{lv.visitor_id}"):
            return
        lv.left_at = self.clock.now_ms()
        if lv.invitation and lv.invitation["state"] == "pending":
            lv.invitation["state"] = "expired"
        # The visit is over: a later arrival starts the next one (written with the page views).
        self._ended.append((lv.left_at, lv.visit_id))
        self._check_at(lv, lv.left_at + KEEP_LEFT_MS)
        self.touch(lv.visitor_id)

    async def _set_chat(self, lv: LiveVisitor, chat: Chat) -> None:
        is_open = chat.status in OPEN_STATUSES
        lv.chat_id = chat.id if is_open else None
        lv.chat_status = chat.status if is_open else None
        op = await self.storage.accounts.operator(chat.operator_id) if chat.operator_id else None
        lv.chat_operator = operator_ref(op.id, op.display_name) if op else None
        if chat.name and not (chat.name == "Visitor" and lv.name):
            lv.name = chat.name
        if chat.email:
            lv.email = chat.email

    async def chat_changed(self, chat: Chat) -> None:
        """A chat's status or operator changed (the chats announce it)."""
        lv = self.live.get(chat.visitor_id)
        if lv is None:
            return
        await self._set_chat(lv, chat)
        self.touch(lv.visitor_id)

    # -- monitor events -----------------------------------------------------------------------

    def state_of(self, lv: LiveVisitor, t: int | None = None) -> str:
        t = self.clock.now_ms() if t is None else t
        if lv.left_at is not None:
            return "left"
        if lv.chat_status in (ACTIVE, PENDING):
            return "chatting"
        if lv.chat_status == WAITING:
            return "waiting"
        if lv.invitation and lv.invitation["state"] == "pending":
            return "invited"
        if t - lv.last_activity > self._idle_ms:
            return "idle"
        return "browsing"

    def row(self, lv: LiveVisitor) -> dict:
        lv.state = self.state_of(lv)
        inv = lv.invitation
        return {
            "id": lv.visitor_id,
            "state": lv.state,
            "tabs": self.hub.count(f"v:{lv.visitor_id}"),
            "url": lv.url,
            "title": lv.title,
            "page_since": lv.page_since,
            "referrer": lv.referrer,
            "search_terms": lv.search_terms,
            "landing_url": lv.landing_url,
            "pages": lv.pages,
            "started_at": lv.started_at,
            "last_activity": lv.last_activity,
            "left_at": lv.left_at,
            "visit_number": lv.visit_number,
            "first_seen": lv.first_seen,
            "previous_chats": lv.previous_chats,
            "browser": lv.browser,
            "os": lv.os,
            "device": lv.device,
            "ip": lv.ip,
            "country": lv.country,
            "chat_id": lv.chat_id,
            "operator": lv.chat_operator,
            "name": lv.name,
            "email": lv.email,
            "invitation": {k: inv[k] for k in ("id", "state", "operator", "message")}
            if inv
            else None,
        }

    def snapshot_event(self) -> dict:
        rows = [self.row(lv) for lv in self.live.values()]
        if self._others:
            alive = self.hub.live_origins()
            for origin in [o for o in self._others if o not in alive]:
                del self._others[origin]  # that process is gone, with its visitors
            for part in self._others.values():
                rows.extend(r for vid, r in part.items() if vid not in self.live)
        return {"type": "visitors", "visitors": rows}

    # -- the cluster --------------------------------------------------------------------------

    def mirror(self, origin: str, event: dict) -> None:
        """Another process's visitors changed (its ``visitors_changed``, or its whole list
        when this process asked: ``all_rows``)."""
        part = self._others.setdefault(origin, {})
        if event.get("type") == "all":
            part.clear()
        for row in event.get("visitors", ()):
            part[row["id"]] = row
        for vid in event.get("gone", ()):
            part.pop(vid, None)

    def origin_of(self, visitor_id: int) -> str | None:
        """The other process a visitor is live on, if any."""
        for origin, part in self._others.items():
            row = part.get(visitor_id)
            if row is not None and row.get("left_at") is None:
                return origin
        return None

    def all_rows(self) -> list[dict]:
        """This process's visitors, for a process that just joined."""
        return [self.row(lv) for lv in self.live.values()]

    def touch(self, vid: int) -> None:
        """The visitor's row changed: consoles get it with the next coalesced delta."""
        self._dirty.add(vid)
        if not self._flush_scheduled:
            self._flush_scheduled = True
            self.clock.call_later(self.COALESCE, self._flush_monitor)

    def _flush_monitor(self) -> None:
        self._flush_scheduled = False
        dirty, self._dirty = self._dirty, set()
        gone, self._gone = self._gone, set()
        if self.hub.count("ops") == 0 and not self._cluster:
            return  # (in a cluster, consoles on other processes want it)
        rows = [self.row(self.live[v]) for v in dirty if v in self.live]
        if rows or gone:
            self.hub.publish(
                ["ops"], {"type": "visitors_changed", "visitors": rows, "gone": sorted(gone)}
            )

    # -- periodic -----------------------------------------------------------------------------

    def _check_at(self, lv: LiveVisitor, ms: int) -> None:
        """Look at the visitor again at the first tick after wall-clock time ``ms`` (or at the
        earlier time already set: that look sets the next)."""
        second = ms // 1000 + 1
        if lv.look_at and lv.look_at <= second:
            return
        lv.look_at = second
        due = self._due.get(second)
        if due is None:
            due = self._due[second] = set()
            heapq.heappush(self._due_seconds, second)
        due.add(lv.visitor_id)

    async def tick(self) -> None:
        """Every second: idle transitions, forgetting who left, page views to disk."""
        t = self.clock.now_ms()
        now_s = t // 1000
        while self._due_seconds and self._due_seconds[0] <= now_s:
            second = heapq.heappop(self._due_seconds)
            for vid in self._due.pop(second):
                self._look_again(vid, second, t)
        if self._views or self._ended or self._landing:
            await self.flush_views()

    def _look_again(self, vid: int, second: int, t: int) -> None:
        lv = self.live.get(vid)
        if lv is None or lv.look_at != second:
            return  # gone, or an earlier look (of this visit or the next) took its place
        lv.look_at = 0
        if lv.left_at is not None:
            if t - lv.left_at > KEEP_LEFT_MS:
                del self.live[vid]
                self._gone.add(vid)
                self.touch(vid)
            else:
                self._check_at(lv, lv.left_at + KEEP_LEFT_MS)
            return
        if self.state_of(lv, t) != lv.state:
            self.touch(vid)
        if t - lv.last_activity <= self._idle_ms:  # active since: idle no sooner than this
            self._check_at(lv, lv.last_activity + self._idle_ms)

    async def purge_if_due(self) -> None:
        """Every hour (in a cluster, on the process holding the lease): the purge."""
        mono = self.clock.monotonic()
        if self._last_purge is None or mono - self._last_purge > 3600:
            self._last_purge = mono
            await self.purge()

    async def flush_views(self) -> None:
        """Write the page views, visit ends and landing pages since the last flush."""
        views, self._views = self._views, []
        ended, self._ended = self._ended, []
        landing, self._landing = self._landing, []
        try:
            await self.storage.traffic.write_views(views, landing, ended)
        except StorageUnavailable:
            # Nothing was written: all of it waits for the next tick, ahead of what arrives.
            self._views[:0] = views
            self._ended[:0] = ended
            self._landing[:0] = landing
            over = len(self._views) - self.HELD_VIEWS_MAX
            if over > 0:
                del self._views[:over]
                if not self._dropping_views:
                    self._dropping_views = True
                    log.warning(
                        "the disk is full and %d page views wait in memory: older ones are "
                        "dropped until they can be written",
                        self.HELD_VIEWS_MAX,
                    )
            raise
        self._dropping_views = False

    async def shutdown(self) -> None:
        """Before a stop: write what is pending, and when each visitor on the site was seen."""
        at = self.clock.now_ms()
        await self.storage.traffic.mark_seen(
            at, [lv.visit_id for lv in self.live.values() if lv.left_at is None]
        )
        await self.flush_views()

    async def purge(self) -> None:
        """Delete page views older than ``[monitor] retention``; no cron needed."""
        cutoff = self.clock.now_ms() - int(self.config.monitor_retention * 1000)
        n = await self.storage.traffic.purge_views(cutoff, PURGE_BATCH)
        if n:
            log.info("purged %d page views older than the retention", n)
        if n == PURGE_BATCH:
            self._last_purge = None  # more to do: the next tick continues

    async def detail(self, visitor_id: int) -> dict:
        """A visitor's visits with their page trails, and previous chats, for the console."""
        v = await self.storage.accounts.visitor(visitor_id)
        if v is None:
            raise not_found(f"no visitor {visitor_id}")
        await self.flush_views()
        visits = await self.storage.traffic.visits(visitor_id)
        chats = []
        for c in (await self.storage.chats.visitor_chats(visitor_id))[:50]:
            op = await self.storage.accounts.operator(c.operator_id) if c.operator_id else None
            chats.append(chat_summary(c, "operator", op))
        lv = self.live.get(visitor_id)
        return {
            "visitor": self.row(lv) if lv else None,
            "first_seen": v.created_at,
            "visits": visits,
            "chats": chats,
        }


def split_http(url: str):
    """The parts of an http(s) URL, or None for anything else."""
    u = split_url(url)
    if u is None or u.scheme.lower() not in ("http", "https"):
        return None
    return u
