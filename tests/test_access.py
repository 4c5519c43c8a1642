"""Who may call what: every console route refuses requests without a session, every
state-changing one without the CSRF token, administrators' routes refuse operators, the
console's socket refuses foreign origins and ``[widget] allowed_origins`` restricts the visitor
API; odd digits and unparseable URLs are client errors; metrics are not served through a proxy.
Each refusal is the documented JSON error and changes nothing (docs/PROTOCOL.md §7, §8)."""

from __future__ import annotations

import re

import pytest
import requests
import websocket
from conftest import TIMEOUT, WS, track
from refusals import (
    CONSOLE_ROUTES,
    UNSAFE,
    alive,
    assert_error,
    checked,
    console_state,
    handler_methods,
    refused_upgrade,
    route_path,
    started_visitor,
)


@pytest.fixture
def make_server(make_server):
    """The conftest factory; at teardown no server logged a traceback or answered 500."""
    yield from checked(make_server)


def test_the_console_route_table_is_what_this_test_walks():
    paths = {p for p, _ in CONSOLE_ROUTES}
    assert {
        "/api/console/session",
        "/api/console/send",
        "/api/console/ws",
        "/api/console/operators/([^/]+)",
    } <= paths
    assert len(CONSOLE_ROUTES) >= 14
    for _, route in CONSOLE_ROUTES:
        assert handler_methods(route), route
    by_pattern = dict(CONSOLE_ROUTES)
    assert handler_methods(by_pattern["/api/console/operators"]) == {
        "GET": "operator",
        "POST": "admin",
    }
    assert handler_methods(by_pattern["/api/console/operators/([^/]+)"])["PATCH"] == "admin"


def test_every_console_route_refuses_requests_without_a_session(server):
    admin = server.console("admin")
    before = console_state(admin)
    ran = 0
    for pattern, route in CONSOLE_ROUTES:
        if pattern == "/api/console/session":
            continue
        url = server.url + route_path(pattern)
        methods = handler_methods(route)
        # No cookie at all: every state change fails the CSRF check, GET needs a session.
        bare = requests.Session()
        for method in ("GET",) + UNSAFE:
            r = bare.request(method, url, json={}, timeout=TIMEOUT)
            where = f"{method} {pattern} without a session"
            assert r.status_code not in (200, 201, 204) and r.status_code < 500, (where, r.text)
            if method == "GET" and method in methods:
                assert_error(r, 401, "not_authenticated")
            elif method == "GET":
                assert_error(r, 405, "method_not_allowed")
            else:
                assert_error(r, 403, "csrf_failed")
            ran += 1
        # A CSRF token but no session: still nothing, except logging in and setting up.
        anon = requests.Session()
        xsrf = anon.get(server.url + "/api/console/session", timeout=TIMEOUT).json()["xsrf"]
        for method in UNSAFE:
            r = anon.request(method, url, json={}, headers={"X-XSRFToken": xsrf}, timeout=TIMEOUT)
            where = f"{method} {pattern} with a CSRF token and no session"
            assert r.status_code not in (200, 201, 204) and r.status_code < 500, (where, r.text)
            if method not in methods:
                assert_error(r, 405, "method_not_allowed")
            elif pattern in ("/api/console/login", "/api/console/setup"):
                assert r.json()["type"] == "error" and 400 <= r.status_code < 500, r.text
            else:
                assert_error(r, 401, "not_authenticated")
            ran += 1
        # A made-up or stale session cookie is no session.
        fake = requests.Session()
        fake.cookies.set("cutelive_session", "A" * 43)
        if "GET" in methods:
            assert_error(fake.get(url, timeout=TIMEOUT), 401, "not_authenticated")
    assert ran > 100
    assert console_state(admin) == before


def _console_fixture(server):
    """admin and bob logged in (bob online on a socket), a waiting chat, an offline message
    and an invitation rule: something for every state-changing route to change."""
    admin = server.console("admin")
    bob = server.console("bob")
    bob.connect()
    v, chat_id = started_visitor(server)
    v.send({"type": "leave_message", "name": "Ann", "email": "ann@example.com", "text": "x"})
    rule = admin.post(
        "/api/console/invite-rules",
        {"name": "Pricing", "message": "Need help?", "conditions": {"url_contains": "pricing"}},
    )
    assert rule.status_code == 201, rule.text
    dept = admin.post("/api/console/departments", {"key": "sales", "name": "Sales"})
    assert dept.status_code == 201, dept.text
    canned = admin.post("/api/console/canned", {"shortcut": "hi", "text": "Hi", "shared": True})
    assert canned.status_code == 201, canned.text
    ids = {
        "canned": canned.json()["reply"]["id"],
        "departments": dept.json()["department"]["id"],
        "operators": bob.operator["id"],
        "offline-messages": admin.get("/api/console/offline-messages").json()["messages"][0]["id"],
        "invite-rules": rule.json()["rule"]["id"],
        "chats": chat_id,
        "visitors": v.visitor_id,
    }
    bodies = {
        "/api/console/send": {"type": "accept", "chat_id": chat_id},
        "/api/console/operators": {
            "username": "mallory",
            "display_name": "Mallory",
            "password": "correct horse 2",
            "is_admin": True,
        },
        "/api/console/operators/([^/]+)": {
            "disabled": True,
            "is_admin": True,
            "display_name": "Bob the Admin",
        },
        "/api/console/offline-messages/([^/]+)": {"read": True},
        "/api/console/offline-messages/([^/]+)/reply": {"text": "Evil"},
        "/api/console/password": {
            "current_password": "correct horse 1",
            "new_password": "correct horse 3",
        },
        "/api/console/login": {"username": "admin", "password": "correct horse 1"},
        "/api/console/poll": {"conn": None, "cursors": {}},
        "/api/console/setup": {
            "setup_token": "x",
            "username": "m",
            "display_name": "M",
            "password": "correct horse 2",
        },
        "/api/console/invite-rules": {
            "name": "Evil",
            "message": "Hi",
            "conditions": {"url_contains": "x"},
        },
        "/api/console/invite-rules/([^/]+)": {"enabled": False, "name": "Changed"},
        "/api/console/settings": {"allowed_origins": ["https://evil.example"]},
        "/api/console/departments": {"key": "evil", "name": "Evil"},
        "/api/console/departments/([^/]+)": {"name": "Changed", "members": [bob.operator["id"]]},
        "/api/console/canned": {"shortcut": "evil", "text": "Evil", "shared": True},
        "/api/console/canned/([^/]+)": {"shortcut": "evil", "text": "Evil"},
    }

    def path(pattern):
        m = re.fullmatch(r"/api/console/([^/]+)/\(\[\^/\]\+\)(/[a-z-]+)?", pattern)
        if not m:
            return pattern
        return f"/api/console/{m.group(1)}/{ids[m.group(1)]}{m.group(2) or ''}"

    return admin, bob, v, chat_id, bodies, path


def _tampered(xsrf: str) -> str:
    """The token with its secret part changed (tornado's format: version|mask|token|time)."""
    version, mask, token, ts = xsrf.split("|")
    return "|".join([version, mask, token[::-1], ts])


def test_console_state_changes_need_the_csrf_token_even_with_a_session(server):
    admin, bob, v, chat_id, bodies, path = _console_fixture(server)
    before = console_state(admin)
    unsafe = sorted((p, m) for p, r in CONSOLE_ROUTES for m in handler_methods(r) if m in UNSAFE)
    assert ("/api/console/operators/([^/]+)", "PATCH") in unsafe
    for pattern, method in unsafe:
        for client, other in ((admin, bob), (bob, admin)):
            for token in (None, "wrong", "", _tampered(client.xsrf), other.xsrf):
                r = client.http.request(
                    method,
                    server.url + path(pattern),
                    json=bodies.get(pattern, {}),
                    headers={"X-XSRFToken": token},  # None: no header at all
                    timeout=TIMEOUT,
                )
                assert_error(r, 403, "csrf_failed")
    # The token in the JSON body does not count either (only the header does).
    r = admin.http.post(
        server.url + "/api/console/operators",
        json=dict(bodies["/api/console/operators"], _xsrf=admin.xsrf),
        headers={"X-XSRFToken": None},
        timeout=TIMEOUT,
    )
    assert_error(r, 403, "csrf_failed")
    # The console socket is not a way around it.
    r = admin.http.post(
        server.url + "/api/console/ws", json={}, headers={"X-XSRFToken": None}, timeout=TIMEOUT
    )
    assert_error(r, 403, "csrf_failed")
    # Nothing changed: the same stored state; both sessions still work; the passwords are the
    # old ones; bob is still online on his socket and the chat still waits.
    after = console_state(admin)
    assert after == before
    assert after["chats"][0]["status"] == "waiting"
    assert admin.get("/api/console/session").json()["operator"]["username"] == "admin"
    assert bob.get("/api/console/session").json()["operator"]["status"] == "online"
    assert server.console("admin").operator["username"] == "admin"
    assert server.console("bob").operator["is_admin"] is False
    alive(bob.ws)


def test_administrator_endpoints_refuse_operators(server):
    admin, bob, v, chat_id, bodies, path = _console_fixture(server)
    before = console_state(admin)
    checked = set()
    for pattern, route in CONSOLE_ROUTES:
        for method, auth in handler_methods(route).items():
            if auth != "admin":
                continue
            targets = [path(pattern)]
            if "(" in pattern:  # also on the administrator, on bob himself and on nothing
                targets += [
                    pattern.replace("([^/]+)", str(i))
                    for i in (admin.operator["id"], bob.operator["id"], 999)
                ]
            for target in targets:
                r = bob.http.request(
                    method, server.url + target, json=bodies.get(pattern, {}), timeout=TIMEOUT
                )
                assert_error(r, 403, "forbidden")
            checked.add((pattern, method))
    assert ("/api/console/operators", "POST") in checked
    assert ("/api/console/operators/([^/]+)", "PATCH") in checked
    after = console_state(admin)
    assert after == before
    bob_now = [o for o in after["operators"] if o["username"] == "bob"][0]
    assert bob_now["is_admin"] is False and bob_now["display_name"] == "Bob"
    assert not bob_now["disabled"]
    # bob may still do what operators do.
    assert bob.get("/api/console/operators").status_code == 200
    alive(bob.ws)


# -- origins ----------------------------------------------------------------------------------


def test_console_websocket_refuses_foreign_origins(server):
    bob = server.console("bob")
    cookie = bob.cookie_header()
    url = server.ws_url + "/api/console/ws"
    for origin in (
        "http://evil.example",
        "null",
        f"http://127.0.0.1.evil.example:{server.port}",
        f"http://evil.example/{server.url}",
        "https://evil.example:443",
    ):
        status, body = refused_upgrade(url, origin=origin, cookie=cookie)
        assert status == 403, (origin, body)
        assert body["type"] == "error" and body["error"] == "origin_not_allowed"
    # No session: refused before the upgrade too.
    status, body = refused_upgrade(url, origin=server.url)
    assert status == 401 and body["error"] == "not_authenticated"
    # bob is not present: the refused sockets made no presence.
    admin = server.console("admin")
    ops = admin.get("/api/console/operators").json()["operators"]
    assert [o["status"] for o in ops if o["username"] == "bob"] == ["offline"]
    # Its own origin works.
    ws = bob.connect()
    assert ws.events[0]["type"] == "welcome"
    alive(ws)


def test_visitor_api_accepts_any_origin_by_default(server):
    r = requests.post(
        server.url + "/api/visitor/token",
        json={},
        headers={"Origin": "https://anything.example"},
        timeout=TIMEOUT,
    )
    assert r.status_code == 201
    assert r.headers["Access-Control-Allow-Origin"] == "https://anything.example"
    assert "Access-Control-Allow-Credentials" not in r.headers
    ws = WS(server.ws_url + "/api/visitor/ws", origin="https://anything.example")
    ws.send({"type": "hello", "token": r.json()["token"]})
    ws.wait(lambda e: e["type"] == "welcome")
    ws.close()


def test_widget_allowed_origins_restrict_the_visitor_api_and_socket(make_server):
    s = make_server(config={"widget": {"allowed_origins": "https://shop.example"}})
    s.create_operator("admin", admin=True)
    admin = s.console("admin")
    good, bad = "https://shop.example", "http://other.example"
    # Tokens.
    r = requests.post(
        s.url + "/api/visitor/token", json={}, headers={"Origin": bad}, timeout=TIMEOUT
    )
    assert_error(r, 403, "origin_not_allowed")
    assert "Access-Control-Allow-Origin" not in r.headers
    for origin in (
        "https://shop.example.evil.example",
        "http://shop.example",
        "https://shop.example:8443",
        "null",
    ):
        r = requests.post(
            s.url + "/api/visitor/token", json={}, headers={"Origin": origin}, timeout=TIMEOUT
        )
        assert_error(r, 403, "origin_not_allowed")
    r = requests.post(
        s.url + "/api/visitor/token", json={}, headers={"Origin": good}, timeout=TIMEOUT
    )
    assert r.status_code == 201
    assert r.headers["Access-Control-Allow-Origin"] == good
    assert "Access-Control-Allow-Credentials" not in r.headers
    token = r.json()["token"]
    assert requests.post(s.url + "/api/visitor/token", json={}, timeout=TIMEOUT).status_code == 201
    # Preflight.
    pre = {
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "authorization, content-type",
    }
    r = requests.options(
        s.url + "/api/visitor/send", headers={"Origin": good, **pre}, timeout=TIMEOUT
    )
    assert r.status_code in (200, 204)
    assert r.headers["Access-Control-Allow-Origin"] == good
    allowed_headers = r.headers["Access-Control-Allow-Headers"].lower()
    assert "authorization" in allowed_headers and "content-type" in allowed_headers
    assert "POST" in r.headers["Access-Control-Allow-Methods"]
    r = requests.options(
        s.url + "/api/visitor/send", headers={"Origin": bad, **pre}, timeout=TIMEOUT
    )
    assert r.status_code == 403 and "Access-Control-Allow-Origin" not in r.headers
    # Commands and reads from an unlisted origin are refused and store nothing.
    auth = {"Authorization": f"Bearer {token}"}
    start = {"type": "start_chat", "name": "Ann", "text": "Hi", "client_id": "c1"}
    for method, path, body in (
        ("post", "/api/visitor/send", start),
        ("post", "/api/visitor/poll", {"conn": None}),
        ("get", "/api/visitor/chats", None),
        ("get", "/api/visitor/chats/1", None),
    ):
        r = requests.request(
            method, s.url + path, json=body, headers={"Origin": bad, **auth}, timeout=TIMEOUT
        )
        assert_error(r, 403, "origin_not_allowed")
    assert console_state(admin)["chats"] == []
    # The WebSocket.
    status, body = refused_upgrade(s.ws_url + "/api/visitor/ws", origin=bad)
    assert status == 403 and body["error"] == "origin_not_allowed"
    for kwargs in ({"origin": good}, {"suppress_origin": True}, {"origin": s.url}):
        ws = WS(s.ws_url + "/api/visitor/ws", **kwargs)
        ws.send({"type": "hello", "token": token})
        ws.wait(lambda e: e["type"] == "welcome")
        alive(ws)
        ws.close()
    # From the allowed origin, and without one, the API works.
    r = requests.post(
        s.url + "/api/visitor/send", json=start, headers={"Origin": good, **auth}, timeout=TIMEOUT
    )
    assert r.status_code == 200 and r.headers["Access-Control-Allow-Origin"] == good, r.text
    r = requests.get(s.url + "/api/visitor/chats", headers=auth, timeout=TIMEOUT)
    assert r.status_code == 200 and len(r.json()["chats"]) == 1
    assert len(console_state(admin)["chats"]) == 1


# -- odd input in paths and headers, local-only endpoints ---------------------------------------


def test_odd_digits_and_unparseable_urls_are_client_errors(server):
    ann = server.visitor()
    r = ann.http.get(server.url + "/api/visitor/chats/%C2%B2", timeout=TIMEOUT)
    assert r.status_code == 404 and r.json()["error"] == "not_found"
    bob = server.console("bob")
    assert bob.get("/api/console/chats?limit=%C2%B2").status_code == 400
    r = track(server, ann.token, "http://[x")
    assert r.status_code == 400 and r.json()["field"] == "url"
    r = requests.post(
        server.url + "/api/visitor/token", json={}, headers={"Origin": "http://[x"}, timeout=TIMEOUT
    )
    assert r.status_code == 201
    try:
        websocket.create_connection(
            server.ws_url + "/api/console/ws",
            origin="http://[x",
            cookie=bob.cookie_header(),
            timeout=TIMEOUT,
        )
        raise AssertionError("the console socket accepted a garbage origin")
    except websocket.WebSocketBadStatusException as e:
        assert e.status_code == 403


def test_metrics_are_not_served_through_a_proxy(server):
    r = requests.get(server.url + "/api/metrics", timeout=TIMEOUT)
    assert r.status_code == 200 and "loop_lag" in r.json()
    r = requests.get(
        server.url + "/api/metrics", headers={"X-Forwarded-For": "203.0.113.5"}, timeout=TIMEOUT
    )
    assert r.status_code == 404
