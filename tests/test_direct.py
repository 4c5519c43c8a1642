"""Direct messages between operators, in process with the fake clock (docs/PROTOCOL.md §5.6):
one sequence per pair, idempotent sends, clear refusals, resume after a disconnect by the
welcome's summary and the history route, and read cursors that only move forward."""

from __future__ import annotations

import json


def _team(app):
    alice = app.operator("alice", admin=True, display_name="Alice")
    bob = app.operator("bob", display_name="Bob")
    carol = app.operator("carol", display_name="Carol")
    for op in (alice, bob, carol):
        op.connect()
    return alice, bob, carol


def _dm(sender, to, text, client_id):
    cmd = {"type": "direct", "operator_id": to.id, "text": text, "client_id": client_id}
    return sender.send(cmd)


def _directs(op) -> list[dict]:
    return [e for e in op.stream.events if e["type"] == "direct"]


def _history(app, op, other, after=0) -> dict:
    return app.run(app.services.direct.history(op.party, other.id, after))


def test_each_pair_has_its_own_sequence_and_both_sides_get_the_message(app):
    alice, bob, carol = _team(app)
    first = _dm(alice, bob, "Can you take the next German chat?", "a1")["direct"]
    second = _dm(bob, alice, "Sure", "b1")["direct"]
    other = _dm(alice, carol, "Lunch?", "a2")["direct"]
    assert (first["seq"], second["seq"], other["seq"]) == (1, 2, 1)
    assert first["from"] == {"id": alice.id, "name": "Alice"}
    assert first["to"] == {"id": bob.id, "name": "Bob"}
    # Each side sees the conversation under the other operator's id.
    assert first["with"] == bob.id and second["with"] == alice.id
    assert [(e["seq"], e["with"], e["text"]) for e in _directs(bob)] == [
        (1, alice.id, "Can you take the next German chat?"),
        (2, alice.id, "Sure"),
    ]
    assert [(e["seq"], e["with"]) for e in _directs(alice)] == [
        (1, bob.id),
        (2, bob.id),
        (1, carol.id),
    ]
    assert [(e["seq"], e["with"]) for e in _directs(carol)] == [(1, alice.id)]
    # Nobody else hears of it.
    dave = app.operator("dave")
    dave.connect()
    _dm(alice, bob, "One more", "a3")
    assert _directs(dave) == []


def test_a_retry_returns_the_stored_message_and_stores_nothing(app):
    alice, bob, _carol = _team(app)
    sent = _dm(alice, bob, "Hello", "same")["direct"]
    again = _dm(alice, bob, "Hello", "same")["direct"]
    assert again == sent
    assert [m["seq"] for m in _history(app, bob, alice)["messages"]] == [1]
    assert len(_directs(bob)) == 1  # the retry publishes nothing either
    # The same client id from the other side is another message.
    assert _dm(bob, alice, "Hi", "same")["direct"]["seq"] == 2


def test_bad_directs_are_refused_naming_the_field_and_store_nothing(app):
    alice, bob, carol = _team(app)
    app.run(app.services.accounts.update_operator(alice.party, carol.id, {"disabled": True}))
    long = "x" * (app.config.limits_message_chars + 1)
    for cmd, code, field in (
        ({"operator_id": 9999, "text": "Hi", "client_id": "c1"}, "unknown_operator", "operator_id"),
        (
            {"operator_id": carol.id, "text": "Hi", "client_id": "c2"},
            "operator_disabled",
            "operator_id",
        ),
        (
            {"operator_id": alice.id, "text": "Hi", "client_id": "c3"},
            "invalid_field",
            "operator_id",
        ),
        ({"operator_id": bob.id, "text": "   ", "client_id": "c4"}, "invalid_field", "text"),
        ({"operator_id": bob.id, "text": long, "client_id": "c5"}, "too_long", "text"),
        ({"operator_id": bob.id, "text": "Hi"}, "invalid_field", "client_id"),
        ({"operator_id": "2", "text": "Hi", "client_id": "c6"}, "invalid_field", "operator_id"),
    ):
        err = alice.send({"type": "direct", **cmd})
        assert (err["type"], err["error"], err.get("field")) == ("error", code, field), (cmd, err)
    # Reading: beyond the last message, or with nobody.
    _dm(alice, bob, "Hi", "ok")
    for cmd, code, field in (
        ({"operator_id": alice.id, "seq": 2}, "invalid_field", "seq"),
        ({"operator_id": 9999, "seq": 1}, "unknown_operator", "operator_id"),
        ({"operator_id": bob.id, "seq": 1}, "invalid_field", "operator_id"),
        ({"operator_id": alice.id, "seq": 0}, "invalid_field", "seq"),
    ):
        err = bob.send({"type": "direct_read", **cmd})
        assert (err["error"], err.get("field")) == (code, field), (cmd, err)
    # A visitor has no such command.
    ann = app.visitor()
    ann.connect()
    err = ann.send({"type": "direct", "operator_id": bob.id, "text": "Hi", "client_id": "v"})
    assert err["error"] == "unknown_type"
    assert _history(app, bob, alice)["messages"][-1]["text"] == "Hi"
    assert len(_history(app, bob, alice)["messages"]) == 1


def test_a_message_sent_while_away_arrives_once_after_reconnecting(app):
    alice, bob, _carol = _team(app)
    for i in range(3):
        _dm(alice, bob, f"before {i}", f"b{i}")
    old = bob.stream
    seen = [e["seq"] for e in _directs(bob)]
    assert seen == [1, 2, 3]
    bob.disconnect()
    _dm(alice, bob, "while you were away", "away1")
    _dm(alice, bob, "and this", "away2")
    assert [e["seq"] for e in old.events if e["type"] == "direct"] == [1, 2, 3]  # gone
    # Bob reconnects: the welcome says how far each conversation goes...
    bob.connect()
    summary = bob.stream.last("welcome")["directs"]
    assert summary == [
        {
            "with": alice.id,
            "name": "Alice",
            "last_seq": 5,
            "read_seq": 0,
            "their_read_seq": 0,
            "unread": 5,
        }
    ]
    # ...and he fetches what he lacks after his cursor: exactly the two, in order.
    got = _history(app, bob, alice, after=3)
    assert [(m["seq"], m["text"]) for m in got["messages"]] == [
        (4, "while you were away"),
        (5, "and this"),
    ]
    assert got["more"] is False
    # The same after a restart of the server.
    app2 = app.restart()
    bob2 = app2.login("bob")
    bob2.connect()
    assert bob2.stream.last("welcome")["directs"][0]["last_seq"] == 5
    again = app2.run(app2.services.direct.history(bob2.party, alice.id, 3))
    assert [m["seq"] for m in again["messages"]] == [4, 5]


def test_the_read_cursor_moves_forward_only_and_reaches_my_tabs_and_the_sender(app):
    alice, bob, _carol = _team(app)
    for i in range(4):
        _dm(alice, bob, f"m{i}", f"r{i}")
    other_tab = app.login("bob")
    other_tab.connect()
    ack = bob.send({"type": "direct_read", "operator_id": alice.id, "seq": 3})
    assert ack["direct_read"] == {"with": alice.id, "seq": 3}
    assert other_tab.stream.last("direct_read") == {
        "type": "direct_read",
        "with": alice.id,
        "reader": bob.id,
        "seq": 3,
    }
    # Alice gets a read receipt: Bob (the reader) has read their conversation up to 3.
    assert alice.stream.last("direct_read") == {
        "type": "direct_read",
        "with": bob.id,
        "reader": bob.id,
        "seq": 3,
    }
    # Back is no move.
    ack = bob.send({"type": "direct_read", "operator_id": alice.id, "seq": 1})
    assert ack["direct_read"]["seq"] == 3
    bob.connect()
    s = bob.stream.last("welcome")["directs"][0]
    assert (s["read_seq"], s["unread"]) == (3, 1)
    a = alice.connect().last("welcome")["directs"][0]
    assert (a["with"], a["their_read_seq"], a["unread"]) == (bob.id, 3, 0)
    # My own messages never count as unread.
    _dm(bob, alice, "ok", "r9")
    s = bob.connect().last("welcome")["directs"][0]
    assert (s["last_seq"], s["unread"]) == (5, 1)
    assert _history(app, bob, alice)["read_seq"] == 3
    assert _history(app, alice, bob)["their_read_seq"] == 3


def test_direct_messages_reach_a_long_poll_connection(app):
    alice, bob, _carol = _team(app)
    streams = app.services.streams
    conn = app.run(streams.new_poll_conn(bob.party))
    _dm(alice, bob, "Over long-poll", "p1")
    bob.send({"type": "direct_read", "operator_id": alice.id, "seq": 1})
    texts = app.run(streams.poll_collect(conn, {}))
    got = [json.loads(t) for t in texts]
    assert [(e["type"], e["seq"]) for e in got if e["type"].startswith("direct")] == [
        ("direct", 1),
        ("direct_read", 1),
    ]
    conn.close(1000)
