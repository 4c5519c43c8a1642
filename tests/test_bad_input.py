"""Limits and bad input: each gets a clear JSON error, and nothing is stored or changed.

Against docs/PROTOCOL.md §5, §7 and §8: field limits (and that they are configurable), body and
frame sizes, the rate limits, malformed JSON, wrong types, unknown and forbidden fields, invalid
UTF-8 and lone surrogates, control characters, other visitors' chats, unknown command types,
``hello`` rules, and commands per socket. (Who may call which console route, and from which
origin: test_access.py.) Every test ends by checking that the server logged no traceback and
never answered 500.
"""

from __future__ import annotations

import json

import pytest
import requests
import websocket
from conftest import TIMEOUT, WS, wait_for
from refusals import (
    alive,
    assert_error,
    assert_ws_error,
    checked,
    cid,
    console_state,
    operator_with_chat,
    raw_post,
    refuse_both,
    refused_upgrade,
    started_visitor,
    visitor_state,
    ws_raw,
)

KIB64 = 64 * 1024
MISSING_CHAT = 987654


@pytest.fixture
def make_server(make_server):
    """The conftest factory; at teardown no server logged a traceback or answered 500."""
    yield from checked(make_server)


# -- field limits -----------------------------------------------------------------------------


def test_message_over_5000_characters_is_refused_and_not_stored(server):
    v, chat_id = started_visitor(server)
    before = visitor_state(server, v)
    too_long = {"type": "message", "chat_id": chat_id, "text": "x" * 5001, "client_id": cid()}
    refuse_both(v, too_long, 400, "too_long", field="text", limit=5000)
    assert visitor_state(server, v) == before
    # Multi-byte characters count as characters, not bytes.
    refuse_both(v, dict(too_long, text="é" * 5001), 400, "too_long", field="text", limit=5000)
    assert visitor_state(server, v) == before
    # Exactly at the limit is fine, on both transports.
    assert v.send(dict(too_long, text="é" * 5000)).status_code == 200
    assert v.say(chat_id, "y" * 5000)["type"] == "ack"
    assert visitor_state(server, v)[0][0]["last_seq"] == before[0][0]["last_seq"] + 2

    # The first message of start_chat has the same limit; no chat is created.
    w = server.visitor()
    w.connect()
    start = {"type": "start_chat", "name": "Ann", "text": "z" * 5001, "client_id": cid()}
    refuse_both(w, start, 400, "too_long", field="text", limit=5000)
    assert visitor_state(server, w) == []

    # Operators have the same limit, over /api/console/send and their WebSocket.
    bob, v2, chat2 = operator_with_chat(server)
    before2 = visitor_state(server, v2)
    op_msg = {"type": "message", "chat_id": chat2, "text": "o" * 5001, "client_id": cid()}
    refuse_both(bob, op_msg, 400, "too_long", field="text", limit=5000)
    assert visitor_state(server, v2) == before2


def test_name_and_email_limits_and_invalid_email(server):
    v = server.visitor()
    v.connect()
    admin = server.console("admin")
    base = {"type": "start_chat", "name": "Ann", "text": "Hi", "client_id": cid()}
    leave = {"type": "leave_message", "name": "Ann", "email": "ann@example.com", "text": "Hi"}
    domain = "@example.com"
    ok_email = "a" * (254 - len(domain)) + domain
    long_email = "a" * (255 - len(domain)) + domain
    for cmd in (base, leave):
        refuse_both(v, dict(cmd, name="N" * 101), 400, "too_long", field="name", limit=100)
        refuse_both(v, dict(cmd, email=long_email), 400, "too_long", field="email", limit=254)
        for bad in (
            "ann",
            "ann@",
            "@example.com",
            "ann@example",
            "a b@example.com",
            "ann@@example.com",
            "ann@exa mple.com",
            "ann@example..com",
            "ann@.com",
        ):
            refuse_both(v, dict(cmd, email=bad), 400, "invalid_field", field="email")
    # leave_message requires an e-mail; start_chat does not.
    no_email = {k: x for k, x in leave.items() if k != "email"}
    refuse_both(v, no_email, 400, "invalid_field", field="email")
    refuse_both(v, dict(leave, email=""), 400, "invalid_field", field="email")
    # Nothing was stored anywhere.
    assert visitor_state(server, v) == []
    assert console_state(admin)["offline"] == []
    # At the limits both are accepted.
    ack = v.start_chat(name="N" * 100, email=ok_email)
    assert ack["chat"]["name"] == "N" * 100 and ack["chat"]["email"] == ok_email
    r = v.send(dict(leave, name="N" * 100, email=ok_email))
    assert r.status_code == 200 and r.json()["type"] == "ack", r.text
    assert len(console_state(admin)["offline"]) == 1


def test_field_limits_are_configurable(make_server):
    s = make_server(
        config={"limits": {"message_chars": "10", "name_chars": "5", "email_chars": "20"}}
    )
    v = s.visitor()
    v.connect()
    start = {"type": "start_chat", "name": "Ann", "text": "x" * 11, "client_id": cid()}
    refuse_both(v, start, 400, "too_long", field="text", limit=10)
    refuse_both(v, dict(start, text="hi", name="Annabel"), 400, "too_long", field="name", limit=5)
    refuse_both(
        v,
        dict(start, text="hi", email="annabel@example.com.au"),
        400,
        "too_long",
        field="email",
        limit=20,
    )
    assert visitor_state(s, v) == []
    chat_id = v.start_chat("x" * 10, name="Annab", email="ann@example.com")["chat"]["id"]
    msg = {"type": "message", "chat_id": chat_id, "text": "y" * 11, "client_id": cid()}
    refuse_both(v, msg, 400, "too_long", field="text", limit=10)
    assert v.say(chat_id, "y" * 10)["type"] == "ack"
    assert visitor_state(s, v)[0][0]["last_seq"] == 3


# -- sizes of bodies and frames ---------------------------------------------------------------


def _json_posts(visitor, operator, admin) -> list[tuple[str, requests.Session]]:
    """Routes that read a JSON body from a POST, each with a session allowed to call it."""
    return [
        ("/api/visitor/send", visitor.http),
        ("/api/visitor/poll", visitor.http),
        ("/api/visitor/token", visitor.http),
        ("/api/console/send", operator.http),
        ("/api/console/poll", operator.http),
        ("/api/console/operators", admin.http),
    ]


def _padded(obj: dict, size: int) -> bytes:
    """``obj`` as JSON, padded with insignificant whitespace to exactly ``size`` bytes."""
    raw = json.dumps(obj).encode()
    assert len(raw) <= size
    return raw[:-1] + b" " * (size - len(raw)) + b"}"


def test_bodies_over_64_kib_get_413_and_nothing_is_stored(server):
    v = server.visitor()
    admin = server.console("admin")
    before = console_state(admin)
    start = {"type": "start_chat", "name": "Ann", "text": "Hi", "client_id": cid()}
    over = _padded(start, KIB64 + 1)
    for path, session in _json_posts(v, admin, admin):
        r = raw_post(session, server.url + path, over)
        assert_error(r, 413, "body_too_large", limit="max_body")
    r = admin.http.patch(
        server.url + "/api/console/operators/2",
        data=over,
        timeout=TIMEOUT,
        headers={"Content-Type": "application/json"},
    )
    assert_error(r, 413, "body_too_large", limit="max_body")
    assert visitor_state(server, v) == []
    assert console_state(admin) == before
    # A body of exactly 64 KiB is accepted.
    r = raw_post(v.http, server.url + "/api/visitor/send", _padded(start, KIB64))
    assert r.status_code == 200 and r.json()["type"] == "ack", r.text
    assert len(visitor_state(server, v)) == 1


def test_websocket_frame_over_64_kib_closes_with_1009(server):
    v, chat_id = started_visitor(server)
    before = visitor_state(server, v)
    # Exactly 64 KiB is a normal frame.
    ws = v.ws
    n = len(ws.events)
    ws.send(_padded({"type": "ping", "id": "big"}, KIB64).decode())
    assert ws.wait(lambda e: e.get("ref") == "big", start=n)["type"] == "pong"
    # One byte more closes the connection with 1009 and stores nothing.
    msg = {"type": "message", "chat_id": chat_id, "text": "Hi", "client_id": cid()}
    ws.send(_padded(msg, KIB64 + 1).decode())
    assert ws.wait_closed()[0] == 1009
    assert visitor_state(server, v) == before
    # Also before hello.
    raw = WS(server.ws_url + "/api/visitor/ws")
    raw.send("[" + " " * KIB64 + "]")
    assert raw.wait_closed()[0] == 1009
    raw.close()


# -- rate limits ------------------------------------------------------------------------------


def test_messages_per_visitor_are_rate_limited(make_server):
    s = make_server(config={"limits": {"visitor_messages": "3/1h"}})
    v = s.visitor()
    v.connect()
    chat_id = v.start_chat("one")["chat"]["id"]
    first = v.say(chat_id, "two", client_id="c2")
    assert first["type"] == "ack"
    assert v.say(chat_id, "three")["type"] == "ack"
    before = visitor_state(s, v)
    assert before[0][0]["last_seq"] == 4
    msg = {"type": "message", "chat_id": chat_id, "text": "four", "client_id": cid()}
    body = assert_error(v.send(msg), 429, "rate_limited", limit="visitor_messages")
    assert body["retry_after"] > 0
    ev = assert_ws_error(v.ws.request(msg), "rate_limited", limit="visitor_messages")
    assert ev["retry_after"] > 0
    alive(v.ws)
    leave = {"type": "leave_message", "name": "Ann", "email": "ann@example.com", "text": "x"}
    assert_error(v.send(leave), 429, "rate_limited", limit="visitor_messages")
    assert visitor_state(s, v) == before
    # A retry of a stored message is not a new message: it still returns the original.
    again = v.say(chat_id, "two", client_id="c2")
    assert again["type"] == "ack" and again["message"] == first["message"]
    # Another visitor has its own allowance.
    w = s.visitor()
    w.connect()
    w.start_chat("mine")
    s.create_operator("admin", admin=True)
    assert console_state(s.console("admin"))["offline"] == []


def test_new_chats_per_ip_are_rate_limited(make_server):
    s = make_server(config={"limits": {"chats_per_ip": "2/1h"}})
    s.create_operator("admin", admin=True)
    admin = s.console("admin")
    for _ in range(2):
        started_visitor(s)
    before = console_state(admin)
    assert len(before["chats"]) == 2
    v = s.visitor()
    v.connect()
    start = {"type": "start_chat", "name": "Ann", "text": "Hi", "client_id": cid()}
    body = assert_error(v.send(start), 429, "rate_limited", limit="chats_per_ip")
    assert body["retry_after"] > 0
    assert_ws_error(v.ws.request(start), "rate_limited", limit="chats_per_ip")
    alive(v.ws)
    assert visitor_state(s, v) == []
    assert console_state(admin) == before


def test_requests_per_ip_are_rate_limited(make_server):
    s = make_server(config={"limits": {"requests_per_ip": "10/1h"}})
    v = s.visitor()  # one request
    ws = v.connect()  # one more: the upgrade
    start = {"type": "start_chat", "name": "Ann", "text": "Hi", "client_id": "refused"}
    refused = None
    for _ in range(12):
        r = requests.get(s.url + "/api/status", timeout=TIMEOUT)
        if r.status_code != 200:
            refused = r
            break
    assert refused is not None, "the request limit never applied"
    body = assert_error(refused, 429, "rate_limited", limit="requests_per_ip")
    assert body["retry_after"] > 0 and int(refused.headers["Retry-After"]) > 0
    # Every kind of request is refused now, and the refused ones store nothing.
    assert_error(v.send(start), 429, "rate_limited", limit="requests_per_ip")
    assert_error(
        requests.post(s.url + "/api/visitor/token", json={}, timeout=TIMEOUT),
        429,
        "rate_limited",
        limit="requests_per_ip",
    )
    assert_error(
        requests.get(s.url + "/api/console/session", timeout=TIMEOUT),
        429,
        "rate_limited",
        limit="requests_per_ip",
    )
    status, body = refused_upgrade(s.ws_url + "/api/visitor/ws")
    assert status == 429 and body["error"] == "rate_limited"
    assert body["limit"] == "requests_per_ip"
    # The open WebSocket is not an HTTP request: it still works, and its replay shows that
    # the refused start_chat created no chat.
    n = len(ws.events)
    assert ws.request({"type": "sync", "cursors": {}})["type"] == "ack"
    assert [e for e in ws.events[n:] if "chat_id" in e] == []
    ack = ws.request({"type": "start_chat", "name": "Ann", "text": "Hi", "client_id": "new"})
    assert ack["type"] == "ack" and ack["chat"]["last_seq"] == 2


def test_websockets_per_ip_are_limited(make_server):
    s = make_server(config={"limits": {"sockets_per_ip": "2"}})
    s.create_operator("bob")
    v = s.visitor()
    first = v.connect()
    v.connect()
    status, body = refused_upgrade(s.ws_url + "/api/visitor/ws")
    assert status == 429
    assert body["type"] == "error" and body["error"] == "rate_limited"
    assert body["limit"] == "sockets_per_ip"
    # The console socket counts against the same address.
    bob = s.console("bob")
    status, body = refused_upgrade(
        s.ws_url + "/api/console/ws", cookie=bob.cookie_header(), origin=s.url
    )
    assert status == 429 and body["limit"] == "sockets_per_ip"
    # Closing one frees a place (once the server has seen the close).
    first.close()

    def try_connect():
        try:
            return WS(s.ws_url + "/api/visitor/ws")
        except websocket.WebSocketBadStatusException:
            return None

    third = wait_for(try_connect, what="a free socket place")
    third.send({"type": "hello", "token": v.token})
    third.wait(lambda e: e["type"] == "welcome")
    third.close()


# -- malformed JSON, types, fields ------------------------------------------------------------

BAD_JSON = [
    b"",
    b"   ",
    b"{",
    b"not json",
    b"{'type': 'ping'}",
    b'{"type": "ping"',
    b'{"type": "ping"} {}',
    b"[]",
    b'"ping"',
    b"1",
    b"null",
    b"true",
    b'[{"type": "ping"}]',
    b"\xef\xbb\xbf{}",
    b"[" * 20000 + b"]" * 20000,
]


def test_malformed_json_is_refused_over_http_and_websocket(server):
    v, chat_id = started_visitor(server)
    bob, v2, chat2 = operator_with_chat(server)
    before = (visitor_state(server, v), visitor_state(server, v2))
    for body in BAD_JSON:
        for url, session in (("/api/visitor/send", v.http), ("/api/console/send", bob.http)):
            r = raw_post(session, server.url + url, body)
            assert_error(r, 400, "bad_json", ref=None)
        for ws in (v.ws, bob.ws):
            assert_ws_error(ws_raw(ws, body.decode("utf-8")), "bad_json", ref=None)
            alive(ws)
    # The long-poll body is checked the same way.
    assert_error(raw_post(v.http, server.url + "/api/visitor/poll", b"{"), 400, "bad_json")
    assert_error(raw_post(v.http, server.url + "/api/visitor/poll", b"[]"), 400, "bad_json")
    assert (visitor_state(server, v), visitor_state(server, v2)) == before


def _wrong_types(chat_id: int) -> list[tuple[dict, str]]:
    """(command, the field it gets wrong) for the visitor's commands."""
    msg = {"type": "message", "chat_id": chat_id, "text": "Hi", "client_id": "c"}
    start = {"type": "start_chat", "name": "Ann", "text": "Hi", "client_id": "c"}
    leave = {"type": "leave_message", "name": "Ann", "email": "ann@example.com", "text": "Hi"}
    cases = []
    for bad in (True, False, None, [], ["Hi"], {}, {"text": "Hi"}, 5, 1.5, "", "   "):
        cases += [
            (dict(msg, text=bad), "text"),
            (dict(start, name=bad), "name"),
            (dict(start, text=bad), "text"),
            (dict(leave, text=bad), "text"),
        ]
    for bad in (True, None, [], {}, 5, ""):
        cases += [(dict(msg, client_id=bad), "client_id"), (dict(leave, email=bad), "email")]
    for bad in (
        True,
        False,
        None,
        "1",
        str(chat_id),
        [chat_id],
        {},
        0,
        -1,
        1.0,
        2**63,
        float("nan"),
    ):
        cases += [
            (dict(msg, chat_id=bad), "chat_id"),
            ({"type": "typing", "chat_id": bad, "typing": True}, "chat_id"),
            ({"type": "close", "chat_id": bad}, "chat_id"),
        ]
    for bad in (True, [], {}, 5):
        cases += [
            (dict(start, email=bad), "email"),
            (dict(start, page_url=bad), "page_url"),
            (dict(start, page_title=bad), "page_title"),
        ]
    for bad in (True, [], {}, "1", 0):
        cases.append((dict(leave, chat_id=bad), "chat_id"))
    for bad in ("yes", 1, 0, None, [], {}):
        cases.append(({"type": "typing", "chat_id": chat_id, "typing": bad}, "typing"))
    cases.append((dict(start, page_url="u" * 2049), "page_url"))
    cases.append((dict(start, page_title="t" * 513), "page_title"))
    cases.append((dict(msg, client_id="c" * 65), "client_id"))
    return cases


def test_wrong_types_are_refused_and_store_nothing(server):
    v, chat_id = started_visitor(server)
    v.ws.request({"type": "typing", "chat_id": chat_id, "typing": True})
    w = server.visitor()
    w.connect()
    before = visitor_state(server, v)
    for cmd, field in _wrong_types(chat_id):
        client = w if cmd["type"] == "start_chat" else v
        expect = (
            "too_long"
            if isinstance(cmd.get(field), str) and len(cmd[field]) > 64
            else "invalid_field"
        )
        # NaN is not JSON: requests refuses to send it, so send the text by hand.
        body = json.dumps(cmd).encode()
        assert_error(
            raw_post(client.http, server.url + "/api/visitor/send", body), 400, expect, field=field
        )
        ref = cid()
        ev = ws_raw(client.ws, json.dumps(dict(cmd, id=ref)))
        assert_ws_error(ev, expect, field=field, ref=ref)
    alive(v.ws)
    alive(w.ws)
    assert visitor_state(server, v) == before
    assert visitor_state(server, w) == []
    # Huge numbers and number-like text are not ids either.
    for raw in (
        b'{"type": "close", "chat_id": 1e400}',
        b'{"type": "close", "chat_id": -0}',
        b'{"type": "close", "chat_id": Infinity}',
        b'{"type": "close", "chat_id": 1e2}',
        b'{"type": "close", "chat_id": ' + b"9" * 5000 + b"}",
    ):
        r = raw_post(v.http, server.url + "/api/visitor/send", raw)
        assert r.status_code == 400 and r.json()["error"] in ("invalid_field", "bad_json"), r.text
        ev = ws_raw(v.ws, raw.decode())
        assert ev["type"] == "error" and ev["error"] in ("invalid_field", "bad_json"), ev
    assert visitor_state(server, v) == before


def test_wrong_types_in_cursors_id_and_type(server):
    v, chat_id = started_visitor(server)
    bad_cursors = (
        [],
        "x",
        None,
        5,
        True,
        {"x": 1},
        {"1.0": 1},
        {"-1": 0},
        {"0": 0},
        {str(chat_id): -1},
        {str(chat_id): True},
        {str(chat_id): "2"},
        {str(chat_id): 1.5},
        {str(chat_id): None},
        {str(chat_id): [1]},
        {str(i): 0 for i in range(1, 1002)},
    )
    assert_ws_error(
        v.ws.request({"type": "sync", "cursors": None}), "invalid_field", field="cursors"
    )
    for bad in bad_cursors:
        if bad is None:
            continue  # optional in hello and poll, required in sync (above)
        code = "too_long" if isinstance(bad, dict) and len(bad) > 1000 else "invalid_field"
        assert_ws_error(v.ws.request({"type": "sync", "cursors": bad}), code, field="cursors")
        r = v.http.post(
            server.url + "/api/visitor/poll", json={"conn": None, "cursors": bad}, timeout=TIMEOUT
        )
        assert_error(r, 400, code, field="cursors")
        # A hello with bad cursors is refused and the socket stays open for a good one.
        fresh = WS(server.ws_url + "/api/visitor/ws")
        ev = ws_raw(fresh, {"type": "hello", "token": v.token, "cursors": bad})
        assert_ws_error(ev, code, field="cursors")
        fresh.send({"type": "hello", "token": v.token, "cursors": {}})
        fresh.wait(lambda e: e["type"] == "welcome")
        fresh.close()
    # The request id must be a string of up to 64 characters; the error then has no ref.
    for bad in (5, True, [], {}, "r" * 65):
        ev = ws_raw(v.ws, {"type": "ping", "id": bad})
        assert_ws_error(ev, "invalid_field", field="id", ref=None)
        assert_error(v.send({"type": "ping", "id": bad}), 400, "invalid_field", field="id")
    # The type must be a known string.
    for bad in (None, 5, True, [], {}, "", "PING", "ping "):
        assert_ws_error(v.ws.request({"type": bad}), "unknown_type")
        assert_error(v.send({"type": bad}), 400, "unknown_type")
    assert_ws_error(ws_raw(v.ws, {"id": "no-type"}), "unknown_type", ref="no-type")
    assert_error(v.send({}), 400, "unknown_type")
    alive(v.ws)


def _senders(server):
    """Who sends the refused commands: a visitor in a chat, a connected visitor with none, bob
    in a chat of his own, and the admin's console; with a message and a chat start to send.

    Returns ``(v, chat_id, w, bob, chat2, admin, msg, start)``.
    """
    v, chat_id = started_visitor(server)
    w = server.visitor()
    w.connect()
    bob, _v2, chat2 = operator_with_chat(server)
    admin = server.console("admin")
    msg = {"type": "message", "chat_id": chat_id, "text": "Hi", "client_id": cid()}
    start = {"type": "start_chat", "name": "Ann", "text": "Hi", "client_id": cid()}
    return v, chat_id, w, bob, chat2, admin, msg, start


def test_unknown_and_forbidden_fields(server):
    v, chat_id, w, bob, chat2, admin, msg, start = _senders(server)
    before = console_state(admin)
    op_msg = dict(msg, chat_id=chat2)
    for client, cmd in (
        (v, msg),
        (w, start),
        (bob, op_msg),
        (bob, {"type": "accept", "chat_id": chat_id}),
    ):
        for field in ("unknown_field", "foo", "Text", "chatId", "from", "operator", "ts"):
            refuse_both(client, dict(cmd, **{field: "x"}), 400, "unknown_field", field=field)
        for field in ("status", "operator_id", "seq", "visitor_id"):
            for value in ("closed", 1, None, True):
                refuse_both(
                    client, dict(cmd, **{field: value}), 400, "forbidden_field", field=field
                )
    # Even a ping takes no fields.
    refuse_both(v, {"type": "ping", "seq": 1}, 400, "forbidden_field", field="seq")
    refuse_both(v, {"type": "ping", "x": 1}, 400, "unknown_field", field="x")
    assert console_state(admin) == before
    assert visitor_state(server, w) == []


# -- encodings --------------------------------------------------------------------------------


def test_invalid_utf8_body_is_refused(server):
    v, chat_id = started_visitor(server)
    bob = server.console("bob")
    admin = server.console("admin")
    before = console_state(admin)
    bodies = [
        b'{"type": "message", "chat_id": %d, "text": "\xff", "client_id": "c"}' % chat_id,
        b'{"type": "ping", "id": "\xc3"}',
        b"\xfe\xff\x00{",
        b'{"type": "\xed\xa0\x80"}',
        b'{"type": "ping"}\xc0\xaf',
    ]
    for body in bodies:
        for path, session in _json_posts(v, bob, admin):
            assert_error(raw_post(session, server.url + path, body), 400, "invalid_utf8")
    assert console_state(admin) == before


def test_invalid_utf8_websocket_text_frame_closes_with_1007(server):
    v, chat_id = started_visitor(server)
    before = visitor_state(server, v)
    frame = b'{"type": "message", "chat_id": %d, "text": "\xff\xfe", "client_id": "c"}' % chat_id
    v.ws.sock.send(frame, opcode=websocket.ABNF.OPCODE_TEXT)
    assert v.ws.wait_closed()[0] == 1007
    assert visitor_state(server, v) == before
    # The same before hello, and on the console socket.
    raw = WS(server.ws_url + "/api/visitor/ws")
    raw.sock.send(b"\xff\xfe", opcode=websocket.ABNF.OPCODE_TEXT)
    assert raw.wait_closed()[0] == 1007
    bob = server.console("bob")
    ws = bob.connect()
    ws.sock.send(b'{"type": "ping", "id": "\xed\xa0\x80"}', opcode=websocket.ABNF.OPCODE_TEXT)
    assert ws.wait_closed()[0] == 1007


def test_binary_frames_get_an_error_and_the_socket_stays_open(server):
    v, chat_id = started_visitor(server)
    before = visitor_state(server, v)
    payload = json.dumps(
        {"type": "message", "chat_id": chat_id, "text": "Hi", "client_id": "c"}
    ).encode()
    for ws in (v.ws, WS(server.ws_url + "/api/visitor/ws")):
        n = len(ws.events)
        ws.sock.send_binary(payload)
        ev = ws.wait(lambda e: e["type"] == "error", start=n)
        assert_ws_error(ev, "bad_json")
        assert "binary" in ev["message"]
    alive(v.ws)
    assert visitor_state(server, v) == before


def test_lone_surrogates_are_refused_never_a_crash(server):
    v, _chat_id, w, bob, chat2, admin, msg, start = _senders(server)
    before = console_state(admin)
    s = "\ud800"
    leave = {"type": "leave_message", "name": "Ann", "email": "ann@example.com", "text": "Hi"}
    cases = [
        (v, dict(msg, text=f"a{s}b"), "text"),
        (v, dict(msg, text="\udfff"), "text"),
        (v, dict(msg, client_id=s), "client_id"),
        (w, dict(start, name=s), "name"),
        (w, dict(start, email=f"a{s}@example.com"), "email"),
        (w, dict(start, page_url=s), "page_url"),
        (w, dict(start, page_title=s), "page_title"),
        (v, dict(leave, text=s), "text"),
        (v, dict(leave, name=s), "name"),
        (bob, dict(msg, chat_id=chat2, text=s), "text"),
    ]
    for client, cmd, field in cases:
        refuse_both(client, cmd, 400, "invalid_field", field=field)
    # In the request id and in field names, which the server would echo back.
    for client in (v, bob):
        ev = ws_raw(client.ws, {"type": "ping", "id": s})
        assert_ws_error(ev, "invalid_field", field="id", ref=None)
        assert_error(client.send({"type": "ping", "id": s}), 400, "invalid_field", field="id")
        ev = client.ws.request({"type": "ping", s: 1})
        assert ev["error"] == "unknown_field" and ev["field"].encode("utf-8")
        r = client.send({"type": "ping", s: 1})
        assert r.status_code == 400 and r.json()["error"] == "unknown_field", r.text
        assert_ws_error(client.ws.request({"type": s}), "unknown_type")
        assert_error(client.send({"type": s}), 400, "unknown_type")
        alive(client.ws)
    # In hello, the token and the cursors.
    fresh = WS(server.ws_url + "/api/visitor/ws")
    assert_ws_error(ws_raw(fresh, {"type": "hello", "token": s}), "invalid_field", field="token")
    assert_ws_error(
        ws_raw(fresh, {"type": "hello", "token": v.token, "cursors": {s: 1}}),
        "invalid_field",
        field="cursors",
    )
    assert_ws_error(
        ws_raw(fresh, {"type": "hello", "id": s, "token": True}),
        "invalid_field",
        field="token",
        ref=None,
    )
    alive_after = ws_raw(fresh, {"type": "ping", "id": "p"})
    assert_ws_error(alive_after, "hello_required")
    fresh.close()
    # In the long-poll conn, and in a login.
    r = v.http.post(
        server.url + "/api/visitor/poll", json={"conn": s, "cursors": {}}, timeout=TIMEOUT
    )
    assert_error(r, 400, "invalid_field", field="conn")
    anon = server.console("admin")
    r = anon.post("/api/console/login", {"username": s, "password": "correct horse 1"})
    assert r.status_code in (400, 401) and r.json()["type"] == "error", r.text
    assert console_state(admin) == before
    assert visitor_state(server, w) == []


def test_control_characters_are_refused_except_line_breaks_in_text(server):
    v, chat_id = started_visitor(server)
    w = server.visitor()
    w.connect()
    before = visitor_state(server, v)
    start = {"type": "start_chat", "name": "Ann", "text": "Hi", "client_id": cid()}
    for ch in (
        "\x00",
        "\x07",
        "\x08",
        "\t",
        "\n",
        "\r",
        "\x1b",
        "\x7f",
        "\x85",
        "\x9b",
        "\u2028",
        "\u2029",
    ):
        refuse_both(w, dict(start, name=f"Ann{ch}Lee"), 400, "invalid_field", field="name")
        refuse_both(
            w, dict(start, email=f"ann{ch}@example.com"), 400, "invalid_field", field="email"
        )
        refuse_both(
            v,
            {"type": "message", "chat_id": chat_id, "text": "Hi", "client_id": f"c{ch}1"},
            400,
            "invalid_field",
            field="client_id",
        )
    for ch in ("\x00", "\x07", "\x1b", "\x7f", "\x85", "\x0b", "\x0c"):
        refuse_both(
            v,
            {"type": "message", "chat_id": chat_id, "text": f"a{ch}b", "client_id": cid()},
            400,
            "invalid_field",
            field="text",
        )
    assert visitor_state(server, w) == []
    assert visitor_state(server, v) == before
    # Line breaks and tabs are text; CR LF and CR become LF.
    ack = v.say(chat_id, "line 1\r\nline 2\rline 3\n\tindented")
    assert ack["message"]["text"] == "line 1\nline 2\nline 3\n\tindented"


def test_cr_lf_in_offline_message_name_or_email_is_refused(server):
    v = server.visitor()
    v.connect()
    admin = server.console("admin")
    leave = {
        "type": "leave_message",
        "name": "Ann",
        "email": "ann@example.com",
        "text": "Please call me back",
    }
    injections = [
        "\r\nBcc: victim@evil.example",
        "\nBcc: victim@evil.example",
        "\rBcc: victim@evil.example",
        "\r\n\r\nforged body",
        "\x00Bcc: x@evil.example",
        "\u2028Bcc: victim@evil.example",
        "\x85Bcc: victim@evil.example",
    ]
    for inj in injections:
        refuse_both(v, dict(leave, name="Ann" + inj), 400, "invalid_field", field="name")
        refuse_both(
            v, dict(leave, email="ann@example.com" + inj), 400, "invalid_field", field="email"
        )
        refuse_both(
            v, dict(leave, page_title="Shop" + inj), 400, "invalid_field", field="page_title"
        )
    assert console_state(admin)["offline"] == []
    # The text itself may span lines: it is the body of the e-mail, not a header.
    r = v.send(dict(leave, text="line 1\r\nBcc: not-a-header@example.com"))
    assert r.status_code == 200, r.text
    [stored] = console_state(admin)["offline"]
    assert stored["name"] == "Ann" and stored["email"] == "ann@example.com"


# -- other people's chats ---------------------------------------------------------------------


def _same_404(a: dict, b: dict, id_a: int, id_b: int) -> None:
    """Two not_found answers are the same apart from the id asked for."""

    def norm(body, chat_id):
        body = {k: v for k, v in body.items() if k != "ref"}
        if "chat_id" in body:
            assert body["chat_id"] == chat_id, body
            body["chat_id"] = "ID"
        body["message"] = body["message"].replace(str(chat_id), "ID")
        return body

    assert norm(a, id_a) == norm(b, id_b), (a, b)


def test_another_visitors_chat_answers_like_a_missing_one(server):
    ann, ann_chat = started_visitor(server, "Ann's secret")
    ann_before = visitor_state(server, ann)
    eve = server.visitor()
    eve.connect()
    cmds = [
        lambda c: {"type": "message", "chat_id": c, "text": "hijack", "client_id": "x"},
        lambda c: {"type": "typing", "chat_id": c, "typing": True},
        lambda c: {"type": "close", "chat_id": c},
        lambda c: {
            "type": "leave_message",
            "name": "Eve",
            "email": "eve@example.com",
            "text": "x",
            "chat_id": c,
        },
    ]
    for make in cmds:
        r_other = eve.send(make(ann_chat))
        r_missing = eve.send(make(MISSING_CHAT))
        assert r_other.status_code == r_missing.status_code == 404
        _same_404(
            assert_error(r_other, 404, "not_found"),
            assert_error(r_missing, 404, "not_found"),
            ann_chat,
            MISSING_CHAT,
        )
        e_other = assert_ws_error(eve.ws.request(make(ann_chat)), "not_found")
        e_missing = assert_ws_error(eve.ws.request(make(MISSING_CHAT)), "not_found")
        _same_404(e_other, e_missing, ann_chat, MISSING_CHAT)
    # The transcript.
    r_other = eve.http.get(server.url + f"/api/visitor/chats/{ann_chat}", timeout=TIMEOUT)
    r_missing = eve.http.get(server.url + f"/api/visitor/chats/{MISSING_CHAT}", timeout=TIMEOUT)
    _same_404(
        assert_error(r_other, 404, "not_found"),
        assert_error(r_missing, 404, "not_found"),
        ann_chat,
        MISSING_CHAT,
    )
    assert "Ann's secret" not in r_other.text
    for junk in ("abc", "0", "-1", "1.0", "9" * 40):
        r = eve.http.get(server.url + f"/api/visitor/chats/{junk}", timeout=TIMEOUT)
        assert_error(r, 404, "not_found")
    eve_chats = eve.http.get(server.url + "/api/visitor/chats", timeout=TIMEOUT).json()
    assert eve_chats == {"chats": []}
    # Cursors: sync, hello and the first poll answer a reset, exactly as for a missing chat.
    for cursors in ({str(ann_chat): 0}, {str(MISSING_CHAT): 0}):
        (chat_key,) = cursors
        n = len(eve.ws.events)
        assert eve.ws.request({"type": "sync", "cursors": cursors})["type"] == "ack"
        got = [e for e in eve.ws.events[n:] if e["type"] != "ack"]
        assert got == [{"type": "reset", "chat_id": int(chat_key), "reason": "unknown_cursor"}]
        ws2 = eve.connect(cursors=cursors)
        ws2.wait(lambda e: e["type"] == "reset")
        assert [e["type"] for e in ws2.events] == ["welcome", "reset"]
        assert ws2.events[0]["chats"] == []
        p = eve.poller()
        p.cursors = dict(cursors)
        events = p.poll()
        assert [e["type"] for e in events] == ["welcome", "reset"]
        assert events[1]["chat_id"] == int(chat_key)
    assert not [e for e in eve.ws.events if "Ann's secret" in json.dumps(e)]
    assert visitor_state(server, ann) == ann_before


def test_unknown_visitor_tokens_are_refused_alike(server):
    ann, ann_chat = started_visitor(server)
    before = visitor_state(server, ann)
    for token in ("A" * 43, ann.token[:-1], ann.token + "x", "", "x" * 300, "Bearer"):
        h = {"Authorization": f"Bearer {token}"}
        for method, path, body in (
            ("post", "/api/visitor/send", {"type": "ping"}),
            ("post", "/api/visitor/poll", {"conn": None}),
            ("get", "/api/visitor/chats", None),
            ("get", f"/api/visitor/chats/{ann_chat}", None),
        ):
            r = requests.request(method, server.url + path, json=body, headers=h, timeout=TIMEOUT)
            assert_error(r, 401, "bad_token")
    for h in ({}, {"Authorization": ann.token}, {"Authorization": f"Basic {ann.token}"}):
        r = requests.get(server.url + "/api/visitor/chats", headers=h, timeout=TIMEOUT)
        assert_error(r, 401, "bad_token")
    assert visitor_state(server, ann) == before


# -- command types and hello ------------------------------------------------------------------


def test_unknown_and_other_partys_command_types(server):
    bob = server.console("bob")
    bob.connect()
    admin = server.console("admin")
    v, chat_id = started_visitor(server)
    before = console_state(admin)
    for cmd in (
        {"type": "accept", "chat_id": chat_id},
        {"type": "status", "status": "online"},
        {"type": "login"},
        {"type": "nope"},
        {"type": "hello", "token": v.token},
        {"type": "welcome"},
        {"type": "__class__"},
        {"type": "cmd_message"},
        {"type": "queue"},
        {"type": "x" * 10000},
    ):
        refuse_both(v, cmd, 400, "unknown_type")
    for cmd in (
        {"type": "start_chat", "name": "Bob", "text": "Hi", "client_id": "c"},
        {"type": "leave_message", "name": "Bob", "email": "b@example.com", "text": "x"},
        {"type": "hello"},
        {"type": "reset"},
        {"type": "dispatch"},
    ):
        refuse_both(bob, cmd, 400, "unknown_type")
    # sync needs a stream: over HTTP it is not a command.
    assert_error(v.send({"type": "sync", "cursors": {}}), 400, "unknown_type")
    after = console_state(admin)
    assert after == before
    assert after["chats"][0]["status"] == "waiting" and after["chats"][0]["operator"] is None


def test_commands_before_hello_and_bad_tokens_in_hello(server):
    v, chat_id = started_visitor(server)
    before = visitor_state(server, v)
    ws = WS(server.ws_url + "/api/visitor/ws")
    for cmd in (
        {"type": "ping", "id": "p1"},
        {"type": "sync", "cursors": {}, "id": "s1"},
        {"type": "message", "chat_id": chat_id, "text": "x", "client_id": "c", "id": "m1"},
        {"type": "start_chat", "name": "A", "text": "x", "id": "st"},
        {"token": v.token, "id": "t1"},
    ):
        assert_ws_error(ws_raw(ws, cmd), "hello_required", ref=cmd["id"])
    assert_ws_error(ws_raw(ws, "{"), "bad_json")
    assert_ws_error(
        ws_raw(ws, {"type": "hello", "token": True, "id": "h"}),
        "invalid_field",
        field="token",
        ref="h",
    )
    assert_ws_error(ws_raw(ws, {"type": "hello", "id": "h2"}), "invalid_field", field="token")
    assert_ws_error(
        ws_raw(ws, {"type": "hello", "token": v.token, "x": 1}), "unknown_field", field="x"
    )
    assert ws.closed is None
    # An unknown token: bad_token, then close 4003.
    assert_ws_error(
        ws_raw(ws, {"type": "hello", "token": "A" * 43, "id": "h3"}), "bad_token", ref="h3"
    )
    assert ws.wait_closed()[0] == 4003
    assert visitor_state(server, v) == before
    # The console socket also wants hello first, and a second hello is not a command.
    bob = server.console("bob")
    cws = WS(server.ws_url + "/api/console/ws", cookie=bob.cookie_header(), origin=server.url)
    assert_ws_error(
        ws_raw(cws, {"type": "accept", "chat_id": chat_id, "id": "a"}), "hello_required", ref="a"
    )
    assert_ws_error(
        ws_raw(cws, {"type": "hello", "cursors": [], "id": "h"}), "invalid_field", field="cursors"
    )
    cws.send({"type": "hello"})
    cws.wait(lambda e: e["type"] == "welcome")
    assert_ws_error(cws.request({"type": "hello"}), "unknown_type")
    alive(cws)
    cws.close()
    assert visitor_state(server, v) == before


# -- commands per socket ------------------------------------------------------------------------


def test_commands_per_socket_are_limited_and_the_socket_stays_open(make_server):
    server = make_server(config={"limits": {"commands_per_socket": "5/10s"}})
    ann = server.visitor()
    ws = ann.connect()
    replies = [ws.request({"type": "ping"}) for _ in range(7)]
    assert [r["type"] for r in replies[:5]] == ["pong"] * 5
    assert replies[6]["error"] == "rate_limited"
    assert replies[6]["limit"] == "commands_per_socket"
    assert ws.closed is None
    r = ws.request({"type": "sync", "cursors": {str(i): 0 for i in range(1, 102)}})
    assert r["type"] == "error"
