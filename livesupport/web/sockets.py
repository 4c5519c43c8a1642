"""The WebSocket transport (docs/PROTOCOL.md §3.1): one socket per stream, hello first."""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Awaitable
from typing import Any

import tornado.ioloop
import tornado.iostream
import tornado.web
import tornado.websocket

from ..protocol import (
    CLOSE_BAD_TOKEN,
    CLOSE_NO_HELLO,
    CLOSE_TOO_SLOW,
    COMMANDS,
    HELLO_TIMEOUT,
    ApiError,
    Party,
    encode,
    request_id_ok,
)
from ..services import Services
from ..streams import not_replayed
from .base import (
    HTTP_CODES,
    SESSION_COOKIE,
    client_ip,
    csrf_failed,
    handler_user_agent,
    is_own_origin,
    origin_refused,
    parse_json,
    visitor_origin_allowed,
)

log = logging.getLogger("cutelive")


class Utf8CheckingProtocol(tornado.websocket.WebSocketProtocol13):
    """Closes with 1007 (not a silent abort) on a text frame that is not UTF-8."""

    _too_big = False
    _draining = False

    def _handle_message(self, opcode: int, data: bytes):
        if opcode == 0x1 and not self._frame_compressed:
            try:
                data.decode("utf-8")
            except UnicodeDecodeError:
                self.close(1007, "text frame is not valid UTF-8")
                return None
        return super()._handle_message(opcode, data)

    def send_text(self, text: str) -> bool:
        """Queue one text frame; False once the stream is closed.

        ``write_message`` makes a task of every write to turn the stream's error into its own,
        a step of the loop for each frame (hundreds a second from heartbeats alone) and a
        callback to retrieve the outcome. The stream's future needs neither: Tornado retrieves
        its error itself when the stream closes."""
        data = text.encode("utf-8")
        self._message_bytes_out += len(data)
        flags = 0
        if self._compressor:
            data = self._compressor.compress(data)
            flags |= self.RSV1
        try:
            self._write_frame(True, 0x1, data, flags=flags)
        except tornado.iostream.StreamClosedError:
            return False
        return True

    def close(self, code: int | None = None, reason: str | None = None) -> None:
        if code == 1009 and not self.server_terminated:
            self._too_big = True
        super().close(code, reason)
        if reason == "ping timed out" and not self.client_terminated:
            # Tornado's ping timeout: the peer answered nothing for a whole heartbeat, so it
            # will not answer the close frame either. Free the connection now rather than
            # after Tornado's 5 s close handshake (PROTOCOL §9: dropped within a heartbeat).
            self._abort()

    def _abort(self) -> None:
        """After a 1009 close, drain instead of closing at once.

        Tornado aborts right after sending the 1009 close frame, with the rest of the big
        frame unread; closing a socket with unread input resets the connection, and the reset
        can destroy the close frame before the client reads it. So: FIN after the frame, then
        read and drop what the client still sends (at most 1 MiB, 5 s) before closing.
        """
        stream = self.stream
        if self._draining:
            self.client_terminated = self.server_terminated = True
            return  # drain_then_close() closes the stream
        if not self._too_big or stream is None or stream.closed():
            super()._abort()
            return
        self._draining = True
        self.client_terminated = self.server_terminated = True
        try:
            stream.socket.shutdown(socket.SHUT_WR)
        except OSError:
            pass

        async def drain() -> None:
            left = 1024 * 1024
            while left > 0:
                left -= len(await stream.read_bytes(65536, partial=True))

        async def drain_then_close() -> None:
            try:
                await asyncio.wait_for(drain(), 5)
            except (tornado.iostream.StreamClosedError, TimeoutError):
                pass
            stream.close()

        asyncio.ensure_future(drain_then_close())


class Connection:
    """What a StreamSocket knows of its connection beyond Tornado's handler.

    One slotted object rather than attributes of the handler: CPython shares the keys of an
    instance's dictionary only up to 27 of them, and Tornado's handler sets 20, so a handler
    with a few more carries a dictionary of its own, about 1.3 KB larger, for each socket held
    (memory per idle visitor, bench/README.md).
    """

    __slots__ = (
        "party",
        "ip",
        "counted",
        "hello_timer",
        "hello_done",
        "held",
        "welcome_end",
        "closed_during_hello",
    )

    def __init__(self) -> None:
        self.party: Party | None = None
        self.ip: str | None = None
        #: Counted in ``streams.sockets_per_ip``.
        self.counted = False
        self.hello_timer: Any = None
        self.hello_done = False
        #: Events held back while the hello is answered (what attaching publishes comes after
        #: the welcome); None when delivering directly.
        self.held: list | None = None
        #: Where the welcome, its replay and what came meanwhile end in the bytes written to the
        #: connection: what counts against ``[limits] max_outbound`` comes after (a reconnect's
        #: replay may be larger than the cap, and must not close the connection again and again).
        self.welcome_end = 0
        #: Closed while the hello was answered: the hello detaches when it is done.
        self.closed_during_hello = False


class StreamSocket(tornado.websocket.WebSocketHandler):
    """A party's WebSocket; subclasses set the role and how the party proves who it is."""

    role = "visitor"

    def initialize(self, services: Services, auth: str = "visitor") -> None:
        self.services = services
        self.auth = auth
        self.conn = Connection()

    @property
    def party(self) -> Party | None:
        return self.conn.party

    @party.setter
    def party(self, party: Party | None) -> None:
        self.conn.party = party

    def _detach_stream(self) -> Any:
        # Tornado's version also swaps seven RequestHandler methods (write, finish, ...) for stubs
        # that raise, set on the handler itself: with them a handler holds more attributes than
        # CPython shares the keys of, and each held socket's dictionary grew by 1.3 KB. After
        # detach(), which marks the request finished, write() and finish() raise anyway.
        return self.detach()

    @property
    def ip(self) -> str:
        if self.conn.ip is None:
            self.conn.ip = client_ip(self.request, self.services.config.server_trusted_proxies)
        return self.conn.ip

    user_agent = property(handler_user_agent)

    def get_websocket_protocol(self):
        if self.request.headers.get("Sec-WebSocket-Version") != "13":
            return None
        params = tornado.websocket._WebSocketParams(
            ping_interval=self.ping_interval,
            ping_timeout=self.ping_timeout,
            max_message_size=self.max_message_size,
            compression_options=self.get_compression_options(),
        )
        return Utf8CheckingProtocol(self, False, params)

    def _refuse(self, err: ApiError) -> None:
        self.set_status(err.status)
        self.set_header("Content-Type", "application/json; charset=utf-8")
        self.set_header("X-Content-Type-Options", "nosniff")
        self.finish(encode(err.event()))

    def check_xsrf_cookie(self) -> None:
        # Only GET (the upgrade) is served; other methods answer 405 below, after the console
        # socket's CSRF check like every console route.
        if self.role == "operator":
            try:
                tornado.web.RequestHandler.check_xsrf_cookie(self)
            except tornado.web.HTTPError:
                raise csrf_failed() from None

    def log_exception(self, typ, value, tb) -> None:
        if not isinstance(value, ApiError):
            super().log_exception(typ, value, tb)

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        exc = kwargs.get("exc_info", (None, None, None))[1]
        if not isinstance(exc, ApiError):
            code = HTTP_CODES.get(status_code, "server_error")
            exc = ApiError(code, self._reason, status_code)
        self._refuse(exc)

    def get(self, *args: Any, **kwargs: Any):
        # Not a coroutine for visitors: it returns WebSocketHandler.get's, which Tornado awaits
        # for the socket's whole life, so a held visitor socket carries no coroutine frame of
        # ours. The console's socket awaits its session first.
        try:
            self.services.check_request(self.ip)
            if self.role == "visitor":
                self._check_upgrade()
        except ApiError as e:
            return self._refuse(e)
        if self.role == "visitor":
            return super().get(*args, **kwargs)
        return self._get_authenticated(*args, **kwargs)

    async def _get_authenticated(self, *args: Any, **kwargs: Any) -> None:
        try:
            await self.authenticate()
            self._check_upgrade()
        except ApiError as e:
            return self._refuse(e)
        await super().get(*args, **kwargs)

    def _check_upgrade(self) -> None:
        """Before the upgrade: the origin, a WebSocket request at all, the per-address cap."""
        self.check_party_origin()
        if self.request.headers.get("Upgrade", "").lower() != "websocket":
            raise ApiError(
                "bad_request", "this URL is a WebSocket: connect with Upgrade: websocket"
            )
        limit = self.services.config.limits_sockets_per_ip
        if self.services.streams.sockets_per_ip[self.ip] >= limit:
            raise ApiError(
                "rate_limited",
                f"too many open WebSockets from this address; limit sockets_per_ip is {limit}",
                429,
                limit="sockets_per_ip",
            )

    def check_party_origin(self) -> None:
        if not visitor_origin_allowed(self.request, self.services):
            raise origin_refused()

    async def authenticate(self) -> None:
        """Visitors prove who they are in the hello; operators by the session cookie."""

    def check_origin(self, origin: str) -> bool:
        return True  # checked in get() with a JSON answer

    def open(self, *args: Any) -> None:
        s = self.services
        if s.fd_guard.full():
            self.close(1013, "server full; try again later")
            return
        s.streams.sockets_per_ip[self.ip] += 1
        self.conn.counted = True
        self.set_nodelay(True)
        loop = tornado.ioloop.IOLoop.current()
        self.conn.hello_timer = loop.call_later(HELLO_TIMEOUT, self._no_hello)

    def _no_hello(self) -> None:
        if not self.conn.hello_done:
            self.close(CLOSE_NO_HELLO, "no hello within 10 seconds")

    def send(self, event: dict) -> None:
        self.deliver(encode(event), event)

    def deliver(self, text: str, event: dict | None) -> None:
        held = self.conn.held
        if held is not None:
            held.append((text, event))
        elif self._write(text) and self._unsent() > self.services.config.limits_max_outbound:
            self._close_too_slow()

    def _write(self, text: str) -> bool:
        """Queue one frame; False when the connection is closing."""
        protocol = self.ws_connection
        if protocol is None or protocol.is_closing():
            return False
        return protocol.send_text(text)

    def _unsent(self) -> int:
        """Bytes queued after the welcome that the peer has not taken yet.

        Tornado's IOStream counts the bytes it was given and the bytes the kernel accepted, with
        no public name for either (``_total_write_index``, ``_total_write_done_index`` in 6.x).
        """
        stream = self.ws_connection.stream
        taken = max(stream._total_write_done_index, self.conn.welcome_end)
        return stream._total_write_index - taken

    def _close_too_slow(self) -> None:
        """Close a peer that stopped reading, at the cap rather than at the heartbeat.

        A laptop asleep on a stalled network would otherwise make the server hold everything
        its chats say until the heartbeat drops it, 50 s later. The client reconnects and
        resumes by its cursors (PROTOCOL §8, §9).
        """
        log.info(
            "closing a WebSocket (%s, %s): %d bytes unsent, over max_outbound",
            self.role,
            self.ip,
            self._unsent(),
        )
        self.close(CLOSE_TOO_SLOW, "too slow: reconnect and resume by cursor")

    def on_message(self, message: str | bytes) -> Awaitable[None] | None:
        # Tornado reads the next frame only when this returns, or when the awaitable it returns
        # is done, so commands run in order. A ping is answered here and now: a coroutine for
        # each would be a task for the loop, hundreds a second from idle sockets alone.
        if isinstance(message, bytes):
            self.send(
                ApiError("bad_json", "binary frames are not accepted; send JSON text").event()
            )
            return None
        try:
            cmd = parse_json(message)
        except ApiError as e:
            self.send(e.event())
            return None
        if not self.conn.hello_done:
            return self.hello(cmd)
        s = self.services
        wait = s.rl_frames.hit(id(self))
        if wait:
            ref = cmd.get("id") if isinstance(cmd, dict) else None
            err = ApiError(
                "rate_limited",
                "too many commands on this socket; limit commands_per_socket",
                429,
                limit="commands_per_socket",
                retry_after=round(wait + 0.05, 1),
            )
            self.send(err.event(ref if request_id_ok(ref) else None))
            return None
        reply = s.commands.at_once(self.party, cmd)
        if reply is not None:
            self.send(reply)
            return None
        return self._command(cmd)

    async def _command(self, cmd: Any) -> None:
        self.send(await self.services.commands.dispatch(self.party, self, cmd))

    async def hello(self, cmd: Any) -> None:
        s = self.services
        ref = cmd.get("id") if isinstance(cmd, dict) else None
        ref = ref if request_id_ok(ref) else None
        try:
            if not isinstance(cmd, dict) or cmd.get("type") != "hello":
                raise ApiError("hello_required", "the first frame must be a 'hello' command")
            args = s.validate.fields(cmd, COMMANDS[self.role]["hello"], "'hello'")
            if self.role == "visitor":
                self.party = await s.accounts.visitor_party(args["token"], self.ip, self.user_agent)
        except ApiError as e:
            self.send(e.event(ref))
            if e.code == "bad_token":
                self.close(CLOSE_BAD_TOKEN, "unknown visitor token")
            return
        if self.ws_connection is None or self.ws_connection.is_closing():
            return
        conn = self.conn
        conn.hello_done = True
        if conn.hello_timer is not None:
            tornado.ioloop.IOLoop.current().remove_timeout(conn.hello_timer)
        conn.held = []
        cursors = args.get("cursors", {})
        try:
            await s.streams.attach(self, self.party)
            welcome = await s.streams.welcome(self.party, cursors, stream=self)
        finally:
            # A close during the hello left the detaching to this method (see on_close); after
            # a failure the connection is aborted, and on_close detaches as usual.
            held, conn.held = conn.held, None
            if conn.closed_during_hello:
                s.streams.detach(self, self.party)
        for text, _ev in welcome + not_replayed(welcome, held, cursors):
            self._write(text)
        if self.ws_connection is not None:
            conn.welcome_end = self.ws_connection.stream._total_write_index

    def on_close(self) -> None:
        conn = self.conn
        if conn.counted:
            conn.counted = False
            c = self.services.streams.sockets_per_ip
            c[self.ip] -= 1
            if c[self.ip] <= 0:
                del c[self.ip]
        if conn.hello_timer is not None:
            tornado.ioloop.IOLoop.current().remove_timeout(conn.hello_timer)
        if conn.hello_done:
            if conn.held is not None:
                conn.closed_during_hello = True  # hello() detaches when it is done
            else:
                self.services.streams.detach(self, self.party)


class VisitorSocket(StreamSocket):
    """GET /api/visitor/ws: the visitor's WebSocket."""

    role = "visitor"


class ConsoleSocket(StreamSocket):
    """GET /api/console/ws: the operator's WebSocket (own origin, session cookie)."""

    role = "operator"

    def check_party_origin(self) -> None:
        origin = self.request.headers.get("Origin")
        if not origin or not is_own_origin(self.request, self.services, origin):
            raise ApiError(
                "origin_not_allowed", "the console socket accepts only its own origin", 403
            )

    async def authenticate(self) -> None:
        self.party = await self.services.accounts.operator_party(
            self.get_cookie(SESSION_COOKIE), self.ip, self.user_agent
        )
        if self.party is None:
            raise ApiError("not_authenticated", "log in first", 401)
