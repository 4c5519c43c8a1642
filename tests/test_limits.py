"""Rate limits as the domain applies them, in-process: each refuses with ``rate_limited``
naming its setting and when to retry, stores nothing, keeps other parties' allowances apart,
and gives the allowance back as the clock moves. (The same errors over HTTP and WebSocket, and
the per-address request and socket limits, are in test_bad_input.py.)"""

from __future__ import annotations


def refused(reply: dict, limit: str) -> dict:
    assert reply["type"] == "error" and reply["error"] == "rate_limited", reply
    assert reply["limit"] == limit and reply["retry_after"] > 0, reply
    return reply


def test_messages_per_visitor(make_app_in_process):
    app = make_app_in_process(
        {"limits": {"visitor_messages": "3/1h"}, "chat": {"queue_timeout": "2h"}}
    )
    ann = app.visitor()
    ann.connect()
    chat_id = ann.start_chat("one")["chat"]["id"]
    first = ann.say(chat_id, "two", client_id="c2")
    assert ann.say(chat_id, "three")["type"] == "ack"
    err = refused(ann.say(chat_id, "four"), "visitor_messages")
    leave = {"type": "leave_message", "name": "Ann", "email": "ann@example.com", "text": "x"}
    refused(ann.send(leave), "visitor_messages")
    assert ann.transcript(chat_id)["chat"]["last_seq"] == 4
    assert app.inbox() == []
    # A retry of a stored message is not a new message: it still returns the original.
    assert ann.say(chat_id, "two", client_id="c2")["message"] == first["message"]
    # Another visitor has its own allowance.
    ben = app.visitor()
    ben.connect()
    ben.start_chat("mine")
    # The allowance comes back with time.
    app.advance(err["retry_after"])
    assert ann.say(chat_id, "four")["type"] == "ack"
    refused(ann.say(chat_id, "five"), "visitor_messages")


def test_new_chats_per_address(make_app_in_process):
    app = make_app_in_process({"limits": {"chats_per_ip": "2/1h"}})
    for _ in range(2):
        v = app.visitor(ip="198.51.100.1")
        v.connect()
        v.start_chat()
    third = app.visitor(ip="198.51.100.1")
    third.connect()
    start = {"type": "start_chat", "name": "Ann", "text": "Hi", "client_id": "third"}
    err = refused(third.send(start), "chats_per_ip")
    assert app.run(app.services.transcripts.visitor_list(third.party)) == []
    elsewhere = app.visitor(ip="198.51.100.2")
    elsewhere.connect()
    elsewhere.start_chat()
    app.advance(err["retry_after"])
    assert third.ok(start)["chat"]["last_seq"] == 2


def test_page_views_per_visitor(make_app_in_process):
    app = make_app_in_process({"monitor": {"beacons_per_visitor": "3/1m"}})
    ann = app.visitor()
    for n in range(3):
        ann.track(f"https://shop.example/{n}")
    body = {"token": ann.token, "url": "https://shop.example/3"}
    err = app.error(app.services.track(body, "127.0.0.1", "test"))
    assert err["status"] == 429
    refused(dict(err, type="error"), "beacons_per_visitor")
    assert ann.row()["pages"] == 3 and ann.row()["url"] == "https://shop.example/2"
    app.advance(err["retry_after"])
    ann.track("https://shop.example/3")
    assert ann.row()["pages"] == 4


def test_invitations_per_operator(make_app_in_process):
    app = make_app_in_process({"monitor": {"invitations_per_operator": "2/1m"}})
    bob = app.operator("bob")
    bob.connect()
    carol = app.operator("carol")
    carol.connect()
    visitors = [app.visitor() for _ in range(4)]
    for v in visitors:
        v.connect()
    for v in visitors[:2]:
        bob.ok({"type": "invite", "visitor_id": v.id})
    err = refused(
        bob.send({"type": "invite", "visitor_id": visitors[2].id}), "invitations_per_operator"
    )
    assert not visitors[2].stream.of_type("invitation")
    # Another operator has an allowance of its own.
    carol.ok({"type": "invite", "visitor_id": visitors[3].id})
    app.advance(err["retry_after"])
    bob.ok({"type": "invite", "visitor_id": visitors[2].id})
    assert visitors[2].stream.last("invitation")
