"""The JSON API's handlers, one per route; each parses, calls the domain and replies."""

from __future__ import annotations

import asyncio
import json
import logging
import os
from typing import Any

import rcssmin
import rjsmin
import tornado.template
import tornado.web

from ..config import ASSETS_DIR
from ..protocol import (
    ACTIVE,
    CLOSED,
    MISSED,
    PENDING,
    RULE_CONDITIONS,
    WAITING,
    ApiError,
    Party,
    console_protocol,
)
from ..streams import PollConn
from .base import SESSION_COOKIE, BaseHandler, path_id

log = logging.getLogger("cutelive")


# -- public -------------------------------------------------------------------------------------


class MetricsHandler(BaseHandler):
    """GET /api/metrics: load figures for monitoring and bench/; loopback clients only."""

    def get(self) -> None:
        self.reply(self.services.metrics(reset=self.get_query_argument("reset", "") == "1"))


class StatusHandler(BaseHandler):
    """GET /api/status: is any operator online."""

    def get(self) -> None:
        self.reply(self.services.departments.status(self.get_query_argument("department", None)))


class WidgetConfigHandler(BaseHandler):
    """GET /api/widget/config: the public widget settings, with defaults and limits."""

    def get(self) -> None:
        self.reply(self.services.site.widget_config())


class ButtonHandler(BaseHandler):
    """GET /api/button: the online or offline button image, for embeds without JavaScript."""

    def get(self) -> None:
        s = self.services
        state = "online" if s.presence.any_online() else "offline"
        custom = s.site.appearance.get(f"image_{state}")
        self.set_header("Cache-Control", "no-store")
        if custom:
            self.redirect(custom, status=302)
            return
        with open(os.path.join(ASSETS_DIR, "img", f"{state}.svg"), "rb") as f:
            data = f.read()
        self.set_header("Content-Type", "image/svg+xml")
        self.finish(data)


class NotFoundHandler(BaseHandler):
    """Anything else: a JSON 404."""

    async def prepare(self) -> None:
        raise ApiError("not_found", f"no such path {self.request.path[:200]}", 404)


# -- long-poll ----------------------------------------------------------------------------------


class PollHandler(BaseHandler):
    """POST /api/visitor/poll and /api/console/poll: the long-poll transport (PROTOCOL §3.2)."""

    _conn: PollConn | None = None

    async def post(self) -> None:
        s = self.services
        streams = s.streams
        party = self.party
        body = self.body_json()
        if not isinstance(body, dict):
            raise ApiError("bad_json", "expected a JSON object")
        args = s.validate.request(f"{party.role}_poll", body)
        cursors = args.get("cursors", {})
        conn = streams.poll_conns.get(args.get("conn") or "")
        if conn is not None and not _same_party(conn.party, party):
            conn = None
        if conn is None:
            conn = await streams.new_poll_conn(party)
            pairs = await streams.welcome(party, cursors, stream=conn)
            # Only what was really sent counts as delivered (never a chat that got a reset).
            for _, ev in pairs:
                if ev and "seq" in ev:
                    conn.delivered[ev["chat_id"]] = ev["seq"]
            sent = {**cursors, **conn.delivered}
            self._send(conn, [t for t, _ in pairs] + await streams.poll_collect(conn, sent))
            return
        if conn.waiter is not None and not conn.waiter.done():
            conn.waiter.set_result(None)  # a newer poll replaces a held one
        conn.last_poll = s.clock.monotonic()
        events = await streams.poll_collect(conn, cursors)
        if not events and not conn.closed:
            # Held on the bare future, with a timer to end it: a wake-up resumes this at the
            # next turn of the loop (wait_for and shield would add two more turns to every
            # delivery, each as long as everything else the loop has to do then).
            loop = asyncio.get_running_loop()
            waiter = conn.waiter = loop.create_future()
            self._conn = conn
            timer = loop.call_later(s.config.realtime_poll_timeout, _time_up, waiter)
            try:
                await waiter
            finally:
                timer.cancel()
            superseded = conn.waiter is not waiter
            if not superseded:
                conn.waiter = None
            conn.last_poll = s.clock.monotonic()
            if self.request.connection.stream.closed():
                return
            # A newer poll of the same conn took over: it collects the events, this one ends.
            events = [] if superseded else await streams.poll_collect(conn, cursors)
        self._send(conn, events)

    def _send(self, conn: PollConn, events: list[str]) -> None:
        self.set_status(200)
        # The stored events are JSON already: splice them in rather than decode and re-encode.
        self.finish(f'{{"conn": {json.dumps(conn.id)}, "events": [{", ".join(events)}]}}')

    def on_connection_close(self) -> None:
        if self._conn is not None:
            self._conn.wake()


def _time_up(waiter: asyncio.Future) -> None:
    if not waiter.done():
        waiter.set_result(None)


def _same_party(a: Party, b: Party) -> bool:
    return (a.visitor_id, a.operator_id, a.session_id) == (
        b.visitor_id,
        b.operator_id,
        b.session_id,
    )


class SendHandler(BaseHandler):
    """POST /api/visitor/send and /api/console/send: one command, answered by its ack or error."""

    async def post(self) -> None:
        self.reply(await self.services.commands.run(self.party, None, self.body_json()))


# -- visitors -----------------------------------------------------------------------------------


class VisitorTokenHandler(BaseHandler):
    """POST /api/visitor/token: a new anonymous visitor."""

    async def post(self) -> None:
        self.body_json(allow_empty=True)
        token, visitor_id = await self.services.accounts.new_visitor(self.ip, self.user_agent)
        self.reply({"token": token, "visitor_id": visitor_id}, 201)


class TrackHandler(BaseHandler):
    """POST /api/visitor/track: a page-view beacon (token in the body: no preflight needed)."""

    async def post(self) -> None:
        await self.services.track(self.body_json(), self.ip, self.user_agent)
        self.set_status(204)
        self.finish()


class VisitorChatsHandler(BaseHandler):
    """GET /api/visitor/chats: the visitor's chats, newest first."""

    async def get(self) -> None:
        self.reply({"chats": await self.services.transcripts.visitor_list(self.party)})


class ChatHandler(BaseHandler):
    """GET /api/visitor/chats/ID and /api/console/chats/ID: one chat with its transcript."""

    async def get(self, chat_id: str) -> None:
        self.reply(await self.services.transcripts.transcript(self.party, path_id(chat_id)))


# -- console: session ---------------------------------------------------------------------------


class SessionHandler(BaseHandler):
    """GET /api/console/session: who am I, the CSRF token, whether setup is needed, and the
    defaults and limits the console needs."""

    async def get(self) -> None:
        s = self.services
        op = None
        if self.party is not None:
            o = await s.storage.accounts.operator(self.party.operator_id)
            op = s.departments.operator_view(o)
        self.reply(
            {
                "operator": op,
                "xsrf": self.xsrf_token.decode(),
                "public_url": s.site.base_url,
                "setup_required": await s.accounts.setup_required(),
                "protocol": console_protocol(s.config),
            }
        )


class SetupHandler(BaseHandler):
    """POST /api/console/setup: create the first administrator with the logged setup token."""

    async def post(self) -> None:
        s = self.services
        args = s.validate.request("setup", self.body_json())
        op = await s.accounts.setup_first_admin(**args)
        self.set_session_cookie(await s.accounts.new_session(op, self.ip, self.user_agent))
        log.info("first administrator %r created", op.username)
        self.reply({"operator": s.departments.operator_view(op)}, 201)


class LoginHandler(BaseHandler):
    """POST /api/console/login: start a session."""

    async def post(self) -> None:
        s = self.services
        args = s.validate.request("login", self.body_json())
        token, op = await s.accounts.login(
            args["username"], args["password"], self.ip, self.user_agent
        )
        self.set_session_cookie(token)
        self.reply({"operator": s.departments.operator_view(op)})


class LogoutHandler(BaseHandler):
    """POST /api/console/logout: end this session and close its sockets."""

    async def post(self) -> None:
        party = self.party
        await self.services.accounts.end_sessions(
            party.operator_id, "logout", only_session_id=party.session_id
        )
        self.clear_cookie(SESSION_COOKIE, path="/")
        self.reply({})


class PasswordHandler(BaseHandler):
    """POST /api/console/password: change your own password."""

    async def post(self) -> None:
        await self.services.accounts.change_own_password(self.party, self.body_json())
        self.reply({})


# -- console: chats, visitors, inbox ------------------------------------------------------------


class ConsoleChatsHandler(BaseHandler):
    """GET /api/console/chats: chats by status, newest first."""

    async def get(self) -> None:
        status = self.get_query_argument("status", "")
        if status not in ("", WAITING, ACTIVE, PENDING, CLOSED, MISSED, "open", "mine"):
            raise ApiError(
                "invalid_field",
                "status must be waiting, active, pending, closed, missed, open or mine",
                field="status",
            )
        limit = self.get_query_argument("limit", "50")
        before = self.get_query_argument("before", "0")
        if not (limit.isascii() and limit.isdigit() and 1 <= int(limit) <= 200):
            raise ApiError("invalid_field", "limit must be 1 to 200", field="limit")
        if not (before.isascii() and before.isdigit() and len(before) < 18):
            raise ApiError("invalid_field", "before must be a chat id", field="before")
        chats = await self.services.transcripts.console_list(
            self.party, status, int(limit), int(before)
        )
        self.reply({"chats": chats})


class ConsoleVisitorsHandler(BaseHandler):
    """GET /api/console/visitors: everyone on the site now (the monitor's snapshot)."""

    def get(self) -> None:
        self.reply({"visitors": self.services.monitor.snapshot_event()["visitors"]})


class ConsoleVisitorHandler(BaseHandler):
    """GET /api/console/visitors/ID: a visitor's visits, page trails and chats."""

    async def get(self, visitor_id: str) -> None:
        self.reply(await self.services.monitor.detail(path_id(visitor_id)))


class DirectHandler(BaseHandler):
    """GET /api/console/direct/ID?after=SEQ: my direct messages with an operator after a seq."""

    async def get(self, operator_id: str) -> None:
        after = self.get_query_argument("after", "0")
        if not (after.isascii() and after.isdigit() and len(after) < 18):
            raise ApiError("invalid_field", "after must be a seq ≥ 0", field="after")
        direct = self.services.direct
        self.reply(await direct.history(self.party, path_id(operator_id), int(after)))


class InviteRulesHandler(BaseHandler):
    """GET/POST /api/console/invite-rules: automatic invitation rules."""

    async def get(self) -> None:
        rules = await self.services.invitations.rules()
        self.reply(
            {
                "rules": [r.public() for r in rules],
                "conditions": list(RULE_CONDITIONS),
            }
        )

    async def post(self) -> None:
        rule = await self.services.invitations.save_rule(self.body_json())
        self.reply({"rule": rule.public()}, 201)


class InviteRuleHandler(BaseHandler):
    """PATCH/DELETE /api/console/invite-rules/ID: change or remove a rule."""

    async def patch(self, rule_id: str) -> None:
        rule = await self.services.invitations.save_rule(self.body_json(), path_id(rule_id))
        self.reply({"rule": rule.public()})

    async def delete(self, rule_id: str) -> None:
        await self.services.invitations.delete_rule(path_id(rule_id))
        self.reply({})


class OfflineMessagesHandler(BaseHandler):
    """GET /api/console/offline-messages: the inbox, newest first, with each message's mail."""

    async def get(self) -> None:
        s = self.services
        self.reply({"messages": await s.offline.listing(), "mail_enabled": s.outbox.enabled})


class OfflineMessageHandler(BaseHandler):
    """PATCH /api/console/offline-messages/ID: mark read or unread."""

    async def patch(self, msg_id: str) -> None:
        args = self.services.validate.request("offline_message_read", self.body_json())
        msg = await self.services.offline.mark(path_id(msg_id), args["read"])
        self.reply(msg.public())


class OfflineMessageReplyHandler(BaseHandler):
    """POST /api/console/offline-messages/ID/reply: answer the visitor by e-mail."""

    async def post(self, msg_id: str) -> None:
        s = self.services
        args = s.validate.request("offline_message_reply", self.body_json())
        self.reply(await s.offline.reply(self.party, path_id(msg_id), args["text"]))


class MailHandler(BaseHandler):
    """GET /api/console/mail: the outbox, newest first."""

    async def get(self) -> None:
        s = self.services
        mail = await s.outbox.recent()
        self.reply({"mail": [m.public() for m in mail], "mail_enabled": s.outbox.enabled})


# -- console: administration --------------------------------------------------------------------


class SettingsHandler(BaseHandler):
    """GET/PATCH /api/console/settings: widget appearance and allowed origins."""

    def get(self) -> None:
        self.reply(self.services.site.settings_view())

    async def patch(self) -> None:
        self.reply(await self.services.site.update(self.body_json()))


class OperatorsHandler(BaseHandler):
    """GET/POST /api/console/operators: list operators; administrators add one."""

    async def get(self) -> None:
        s = self.services
        ops = await s.storage.accounts.operators()
        self.reply({"operators": [s.departments.operator_view(o) for o in ops]})

    async def post(self) -> None:
        s = self.services
        args = s.validate.request("new_operator", self.body_json())
        op = await s.accounts.create_operator(**args)
        self.reply({"operator": s.departments.operator_view(op)}, 201)


class OperatorHandler(BaseHandler):
    """PATCH /api/console/operators/ID: edit, disable, reset the password (administrators)."""

    async def patch(self, operator_id: str) -> None:
        s = self.services
        op = await s.accounts.update_operator(self.party, path_id(operator_id), self.body_json())
        self.reply({"operator": s.departments.operator_view(op)})


class DepartmentsHandler(BaseHandler):
    """GET/POST /api/console/departments: list departments; administrators add one."""

    def get(self) -> None:
        self.reply({"departments": self.services.departments.list()})

    async def post(self) -> None:
        department = await self.services.departments.create(self.body_json())
        self.reply({"department": department}, 201)


class DepartmentHandler(BaseHandler):
    """PATCH/DELETE /api/console/departments/ID (administrators)."""

    async def patch(self, department_id: str) -> None:
        d = await self.services.departments.update(path_id(department_id), self.body_json())
        self.reply({"department": d})

    async def delete(self, department_id: str) -> None:
        await self.services.departments.delete(path_id(department_id))
        self.reply({})


class CannedRepliesHandler(BaseHandler):
    """GET/POST /api/console/canned: the canned replies this operator may use; add one."""

    async def get(self) -> None:
        self.reply({"replies": await self.services.canned.listing(self.party)})

    async def post(self) -> None:
        reply = await self.services.canned.create(self.party, self.body_json())
        self.reply({"reply": reply}, 201)


class CannedReplyHandler(BaseHandler):
    """PATCH/DELETE /api/console/canned/ID: an operator's own reply, or a shared one
    (administrators)."""

    async def patch(self, reply_id: str) -> None:
        reply = await self.services.canned.update(self.party, path_id(reply_id), self.body_json())
        self.reply({"reply": reply})

    async def delete(self, reply_id: str) -> None:
        await self.services.canned.delete(self.party, path_id(reply_id))
        self.reply({})


# -- browser files ------------------------------------------------------------------------------


class StaticHandler(tornado.web.StaticFileHandler):
    """A file from ``assets/``. The widget's scripts and stylesheet go out minified (comments
    and spaces removed, names kept), so that every page of a customer's site carries less; the
    sources stay readable and are minified once per change of the file."""

    _minified: dict[str, tuple[float, bytes]] = {}
    WIDGET = os.path.join(ASSETS_DIR, "widget") + os.sep

    @classmethod
    def minified(cls, abspath: str) -> bytes | None:
        """The widget file's served bytes, or None for a file sent as it is."""
        if not abspath.startswith(cls.WIDGET) or not abspath.endswith((".js", ".css")):
            return None
        mtime = os.stat(abspath).st_mtime
        cached = cls._minified.get(abspath)
        if cached is None or cached[0] != mtime:
            with open(abspath, encoding="utf-8") as f:
                text = f.read()
            small = rjsmin.jsmin(text) if abspath.endswith(".js") else rcssmin.cssmin(text)
            cached = cls._minified[abspath] = (mtime, small.encode("utf-8"))
        return cached[1]

    @classmethod
    def get_content(cls, abspath: str, start: int | None = None, end: int | None = None) -> Any:
        small = cls.minified(abspath)
        if small is None:
            return super().get_content(abspath, start, end)
        return small[start:end]

    def get_content_size(self) -> int:
        small = self.minified(self.absolute_path)
        return super().get_content_size() if small is None else len(small)


class AssetHandler(StaticHandler):
    """Static browser files from ``assets/``; widget files may be loaded by any site."""

    def parse_url_path(self, url_path: str) -> str:
        if "\x00" in url_path:
            raise tornado.web.HTTPError(404)  # no such file (os.path would raise on it)
        return super().parse_url_path(url_path)

    def set_extra_headers(self, path: str) -> None:
        self.set_header("X-Content-Type-Options", "nosniff")
        if path.startswith("widget") or path.startswith("img"):
            self.set_header("Access-Control-Allow-Origin", "*")
        self.set_header("Cache-Control", "no-cache")


class FileHandler(StaticHandler):
    """One fixed file (``/widget.js``, ``/console/``, ``/chat``)."""

    def initialize(self, path: str, filename: str) -> None:
        super().initialize(path)
        self.filename = filename

    async def get(self, *args: Any, include_body: bool = True) -> None:
        await super().get(self.filename, include_body=include_body)

    def set_extra_headers(self, path: str) -> None:
        self.set_header("X-Content-Type-Options", "nosniff")
        self.set_header("Cache-Control", "no-cache")
        if path.endswith(".js"):
            self.set_header("Access-Control-Allow-Origin", "*")


class PageHandler(FileHandler):
    """One of our HTML pages (the console, the chat window) with its security headers: what
    it may load, who may frame it, and no referrer to the links people send in a chat."""

    #: What the pages load: our own scripts and API, styles set inline by our scripts, and
    #: images from anywhere (an administrator's button images, links' favicons are not used).
    POLICY = (
        "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
        "img-src 'self' data: http: https:; connect-src 'self'; object-src 'none'; "
        "base-uri 'none'; form-action 'self'"
    )

    def initialize(self, path: str, filename: str, services: Any, framing: str) -> None:
        super().initialize(path, filename)
        self.services = services
        self.framing = framing

    def set_extra_headers(self, path: str) -> None:
        super().set_extra_headers(path)
        if self.framing == "allowed_origins":
            # The chat window may be framed by the sites allowed to embed the widget (any site
            # while none are listed, as for the widget itself).
            origins = self.services.site.allowed_origins()
            ancestors = " ".join(["'self'", *origins]) if origins else "*"
            self.set_header("Referrer-Policy", "no-referrer")
        else:
            ancestors = "'none'"
            self.set_header("X-Frame-Options", "DENY")
            self.set_header("Referrer-Policy", "same-origin")
        self.set_header("Content-Security-Policy", f"{self.POLICY}; frame-ancestors {ancestors}")


class DemoHandler(AssetHandler):
    """The demo shop at ``/demo/``: its pages share one layout (``demo/pages/layout.html``);
    anything else is a file (the stylesheet, the hostile-CSS page)."""

    #: Page -> title; the navigation lists them in this order.
    PAGES = {"index.html": "Home", "pricing.html": "Pricing", "about.html": "About"}
    NAV = [*PAGES.items(), ("app.html", "Shop app"), ("hostile.html", "Hostile CSS")]
    _templates: tornado.template.Loader | None = None

    async def get(self, path: str, include_body: bool = True) -> None:
        page = path or "index.html"
        if page.startswith("pages/"):
            raise tornado.web.HTTPError(404)
        titles = {**self.PAGES, "app.html": "Shop"}
        if page not in titles:
            await super().get(path, include_body=include_body)
            return
        if DemoHandler._templates is None:
            DemoHandler._templates = tornado.template.Loader(os.path.join(self.root, "pages"))
        html = self._templates.load(page).generate(page=page, title=titles[page], nav=self.NAV)
        self.set_header("Content-Type", "text/html; charset=utf-8")
        self.set_extra_headers(page)
        self.absolute_path = None  # a rendered page, not a file: tagged by its content
        self.finish(html if include_body else b"")

    def compute_etag(self) -> str | None:
        if getattr(self, "absolute_path", None) is None:
            return tornado.web.RequestHandler.compute_etag(self)
        return super().compute_etag()
