"""Regression tests for holes found in review: each was reproduced against the real server."""

import json
import threading
import time

import requests
import websocket
from conftest import TIMEOUT, wait_for
from test_mail import smtp  # noqa: F401  (the real SMTP server fixture)
from test_monitor import row_of, track


def test_long_poll_never_replays_another_visitors_chat(server):
    victim = server.visitor()
    victim.connect()
    secret_chat = victim.start_chat("my card number is 1234", name="Victim")["chat"]["id"]
    mallory = server.visitor()
    p = mallory.poller()
    p.cursors = {str(secret_chat): 1, "999": 1}
    first = p.poll()
    assert {e["chat_id"] for e in first if e["type"] == "reset"} == {secret_chat, 999}
    p.cursors = {}
    p.events = []
    # Something for the conn, so the poll answers at once.
    mallory.send({"type": "start_chat", "name": "M", "text": "hi", "client_id": "m1"})
    p.poll()
    assert not [e for e in p.events if e.get("chat_id") == secret_chat]
    assert "1234" not in json.dumps(p.events)


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


def test_encoded_words_cannot_smuggle_headers_into_the_mail(make_server, smtp):  # noqa: F811
    server = make_server(
        config={
            "mail": {
                "smtp_host": "127.0.0.1",
                "smtp_port": str(smtp.port),
                "smtp_security": "none",
                "to_address": "support@shop.example",
            }
        }
    )
    ann = server.visitor()
    r = ann.send(
        {
            "type": "leave_message",
            "name": "=?utf-8?q?=0D=0ABcc:_x@evil.example?=",
            "email": "ann@example.org",
            "text": "hi",
        }
    )
    assert r.status_code == 200, r.text
    wait_for(lambda: smtp.messages, what="the mail")
    _, rcpt, msg = smtp.messages[0]
    assert rcpt == ["support@shop.example"] and msg["Bcc"] is None
    # Addresses that cannot be mailed are refused before anything is stored.
    for addr in ["é@example.com", "a@[x.com", "a,b@example.com"]:
        r = ann.send({"type": "leave_message", "name": "Ann", "email": addr, "text": "hi"})
        assert r.status_code == 400 and r.json()["field"] == "email", (addr, r.text)
    server.create_operator("admin", admin=True)
    admin = server.console("admin")
    assert len(admin.get("/api/console/offline-messages").json()["messages"]) == 1
    # A retry with the same client id stores nothing new.
    for _ in range(2):
        r = ann.send(
            {
                "type": "leave_message",
                "name": "Ann",
                "email": "ann@example.org",
                "text": "again",
                "client_id": "lm-1",
            }
        )
        assert r.status_code == 200
    assert len(admin.get("/api/console/offline-messages").json()["messages"]) == 2


def test_a_second_poll_on_the_same_conn_is_answered_promptly(server):
    bob = server.console("bob")
    bob_ws = bob.connect()
    ann = server.visitor()
    ann.connect()
    chat_id = ann.start_chat("hi")["chat"]["id"]
    bob_ws.request({"type": "accept", "chat_id": chat_id})
    p = ann.poller()
    p.poll()
    answers = []

    def poll():
        r = ann.http.post(p.url, json={"conn": p.conn, "cursors": p.cursors}, timeout=40)
        answers.append((time.monotonic(), r.json()["events"]))

    a = threading.Thread(target=poll)
    a.start()
    wait_for(lambda: server.metrics()["held_polls"] == 1, what="the first poll held")
    b = threading.Thread(target=poll)
    b.start()
    wait_for(lambda: answers, what="the first poll to give way")
    sent = time.monotonic()
    bob_ws.request({"type": "message", "chat_id": chat_id, "text": "x", "client_id": "o1"})
    b.join(TIMEOUT)
    a.join(TIMEOUT)
    assert len(answers) == 2
    got = [evs for _, evs in answers if any(e.get("text") == "x" for e in evs)]
    assert got, answers
    assert max(t for t, _ in answers) - sent < 5  # not held for the 25 s poll timeout


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


def test_a_restart_continues_the_visit(server):
    bob = server.console("bob")
    ann = server.visitor()
    track(server, ann.token, "https://shop.example/a", "A")
    ann.connect()
    wait_for(
        lambda: any(
            v["id"] == ann.visitor_id for v in bob.get("/api/console/visitors").json()["visitors"]
        )
    )
    server.restart()
    ann.connect()
    track(server, ann.token, "https://shop.example/b", "B")
    bob = server.console("bob")
    ws = bob.connect()
    row = wait_for(
        lambda: (r := row_of(ws, ann.visitor_id)) and r["pages"] == 2 and r,
        what="the same visit, two pages",
    )
    assert row["visit_number"] == 1 and row["landing_url"] == "https://shop.example/a"


def test_metrics_are_not_served_through_a_proxy(server):
    r = requests.get(server.url + "/api/metrics", timeout=TIMEOUT)
    assert r.status_code == 200 and "loop_lag" in r.json()
    r = requests.get(
        server.url + "/api/metrics", headers={"X-Forwarded-For": "203.0.113.5"}, timeout=TIMEOUT
    )
    assert r.status_code == 404


def test_starting_a_chat_supersedes_a_pending_invitation(server):
    bob = server.console("bob")
    bob_ws = bob.connect()
    ann = server.visitor()
    vws = ann.connect()
    wait_for(lambda: row_of(bob_ws, ann.visitor_id), what="row")
    inv = bob_ws.request({"type": "invite", "visitor_id": ann.visitor_id})["invitation"]
    ann.start_chat("I'd rather ask myself")
    ev = vws.wait(lambda e: e["type"] == "invitation_answered")
    assert ev == {"type": "invitation_answered", "id": inv["id"], "state": "superseded"}
    vws2 = ann.connect()
    vws2.request({"type": "ping"})
    assert not [e for e in vws2.events if e["type"] == "invitation"]
    r = vws.request({"type": "accept_invitation", "invitation_id": inv["id"]})
    assert r["error"] == "not_found"
