"""Page-view beacons answered at the connection: ``POST /api/visitor/track`` without a
``RequestHandler``.

Every page view of the customer's whole site is one beacon, so it is the request the server
answers most. Tornado's handler machinery (a handler object, its default headers cleared and set
again, the output transforms, ``_execute``'s coroutine, ``flush`` and ``finish``) cost about a
quarter of a beacon's CPU, more than the page view's own work. ``Beacon`` runs the same checks in
the same order as ``TrackHandler`` (origin, then the file guard and the per-address limit, then
``Services.track``) and answers the 204 itself. Anything refused is handed to a real
``TrackHandler``, so errors, their headers and the access log are exactly the handler's. Only a
plain beacon comes here: ``_FrontDoor`` (app.py) sends anything else (a query string, a chunked
body, another method) to the application.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import tornado.httputil
import tornado.log
import tornado.web

from .base import (
    client_ip,
    origin_refused,
    parse_json,
    request_user_agent,
    visitor_origin_allowed,
)
from .handlers import TrackHandler

NO_CONTENT = tornado.httputil.ResponseStartLine("HTTP/1.1", 204, "No Content")
#: What ``TrackHandler`` answers a beacon with: its defaults (``BaseHandler``), less the
#: Content-Type Tornado drops from a 204, and the ``Vary`` its gzip transform extends.
SERVER = ("Server", f"TornadoServer/{tornado.version}")
PLAIN_HEADERS = (("X-Content-Type-Options", "nosniff"), ("Cache-Control", "no-store"))
CORS_HEADERS = (
    ("Access-Control-Allow-Headers", "Authorization, Content-Type"),
    ("Access-Control-Allow-Methods", "GET, POST, OPTIONS"),
    ("Access-Control-Max-Age", "600"),
)
VARY = ("Vary", "Origin, Accept-Encoding")


_dated: list = [0, ""]


def _date() -> str:
    """The ``Date`` header, made once a second."""
    now = int(time.time())
    if _dated[0] != now:
        _dated[:] = [now, tornado.httputil.format_timestamp(now)]
    return _dated[1]


class Beacons:
    """What every beacon needs: the application, and the arguments ``TrackHandler`` gets from
    the route table (for the answers it gives instead)."""

    def __init__(self, app: tornado.web.Application, handler_kwargs: dict[str, Any]):
        self.app = app
        self.services = app.services
        self.handler_kwargs = handler_kwargs
        self.tasks: set[asyncio.Task] = set()

    def request(self, conn: Any, server_conn: Any) -> Beacon:
        return Beacon(self, conn, server_conn)


class Beacon(tornado.httputil.HTTPMessageDelegate):
    """One beacon: its headers and body collected, then answered (see the module)."""

    def __init__(self, beacons: Beacons, conn: Any, server_conn: Any):
        self.beacons, self.conn, self.server_conn = beacons, conn, server_conn
        self.start_line: Any = None
        self.headers: Any = None
        self.chunks: list[bytes] = []

    def headers_received(self, start_line: Any, headers: Any) -> None:
        self.start_line, self.headers = start_line, headers

    def data_received(self, chunk: bytes) -> None:
        self.chunks.append(chunk)

    def finish(self) -> None:
        # Tornado reads this connection's next request only after the answer is finished.
        task = asyncio.ensure_future(self._answer())
        self.beacons.tasks.add(task)  # (held until done: the loop keeps only a weak reference)
        task.add_done_callback(self.beacons.tasks.discard)

    def on_connection_close(self) -> None:
        self.chunks = []

    async def _answer(self) -> None:
        beacons = self.beacons
        services = beacons.services
        request = tornado.httputil.HTTPServerRequest(
            connection=self.conn,
            server_connection=self.server_conn,
            start_line=self.start_line,
            headers=self.headers,
            body=b"".join(self.chunks),
        )
        try:
            origin = request.headers.get("Origin")
            allowed = visitor_origin_allowed(request, services)
            if not allowed:
                raise origin_refused()
            ip = client_ip(request, services.config.server_trusted_proxies)
            services.check_request(ip)
            await services.track(parse_json(request.body), ip, request_user_agent(request))
        except Exception as e:
            handler = TrackHandler(beacons.app, request, **beacons.handler_kwargs)
            handler._transforms = [t(request) for t in beacons.app.transforms]
            handler._handle_request_exception(e)  # (logs what is not a client's error)
            return
        fields = [SERVER, ("Date", _date()), *PLAIN_HEADERS]
        if origin:
            fields.append(("Access-Control-Allow-Origin", origin))
            fields.extend(CORS_HEADERS)
        fields.append(VARY)
        headers = tornado.httputil.HTTPHeaders()
        for name, value in fields:
            headers.add(name, value)
        self.conn.write_headers(NO_CONTENT, headers)
        self.conn.finish()
        if tornado.log.access_log.isEnabledFor(logging.INFO):
            summary = f"{request.method} {request.uri} ({request.remote_ip})"
            ms = 1000.0 * request.request_time()
            tornado.log.access_log.info("%d %s %.2fms", 204, summary, ms)
