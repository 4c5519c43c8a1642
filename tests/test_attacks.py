"""What an attacker tried, over the wire: slow bodies, framing, foreign origins,
odd paths, floods of offline messages from many addresses, and text that is not Unicode."""

from __future__ import annotations

import json
import socket
import sqlite3

import pytest
import requests
from conftest import TIMEOUT, WS


def _raw(server, head: bytes, body: bytes = b"") -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=TIMEOUT)
    sock.sendall(head + body)
    return sock


def _read_all(sock: socket.socket) -> bytes:
    out = b""
    while chunk := sock.recv(65536):
        out += chunk
    sock.close()
    return out


def test_a_body_sent_slowly_is_cut_off(make_server):
    s = make_server({"limits": {"body_timeout": "1s"}})
    head = (
        b"POST /api/visitor/token HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Content-Length: 100\r\n\r\n"
    )
    sock = _raw(s, head, b"{")
    # The server closes the connection by itself once the body timeout passes (the socket's
    # own timeout, TIMEOUT, is far longer: a server that waited would fail this test).
    answer = _read_all(sock)
    assert answer == b"" or answer.startswith(b"HTTP/1.1 4"), answer[:80]
    assert requests.get(s.url + "/api/status", timeout=TIMEOUT).status_code == 200


def test_an_oversized_body_is_refused_from_its_length_before_it_is_sent(make_server):
    s = make_server()
    for length in (64 * 1024 + 1, 10 * 1024 * 1024, 10**12):
        head = (
            b"POST /api/visitor/token HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Content-Length: " + str(length).encode() + b"\r\n\r\n"
        )
        sock = _raw(s, head, b"{")  # one byte of it: the answer comes from the headers alone
        answer = b""
        while b"\r\n\r\n" not in answer or not answer.rstrip().endswith(b"}"):
            chunk = sock.recv(65536)
            assert chunk, answer
            answer += chunk
        sock.close()
        status, _, rest = answer.partition(b"\r\n")
        assert status == b"HTTP/1.1 413 Payload Too Large", answer[:200]
        headers, _, body = rest.partition(b"\r\n\r\n")
        assert b"application/json" in headers and b"nosniff" in headers.lower()
        error = json.loads(body)
        assert error["error"] == "body_too_large" and error["limit"] == "max_body"
        assert str(length) in error["message"]
    # A whole oversized body sent by an ordinary client gets the same answer, not a reset.
    r = requests.post(s.url + "/api/visitor/token", data=b"x" * (2 * 1024 * 1024), timeout=TIMEOUT)
    assert r.status_code == 413 and r.json()["error"] == "body_too_large"
    # The server serves on.
    assert requests.post(s.url + "/api/visitor/token", json={}, timeout=TIMEOUT).status_code == 201


def test_pages_say_who_may_frame_them_and_send_no_referrer(make_server):
    s = make_server({"widget": {"allowed_origins": "https://shop.example"}})
    console = requests.get(s.url + "/console/", timeout=TIMEOUT)
    csp = console.headers["Content-Security-Policy"]
    assert "frame-ancestors 'none'" in csp and "script-src 'self'" in csp
    assert console.headers["X-Frame-Options"] == "DENY"
    assert console.headers["Referrer-Policy"] == "same-origin"
    assert console.headers["X-Content-Type-Options"] == "nosniff"
    chat = requests.get(s.url + "/chat", timeout=TIMEOUT)
    assert "frame-ancestors 'self' https://shop.example" in chat.headers["Content-Security-Policy"]
    assert chat.headers["Referrer-Policy"] == "no-referrer"


def test_the_console_socket_wants_exactly_its_own_origin(server):
    bob = server.console("bob")
    cookie = bob.cookie_header()
    url = server.ws_url + "/api/console/ws"
    for kwargs in (
        {"suppress_origin": True},
        {"origin": f"https://127.0.0.1:{server.port}"},
        {"origin": f"http://127.0.0.1:{server.port + 1}"},
    ):
        with pytest.raises(Exception) as info:
            WS(url, cookie=cookie, **kwargs)
        assert getattr(info.value, "status_code", None) == 403, kwargs
    ws = bob.connect()
    assert ws.events[0]["type"] == "welcome"


def test_nul_in_a_static_path_is_not_found(server):
    for path in ("/assets/%00.js", "/demo/index.html%00", "/assets/widget/chat.js%00"):
        r = requests.get(server.url + path, timeout=TIMEOUT)
        assert r.status_code == 404, (path, r.status_code)
    assert "server_error" not in "".join(server.log_lines)
    assert not any("Traceback" in line for line in server.log_lines)


def test_the_socket_url_answers_plain_requests_with_json(server):
    r = requests.get(server.url + "/api/visitor/ws", timeout=TIMEOUT)
    assert r.status_code == 400
    assert r.headers["Content-Type"].startswith("application/json")
    assert r.headers["X-Content-Type-Options"] == "nosniff"
    assert r.json()["error"] == "bad_request"


def test_offline_messages_are_limited_for_the_whole_site(make_server):
    s = make_server({"limits": {"offline_messages": "3/1h"}})
    answers = []
    for i in range(4):  # four visitors (the per-address limit is generous in tests)
        v = s.visitor()
        answers.append(
            v.send(
                {
                    "type": "leave_message",
                    "name": f"Spammer {i}",
                    "email": f"s{i}@example.com",
                    "text": "Buy now",
                }
            )
        )
    assert [a.status_code for a in answers] == [200, 200, 200, 429]
    err = answers[-1].json()
    assert err["error"] == "rate_limited" and err["limit"] == "offline_messages"
    db = sqlite3.connect(s.data_dir / "cutelive.db")
    try:
        assert db.execute("SELECT COUNT(*) FROM offline_message").fetchone()[0] == 3
    finally:
        db.close()


def test_beacons_with_text_that_is_not_unicode_are_refused(server):
    v = server.visitor()
    body = '{"token": "TOKEN", "url": "https://shop.example/", "title": "bad \\ud800 title"}'
    body = body.replace("TOKEN", v.token)
    r = requests.post(
        server.url + "/api/visitor/track",
        data=body.encode(),
        headers={"Content-Type": "text/plain"},
        timeout=TIMEOUT,
    )
    assert r.status_code == 400 and r.json()["field"] == "title", r.text


def test_visitor_tokens_are_taken_exactly_as_issued(server):
    v = server.visitor()
    padded = requests.get(
        server.url + "/api/visitor/chats",
        headers={"Authorization": f"Bearer  {v.token} "},
        timeout=TIMEOUT,
    )
    assert padded.status_code == 401 and padded.json()["error"] == "bad_token"
    ws = WS(server.ws_url + "/api/visitor/ws")
    ws.send({"type": "hello", "token": f" {v.token}"})
    assert ws.wait(lambda e: e["type"] == "error")["error"] == "bad_token"
    assert ws.wait_closed()[0] == 4003
    assert (
        requests.get(
            server.url + "/api/visitor/chats",
            headers={"Authorization": f"Bearer {v.token}"},
            timeout=TIMEOUT,
        ).status_code
        == 200
    )
