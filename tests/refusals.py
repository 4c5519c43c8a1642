"""What the refusal tests share: the documented JSON error over HTTP and WebSocket, raw
frames and bodies, the console's route table as the tests walk it, and everything a visitor or
an administrator can read (to show that a refusal changed nothing). ``checked`` wraps the
server factory so that no server logged a traceback or answered 500."""

from __future__ import annotations

import json
import re
import uuid

import pytest
import requests
import websocket
from common import TIMEOUT, wait_for
from conftest import WS
from tornado.web import RequestHandler

from livesupport.web.app import ROUTES, Route


def checked(make_server):
    """The conftest factory, plus: at teardown no server logged a traceback or a 500."""
    """The conftest factory, plus: at teardown no server logged a traceback or a 500."""
    started = []

    def make(config=None, subdir=None, database=None):
        s = make_server(config, subdir, database)
        started.append(s)
        return s

    yield make
    for s in started:
        was_running = s.proc is not None
        s.stop()
        if was_running:
            # The log is read by a thread: wait for the last line before judging it.
            wait_for(
                lambda s=s: any("cutelive: stopped" in line for line in s.log_lines),
                what="the server's last log line",
            )
        log = "".join(s.log_lines)
        assert "Traceback" not in log, log
        assert "Uncaught exception" not in log, log
        assert not re.search(r"tornado\.access: 5\d\d ", log), log


#: The console's routes, from the live route table: ``(pattern, route)``.
CONSOLE_ROUTES = [(r.pattern, r) for r in ROUTES if r.pattern.startswith("/api/console/")]
#: Console GET routes whose answers are live, not stored (left out of console_state).
LIVE_ROUTES = {"/api/console/session", "/api/console/ws", "/api/console/visitors"}
#: Methods that change state and so must carry the CSRF token.
UNSAFE = ("POST", "PATCH", "PUT", "DELETE")


def handler_methods(route: Route) -> dict[str, str]:
    """``{HTTP method: authentication level}`` for the methods a route's handler serves."""
    return {
        m: route.auth.get(m, "operator") if isinstance(route.auth, dict) else route.auth
        for m in ("GET", "POST", "PATCH", "PUT", "DELETE")
        if getattr(route.handler, m.lower()) is not getattr(RequestHandler, m.lower())
    }


def route_path(pattern: str) -> str:
    return pattern.replace("([^/]+)", "2")


def assert_error(r: requests.Response, status: int, code: str, **fields) -> dict:
    """An HTTP answer is the documented JSON error with this status, code and fields."""
    assert r.status_code == status, (r.status_code, r.text)
    assert r.headers["Content-Type"].startswith("application/json"), r.headers
    body = r.json()
    assert body["type"] == "error" and body["error"] == code, body
    assert isinstance(body["message"], str) and body["message"], body
    for k, v in fields.items():
        assert body.get(k) == v, (k, body)
    return body


def assert_ws_error(ev: dict, code: str, **fields) -> dict:
    assert ev["type"] == "error" and ev["error"] == code, ev
    assert isinstance(ev["message"], str) and ev["message"], ev
    for k, v in fields.items():
        assert ev.get(k) == v, (k, ev)
    return ev


def alive(ws: WS) -> None:
    """The WebSocket is still open and answering."""
    assert ws.request({"type": "ping"})["type"] == "pong"


def ws_raw(ws: WS, frame) -> dict:
    """Send one frame (text or an object, without adding an id); return the reply to it."""
    n = len(ws.events)
    ws.send(frame)
    return ws.wait(
        lambda e: e["type"] in ("error", "ack", "pong"),
        start=n,
        what=f"reply to {str(frame)[:60]!r}",
    )


def refuse_both(client, cmd: dict, status: int, code: str, **fields) -> None:
    """``cmd`` is refused the same way over HTTP ``.../send`` and over the WebSocket."""
    assert_error(client.send(cmd), status, code, **fields)
    ev = client.ws.request(cmd)
    assert_ws_error(ev, code, **fields)
    assert ev["ref"] is not None  # the error answers this request
    alive(client.ws)


def raw_post(session: requests.Session, url: str, data: bytes, **headers) -> requests.Response:
    return session.post(
        url, data=data, timeout=TIMEOUT, headers={"Content-Type": "application/json", **headers}
    )


def refused_upgrade(url: str, **kwargs) -> tuple[int, dict]:
    """A WebSocket handshake that the server refuses: its HTTP status and JSON body."""
    with pytest.raises(websocket.WebSocketBadStatusException) as info:
        websocket.create_connection(url, timeout=TIMEOUT, **kwargs).close()
    e = info.value
    assert e.resp_headers["content-type"].startswith("application/json"), e.resp_headers
    return e.status_code, json.loads(e.resp_body)


def visitor_state(server, v) -> list:
    """Everything a visitor has: its chats and their whole transcripts."""
    chats = v.http.get(server.url + "/api/visitor/chats", timeout=TIMEOUT).json()["chats"]
    out = []
    for c in chats:
        t = v.http.get(server.url + f"/api/visitor/chats/{c['id']}", timeout=TIMEOUT).json()
        out.append((c, t["events"]))
    return out


def console_state(admin) -> dict:
    """Everything an administrator can read: every console list (chats with their transcripts,
    offline messages, operators, settings, rules...), from the route table itself. Live data
    (presence, the visitors on the site now) is left out: it is not stored."""
    out = {}
    for pattern, route in CONSOLE_ROUTES:
        if "(" in pattern or pattern in LIVE_ROUTES or "GET" not in handler_methods(route):
            continue
        r = admin.get(pattern + ("?limit=200" if pattern == "/api/console/chats" else ""))
        assert r.status_code == 200, (pattern, r.text)
        out[pattern] = r.json()
    for o in out["/api/console/operators"]["operators"]:
        o.pop("status")
    for d in out["/api/console/departments"]["departments"]:
        d.pop("online")  # live, like an operator's status
    out["events"] = {
        c["id"]: admin.get(f"/api/console/chats/{c['id']}").json()["events"]
        for c in out["/api/console/chats"]["chats"]
    }
    out["offline"] = out["/api/console/offline-messages"]["messages"]
    out["chats"] = out["/api/console/chats"]["chats"]
    out["operators"] = out["/api/console/operators"]["operators"]
    return out


def cid() -> str:
    return uuid.uuid4().hex


def started_visitor(server, text="Hello, I need help"):
    v = server.visitor()
    v.connect()
    chat_id = v.start_chat(text)["chat"]["id"]
    return v, chat_id


def operator_with_chat(server):
    """bob online on a WebSocket, with an accepted chat from a visitor."""
    bob = server.console("bob")
    bob.connect()
    v, chat_id = started_visitor(server)
    assert bob.ws.request({"type": "accept", "chat_id": chat_id})["type"] == "ack"
    v.ws.wait(lambda e: e["type"] == "chat_accepted")
    return bob, v, chat_id
