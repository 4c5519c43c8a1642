"""The composition root: builds each domain object with what it needs, connects their
announcements, and runs the once-a-second tick. Nothing here knows about HTTP."""

from __future__ import annotations

import asyncio
import gc
import resource
import time
from collections.abc import Awaitable, Callable
from typing import Any

from .accounts import Accounts, RunBlocking
from .canned import Canned
from .chats import Chats, changed_elsewhere
from .clock import Clock
from .cluster import RedisHub
from .commands import Commands
from .config import Config
from .context import Context
from .departments import Departments
from .direct import Direct
from .files import Files
from .followup import FollowUp
from .guards import FdGuard, LagMonitor, RateLimiter
from .handover import Handover
from .hub import Hub
from .invitations import Invitations
from .mail import Mailer
from .monitor import Monitor
from .offline import OfflineMessages
from .outbox import Outbox
from .presence import Presence
from .protocol import ApiError, Validator
from .receipts import Receipts
from .routing import Routing
from .site import Site
from .storage import Storage, StorageUnavailable
from .streams import Streams
from .transcripts import Transcripts
from .transfers import Transfers


def executor(fn: Any, *args: Any) -> asyncio.Future:
    """Run blocking work (password hashing, SMTP) in the loop's default thread pool."""
    return asyncio.get_running_loop().run_in_executor(None, fn, *args)


class Services:
    """Every domain object, wired. Handlers and the CLI reach the domain through this."""

    def __init__(
        self,
        config: Config,
        storage: Storage,
        hub: Hub | None = None,
        clock: Clock | None = None,
        run_blocking: RunBlocking = executor,
        hasher: Any = None,
    ):
        self.config = config
        self.storage = storage
        self.hub = hub = hub if hub is not None else Hub()
        self.clock = clock = clock if clock is not None else Clock()
        self.validate = Validator(config)
        ctx = Context(config, storage, hub, clock, self.validate)
        self.accounts = Accounts(ctx, run_blocking, hasher)
        self.presence = Presence(ctx)
        self.departments = Departments(ctx, self.presence)
        self.canned = Canned(ctx, self.departments)
        self.site = Site(ctx, self.presence, self.departments)
        self.monitor = Monitor(ctx)
        self.invitations = Invitations(ctx, self.monitor, self.presence)
        self.chats = Chats(ctx, self.presence, self.invitations, self.site, self.departments)
        self.routing = Routing(ctx, self.chats, self.departments, self.presence)
        self.transfers = Transfers(ctx, self.chats, self.departments, self.presence)
        self.transcripts = Transcripts(self.chats)
        self.outbox = Outbox(ctx, Mailer(config), run_blocking)
        self.offline = OfflineMessages(ctx, self.chats, self.outbox, self.site)
        self.followup = FollowUp(ctx, self.chats, self.outbox, self.site)
        self.handover = Handover(ctx, self.chats, self.presence)
        self.direct = Direct(ctx)
        self.receipts = Receipts(ctx, self.chats)
        self.files = Files(ctx, self.chats)
        self.streams = Streams(
            ctx,
            self.accounts,
            self.presence,
            self.monitor,
            self.invitations,
            self.chats,
            self.routing,
            self.transfers,
            direct=self.direct,
        )
        self.commands = Commands(
            self.validate,
            self.chats,
            self.offline,
            self.followup,
            self.invitations,
            self.presence,
            self.streams,
            self.transfers,
            direct=self.direct,
            receipts=self.receipts,
        )
        self.rl_requests = RateLimiter("requests_per_ip", config.limits_requests_per_ip, clock)
        self.rl_frames = RateLimiter(
            "commands_per_socket", config.limits_commands_per_socket, clock
        )
        self.fd_guard = FdGuard()
        self.lag: LagMonitor | None = None
        self._ticks = 0
        self._tick_timer: Any = None
        self._ticking = False
        # Who reacts to what.
        self.accounts.sessions_ended.connect(self.streams.sessions_ended)
        self.accounts.operator_disabled.connect(self.presence.gone)
        self.accounts.operator_changed.connect(lambda _op_id: self.presence.changed())
        self.presence.went_offline.connect(self.handover.operator_left)
        self.presence.status_set.connect(self.handover.operator_status)
        self.chats.changed.connect(self.monitor.chat_changed)
        self.chats.replied.connect(self.followup.replied)
        self.monitor.page_viewed.connect(self.invitations.page_viewed)
        #: The cluster's hub when several processes serve the site (else None).
        self.cluster = hub if isinstance(hub, RedisHub) else None
        self._leader = self.cluster is None
        self.routing.assigns = self._leader
        #: The other processes alive at the last tick (in a cluster).
        self._alive: set[str] = set()
        if self.cluster is not None:
            self._join_cluster(self.cluster)

    def _join_cluster(self, cluster: RedisHub) -> None:
        """What the other processes must hear of, and what this one does when they speak."""
        cluster.share_limits(
            [
                self.chats.rl_messages,
                self.chats.rl_chats,
                self.rl_requests,
                self.monitor.rl_beacons,
                self.invitations.rl_invites,
            ]
        )
        self.storage.chats.cached = False  # other processes write the same chats
        self.chats.changed.connect(lambda chat: cluster.notify("chat", chat.id))
        cluster.on("chat", self._chat_elsewhere)
        cluster.on("share:presence", self._presence_notice)
        self.accounts.sessions_ended.connect(
            lambda ids, reason: cluster.notify("sessions_ended", [ids, reason])
        )
        cluster.on("sessions_ended", lambda data: self.streams.sessions_ended(*data))
        cluster.gaps.connect(self.streams.fill)
        cluster.reconnected.connect(self.streams.catch_up)
        # The visitors monitor: each process lists the others' visitors as they change, and
        # a process that joins (or comes back) asks for their whole lists.
        cluster.watch("visitors_changed", self.monitor.mirror)
        cluster.on(
            "monitor_hello",
            lambda _d: cluster.notify(
                "monitor_rows", {"origin": cluster.origin, "visitors": self.monitor.all_rows()}
            ),
        )
        cluster.on("monitor_rows", lambda d: self.monitor.mirror(d["origin"], dict(d, type="all")))
        cluster.reconnected.connect(lambda: cluster.notify("monitor_hello"))
        # Caches of what administrators change: the others read it afresh.
        self.storage.accounts.updated = lambda op_id: cluster.notify("operator", op_id)
        cluster.on("operator", self.storage.accounts.forget)
        self.site.saved.connect(lambda: cluster.notify("site"))
        cluster.on("site", lambda _d: self.site.start())
        self.departments.shared = True
        self.departments.changed.connect(lambda: cluster.notify("departments"))
        cluster.on("departments", lambda _d: self._departments_elsewhere())
        # A transfer offered on one process and answered on another: the offering one answers.
        cluster.watch("transfer", self.transfers.seen_elsewhere)
        cluster.serve("transfer", self.transfers.answered_elsewhere)
        cluster.serve(
            "invite",
            lambda d: self.invitations.invite(d["operator_id"], d["visitor_id"], d["message"]),
        )

    async def _departments_elsewhere(self) -> None:
        await self.departments.start()
        self.departments.availability_told()

    def _presence_notice(self, _data: Any = None) -> None:
        """Another process shared its operators: it has told visitors of any change."""
        self.presence.others_changed()
        self.departments.availability_told()

    async def start(self) -> None:
        """Load what lives in memory from the database after a (re)start."""
        await self.accounts.start()
        await self.files.start_up()
        await self.site.start()
        operators = await self.chats.start()
        # Their operators will reconnect after the restart; if not, the grace requeues.
        await self.presence.restore(operators)
        await self.departments.start()
        await self.routing.start()
        await self.outbox.start()

    def start_ticking(self) -> None:
        """Run ``tick`` once a second on the clock (a test's clock ticks when it advances)."""
        self._ticking = True
        self._tick_timer = self.clock.call_later(1.0, self._tick_due)

    def stop_ticking(self) -> None:
        """Stop the timers: the tick, and the outbox's next try."""
        self._ticking = False
        self.outbox.stop()
        if self._tick_timer is not None:
            self._tick_timer.cancel()

    def _tick_due(self) -> None:
        self.clock.spawn(self._tick_then_again())

    async def _tick_then_again(self) -> None:
        try:
            await self.tick()
        finally:
            if self._ticking:
                self._tick_timer = self.clock.call_later(1.0, self._tick_due)

    async def tick(self) -> None:
        """Once a second: timeouts, expiries, page views to disk, idle bookkeeping. In a
        cluster, what must happen once runs on the process holding the lease."""
        if self.cluster is not None:
            await self._cluster_tick(self.cluster)
        if self._leader:
            await _step(self.chats.tick)
            await _step(self.routing.tick)
            await _step(self.monitor.purge_if_due)
        self.streams.drop_forgotten_polls()
        await _step(self.monitor.tick)
        await _step(self.invitations.tick)
        self._ticks += 1
        if self._ticks % 5 == 0:
            await _step(self.streams.end_vanished_sessions)
        if self._ticks % 60 == 0:
            for limiter in (
                self.chats.rl_messages,
                self.chats.rl_chats,
                self.rl_requests,
                self.monitor.rl_beacons,
                self.invitations.rl_invites,
                self.rl_frames,
            ):
                limiter.forget_idle()
            self.accounts.throttle.forget_old()

    async def _chat_elsewhere(self, chat_id: int) -> None:
        await changed_elsewhere(self.chats, chat_id)
        self.routing.changed_elsewhere()

    async def _cluster_tick(self, cluster: RedisHub) -> None:
        was_leader, self._leader = self._leader, await cluster.leader()
        self.routing.assigns = self._leader
        if self._leader and not was_leader:
            self.chats.queue_changed()  # chats may wait for the assignment of a lapsed lease
        self.presence.share()
        self.presence.others_changed()  # another process may have lapsed: its orphans
        if self._leader:
            self.presence.adopt_orphans()
        alive = cluster.live_origins()
        if self._alive - alive:
            # A process vanished: what it stored last may never have reached Redis.
            await _step(self.streams.catch_up)
        self._alive = alive
        if not cluster.connected and self._ticks % 2 == 0:
            # Redis is away: new events of the chats on this process's streams come from the
            # database instead, every 2 s.
            await _step(self.streams.catch_up)

    async def close(self) -> None:
        """After the streams are closed: leave the cluster, close the database."""
        if self.cluster is not None:
            await self.cluster.stop()
        await self.storage.close()

    def check_request(self, ip: str) -> None:
        """Every HTTP request and WebSocket upgrade: file guard, then the per-address limit."""
        if self.fd_guard.full():
            raise ApiError(
                "server_full", "the server is at its connection limit; try again shortly", 503
            )
        self.rl_requests.check(ip, "requests from this address")

    async def track(self, body: Any, ip: str, user_agent: str) -> None:
        """A page-view beacon; the token is in the body (no preflight needed)."""
        if not isinstance(body, dict):
            raise ApiError("bad_json", "expected a JSON object")
        for k in body:
            if k not in ("token", "url", "title", "referrer", "type"):
                raise ApiError("unknown_field", f"'{k}' is not a field of a page view", field=k)
        vid = await self.accounts.visitor_id_for(body.get("token"))
        await self.monitor.track(vid, body, ip, user_agent)

    def metrics(self, reset: bool = False) -> dict:
        hub = self.hub
        return {
            "visitor_streams": hub.count("visitors"),
            "operator_streams": hub.count("ops"),
            "poll_conns": len(self.streams.poll_conns),
            "held_polls": self.streams.held_polls(),
            "waiting_chats": len(self.chats.waiting),
            "operators_present": len(self.presence.present),
            "open_files": self.fd_guard.count_open(),
            "file_limit": self.fd_guard.limit,
            "max_rss_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
            "cpu_s": round(time.process_time(), 3),
            "gc_counts": gc.get_count(),
            "loop_lag": self.lag.snapshot(reset) if self.lag else None,
        }


async def _step(step: Callable[[], Awaitable[None]]) -> None:
    """One step of the tick. On a full disk or a database locked by another program (the
    storage has logged it) the step tries again at the next tick, and the steps after it still
    run: invitations expire, limits forget."""
    try:
        await step()
    except StorageUnavailable:
        pass
