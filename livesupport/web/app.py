"""The route table and the application: ``make_app(config)`` builds everything and starts the
timers; ``GuardedHTTPServer`` refuses connections at the open-file cap."""

from __future__ import annotations

import asyncio
import logging
import os
import re
from dataclasses import dataclass, field
from typing import Any

import tornado.httpserver
import tornado.httputil
import tornado.log
import tornado.web

from ..clock import Clock
from ..cluster import RedisHub, cluster_namespace
from ..config import ASSETS_DIR, Config
from ..files import file_too_large
from ..guards import FdGuard, LagMonitor
from ..protocol import encode
from ..services import Services
from ..storage import Storage
from .base import body_too_large
from .beacon import Beacons
from .files import DownloadHandler, FileLinkHandler, UploadHandler
from .handlers import (
    AssetHandler,
    ButtonHandler,
    CannedRepliesHandler,
    CannedReplyHandler,
    ChatHandler,
    ConsoleChatsHandler,
    ConsoleVisitorHandler,
    ConsoleVisitorsHandler,
    DemoHandler,
    DepartmentHandler,
    DepartmentsHandler,
    DirectHandler,
    FileHandler,
    InviteRuleHandler,
    InviteRulesHandler,
    LoginHandler,
    LogoutHandler,
    MailHandler,
    MetricsHandler,
    NotFoundHandler,
    OfflineMessageHandler,
    OfflineMessageReplyHandler,
    OfflineMessagesHandler,
    OperatorHandler,
    OperatorsHandler,
    PageHandler,
    PasswordHandler,
    PollHandler,
    SendHandler,
    SessionHandler,
    SettingsHandler,
    SetupHandler,
    StatusHandler,
    TrackHandler,
    VisitorChatsHandler,
    VisitorTokenHandler,
    WidgetConfigHandler,
)
from .health import HealthHandler, Readiness, ReadyHandler
from .sockets import ConsoleSocket, VisitorSocket


@dataclass(frozen=True)
class Route:
    """One route: its path pattern, handler, and authentication (a level of ``AUTH_LEVELS``,
    or one per HTTP method)."""

    pattern: str
    handler: type
    auth: str | dict[str, str]
    kwargs: dict[str, Any] = field(default_factory=dict)

    def levels(self) -> set[str]:
        return set(self.auth.values()) if isinstance(self.auth, dict) else {self.auth}


def _file(filename: str) -> dict[str, Any]:
    return dict(path=ASSETS_DIR, filename=filename)


def _admin_managed(path: str, collection: type, item: type) -> list[Route]:
    """A collection operators list and administrators add to, and its items (``path/ID``),
    which administrators alone change."""
    return [
        Route(path, collection, {"GET": "operator", "POST": "admin"}),
        Route(path + r"/([^/]+)", item, "admin"),
    ]


#: The whole route table; docs/PROTOCOL.md documents every ``/api`` route in it. Tornado tries
#: the patterns in order, so the routes every visitor uses again and again come first.
ROUTES: list[Route] = [
    Route(r"/api/visitor/track", TrackHandler, "visitor_origin"),
    Route(r"/api/visitor/ws", VisitorSocket, "visitor"),
    Route(r"/api/visitor/poll", PollHandler, "visitor"),
    Route(r"/api/status", StatusHandler, "public"),
    Route(r"/api/metrics", MetricsHandler, "local"),
    Route(r"/api/health", HealthHandler, "health"),
    Route(r"/api/ready", ReadyHandler, "health"),
    Route(r"/api/widget/config", WidgetConfigHandler, "public"),
    Route(r"/api/button", ButtonHandler, "public"),
    Route(r"/api/visitor/token", VisitorTokenHandler, "visitor_origin"),
    Route(r"/api/visitor/send", SendHandler, "visitor"),
    Route(r"/api/visitor/chats", VisitorChatsHandler, "visitor"),
    Route(r"/api/visitor/chats/([^/]+)", ChatHandler, "visitor"),
    Route(r"/api/console/session", SessionHandler, "console"),
    Route(r"/api/console/setup", SetupHandler, "console"),
    Route(r"/api/console/login", LoginHandler, "console"),
    Route(r"/api/console/logout", LogoutHandler, "operator"),
    Route(r"/api/console/ws", ConsoleSocket, "operator"),
    Route(r"/api/console/poll", PollHandler, "operator"),
    Route(r"/api/console/send", SendHandler, "operator"),
    Route(r"/api/console/chats", ConsoleChatsHandler, "operator"),
    Route(r"/api/console/chats/([^/]+)", ChatHandler, "operator"),
    Route(r"/api/console/visitors", ConsoleVisitorsHandler, "operator"),
    Route(r"/api/console/visitors/([^/]+)", ConsoleVisitorHandler, "operator"),
    *_admin_managed(r"/api/console/invite-rules", InviteRulesHandler, InviteRuleHandler),
    Route(r"/api/console/offline-messages", OfflineMessagesHandler, "operator"),
    Route(r"/api/console/offline-messages/([^/]+)", OfflineMessageHandler, "operator"),
    Route(r"/api/console/offline-messages/([^/]+)/reply", OfflineMessageReplyHandler, "operator"),
    Route(r"/api/console/mail", MailHandler, "operator"),
    Route(r"/api/console/password", PasswordHandler, "operator"),
    Route(r"/api/console/settings", SettingsHandler, {"GET": "operator", "PATCH": "admin"}),
    *_admin_managed(r"/api/console/operators", OperatorsHandler, OperatorHandler),
    *_admin_managed(r"/api/console/departments", DepartmentsHandler, DepartmentHandler),
    Route(r"/api/console/direct/([^/]+)", DirectHandler, "operator"),
    Route(r"/api/console/canned", CannedRepliesHandler, "operator"),
    Route(r"/api/console/canned/([^/]+)", CannedReplyHandler, "operator"),
    Route(r"/api/visitor/chats/([^/]+)/files", UploadHandler, "visitor"),
    Route(r"/api/console/chats/([^/]+)/files", UploadHandler, "operator"),
    Route(r"/api/visitor/files/([^/]+)", FileLinkHandler, "visitor"),
    Route(r"/api/console/files/([^/]+)", FileLinkHandler, "operator"),
    Route(r"/api/files/([^/]+)", DownloadHandler, "signed"),
    Route(r"/api/.*", NotFoundHandler, "none"),
    Route(r"/widget\.js", FileHandler, "static", _file("widget/widget.js")),
    Route(
        r"/chat", PageHandler, "page", dict(_file("widget/chat.html"), framing="allowed_origins")
    ),
    Route(r"/console/?", PageHandler, "page", dict(_file("console/index.html"), framing="none")),
    Route(r"/assets/(.*)", AssetHandler, "static", dict(path=ASSETS_DIR)),
    Route(
        r"/demo/(.*)",
        DemoHandler,
        "static",
        dict(path=os.path.join(ASSETS_DIR, "demo"), default_filename="index.html"),
    ),
    Route(r"/()", tornado.web.RedirectHandler, "static", dict(url="/console/")),
]


#: The upload routes, as (path pattern, authentication): their bodies are limited by
#: ``[files] max_size``, not ``max_body``.
UPLOADS = [(re.compile(r.pattern), r.auth) for r in ROUTES if r.handler is UploadHandler]


def upload_auth(path: str) -> str | None:
    """The authentication of the upload route ``path`` is, or None for any other path."""
    path = path.split("?", 1)[0]
    return next((auth for pattern, auth in UPLOADS if pattern.fullmatch(path)), None)


def tornado_routes(services: Services) -> list:
    out = []
    for r in ROUTES:
        if r.auth == "static":
            out.append((r.pattern, r.handler, r.kwargs))
        elif r.auth == "page":
            out.append((r.pattern, r.handler, dict(r.kwargs, services=services)))
        else:
            out.append((r.pattern, r.handler, dict(services=services, auth=r.auth)))
    return out


class _FrontDoor(tornado.httputil.HTTPMessageDelegate):
    """What every request meets first, from its headers.

    A request whose ``Content-Length`` is over ``[limits] max_body`` is answered at once with the
    JSON 413 every other refusal has; its body is then read and dropped (never kept) until it
    ends or ``[limits] body_timeout`` passes, so that the answer is not lost to a connection
    reset. A plain page-view beacon goes to ``beacon.Beacon``; any other request to the
    application."""

    def __init__(self, server: GuardedHTTPServer, server_conn: Any, conn: Any):
        self.server, self.server_conn, self.conn = server, server_conn, conn
        self.inner: Any = None
        self.refused = False

    def _pass(self, inner: Any, start_line: Any, headers: Any) -> Any:
        self.inner = inner
        return inner.headers_received(start_line, headers)

    def headers_received(self, start_line: Any, headers: Any) -> Any:
        server = self.server
        length = headers.get("Content-Length", "")
        if not (length.isascii() and length.isdigit()):
            return self._pass(server.application_delegate(self), start_line, headers)
        size = int(length)
        if size <= server.smallest:
            if size <= self.conn.stream._read_buffer_size:
                # The whole body came with the headers, so reading it cannot be slow: no
                # body_timeout timer (a page-view beacon's usual case).
                self.conn.set_body_timeout(None)
            if start_line.path == server.beacon_path and start_line.method == "POST":
                beacon = server.beacons.request(self.conn, self.server_conn)
                return self._pass(beacon, start_line, headers)
            return self._pass(server.application_delegate(self), start_line, headers)
        upload = upload_auth(getattr(start_line, "path", ""))
        limit = server.file_limit if upload else server.body_limit
        if size <= limit:
            return self._pass(server.application_delegate(self), start_line, headers)
        self.refused = True
        self.conn.set_max_body_size(size)  # read it to the end, dropping it
        err = file_too_large(size, limit) if upload else body_too_large(length, limit)
        body = encode(err.event()).encode("utf-8")
        fields = {
            "Content-Type": "application/json; charset=utf-8",
            "Content-Length": str(len(body)),
            "X-Content-Type-Options": "nosniff",
            "Connection": "close",
        }
        origin = headers.get("Origin")
        if origin and upload == "visitor":
            fields["Access-Control-Allow-Origin"] = origin  # so the widget can read why
        self.conn.write_headers(
            tornado.httputil.ResponseStartLine("HTTP/1.1", 413, "Payload Too Large"),
            tornado.httputil.HTTPHeaders(fields),
            body,
        )
        return None

    def data_received(self, chunk: bytes) -> Any:
        if not self.refused:
            return self.inner.data_received(chunk)
        return None

    def finish(self) -> None:
        if self.refused:
            self.conn.finish()
        else:
            self.inner.finish()

    def on_connection_close(self) -> None:
        if not self.refused and self.inner is not None:
            self.inner.on_connection_close()


class GuardedHTTPServer(tornado.httpserver.HTTPServer):
    """Closes a new connection at once when the process is at its hard file cap; refuses a
    body over ``body_limit`` bytes from its ``Content-Length`` and answers page-view beacons
    itself (``_FrontDoor``)."""

    def initialize(
        self,
        app: tornado.web.Application,
        *args: Any,
        fd_guard: FdGuard,
        body_limit: int,
        file_limit: int,
        **kwargs: Any,
    ) -> None:
        super().initialize(app, *args, **kwargs)
        self.fd_guard = fd_guard
        self.body_limit = body_limit
        self.file_limit = file_limit
        self.smallest = min(body_limit, file_limit)
        route = next(r for r in ROUTES if r.handler is TrackHandler)
        self.beacon_path = route.pattern
        self.beacons = Beacons(app, dict(services=app.services, auth=route.auth))

    def start_request(self, server_conn: object, request_conn: Any) -> Any:
        return _FrontDoor(self, server_conn, request_conn)

    def application_delegate(self, door: _FrontDoor) -> Any:
        """The application's own delegate for a request (Tornado's routing and handlers)."""
        return super().start_request(door.server_conn, door.conn)

    def handle_stream(self, stream, address) -> None:
        self.fd_guard.accepted()
        if self.fd_guard.full(hard=True):
            stream.close()
            return
        super().handle_stream(stream, address)


class _Application(tornado.web.Application):
    """Tornado's, with one change to the access log: answers the server logs in its own way
    are left out (a full disk or a database locked by another program is logged by the
    storage once a minute, not once a request; /api/ready's 503 by ``serve`` when stopping)."""

    def log_request(self, handler: tornado.web.RequestHandler) -> None:
        if getattr(handler, "error", None) in ("storage_full", "storage_busy", "not_ready"):
            return
        status = handler.get_status()
        level = logging.INFO if status < 400 else logging.WARNING if status < 500 else logging.ERROR
        if tornado.log.access_log.isEnabledFor(level):  # else not even the line's text is made
            super().log_request(handler)


async def make_app(
    config: Config,
    *,
    storage: Storage | None = None,
    clock: Clock | None = None,
    hasher: Any = None,
) -> tornado.web.Application:
    """Build the application: storage opened and migrated, services started, routes bound,
    the once-a-second tick running. Tests hand in their own clock and a cheap hasher."""
    clock = clock if clock is not None else Clock()
    hub = None
    if config.cluster_redis_url:  # checked first: a refused start creates nothing
        hub = RedisHub(config.cluster_redis_url, cluster_namespace(config.database_url))
        await hub.start()
    if storage is None:
        storage = Storage.for_config(config, clock)
    try:
        await storage.open()
    except BaseException:
        if hub is not None:
            await hub.stop()
        raise
    loop = asyncio.get_running_loop()
    services = Services(config, storage, hub=hub, clock=clock, hasher=hasher)
    await services.start()
    await storage.serve()
    services.start_ticking()
    services.lag = LagMonitor(loop.call_later)
    services.lag.start()
    # Load the user-agent rules in the background so the first visitor does not wait for them.
    loop.run_in_executor(None, services.monitor.ua.parse, "Mozilla/5.0 (X11; Linux x86_64)")
    secure = config.base_url().startswith("https://")
    app = _Application(
        tornado_routes(services),
        default_handler_class=NotFoundHandler,
        default_handler_args=dict(services=services, auth="none"),
        cookie_secret=await storage.site.secret("cookie_secret"),
        xsrf_cookies=True,
        xsrf_cookie_kwargs=dict(httponly=True, samesite="Strict", secure=secure),
        websocket_ping_interval=config.realtime_heartbeat,
        websocket_ping_timeout=config.realtime_heartbeat,
        websocket_max_message_size=config.limits_max_frame,
        compress_response=True,
    )
    app.services = services
    #: What /api/ready answers; ``serve`` marks it stopping on SIGTERM.
    app.readiness = Readiness(storage)
    return app
