"""The queue in-process: waiting, accepting, timing out, requeuing when an operator leaves."""

from __future__ import annotations

import uuid


def start(visitor, text="Hello, I need help", name="Ann") -> dict:
    ack = visitor.ok(
        {"type": "start_chat", "name": name, "text": text, "client_id": uuid.uuid4().hex}
    )
    return ack["chat"]


def test_a_chat_nobody_answers_is_missed_after_the_queue_timeout(app):
    bob = app.operator("bob")
    bob.connect()
    bob.ok({"type": "status", "status": "away"})
    ann = app.visitor()
    ann.connect()
    chat = start(ann)
    assert bob.stream.last("queue")["chats"][0]["id"] == chat["id"]
    app.advance(119)
    assert not ann.stream.of_type("chat_missed")
    app.advance(2)
    missed = ann.stream.last("chat_missed")
    assert missed["reason"] == "queue_timeout" and missed["chat_id"] == chat["id"]
    assert bob.stream.last("queue")["chats"] == []
    # The visitor may still leave a message about it.
    reply = ann.ok(
        {"type": "leave_message", "name": "Ann", "email": "ann@example.com", "text": "Call me"}
    )
    assert reply["offline_message"]["id"]


def test_an_operator_gone_past_the_grace_returns_the_chat_to_the_queue(app):
    bob = app.operator("bob")
    bob.connect()
    ann = app.visitor()
    ann.connect()
    chat = start(ann)
    bob.ok({"type": "accept", "chat_id": chat["id"]})
    bob.disconnect()
    app.advance(29)
    assert not ann.stream.of_type("chat_requeued")
    app.advance(2)
    requeued = ann.stream.last("chat_requeued")
    assert requeued["reason"] == "operator_offline" and requeued["operator"]["name"] == "Bob"
    carol = app.operator("carol")
    carol.connect()
    assert [c["id"] for c in carol.stream.last("queue")["chats"]] == [chat["id"]]


def test_reconnecting_within_the_grace_keeps_the_chat(app):
    bob = app.operator("bob")
    bob.connect()
    ann = app.visitor()
    ann.connect()
    chat = start(ann)
    bob.ok({"type": "accept", "chat_id": chat["id"]})
    bob.disconnect()
    app.advance(20)
    bob.connect()
    app.advance(60)
    assert not ann.stream.of_type("chat_requeued")
    bob.ok({"type": "message", "chat_id": chat["id"], "text": "Still here", "client_id": "m1"})
    assert ann.stream.last("message")["text"] == "Still here"
