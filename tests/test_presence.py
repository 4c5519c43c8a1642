"""Operators' presence, in-process: the grace after a lost connection, statuses, and what
visitors are told about availability."""

from __future__ import annotations

from conftest import queue_lists, seqs


def _bob_and_carol_online(make_app_in_process, grace: str):
    """An app whose operators go offline ``grace`` after their last connection is lost, and
    Bob and Carol connected to it; returns (app, bob, carol)."""
    app = make_app_in_process({"operators": {"offline_grace": grace}})
    bob = app.operator("bob", display_name="Bob")
    carol = app.operator("carol", display_name="Carol")
    bob.connect()
    carol.connect()
    return app, bob, carol


def test_operator_going_offline_hands_the_chat_to_an_online_colleague(make_app_in_process):
    app, bob, carol = _bob_and_carol_online(make_app_in_process, grace="1s")
    ann = app.visitor()
    ann.connect()
    assert ann.stream.events[0]["online"] is True
    chat_id = ann.start_chat()["chat"]["id"]
    bob.ok({"type": "accept", "chat_id": chat_id})
    assert ann.stream.last("chat_accepted")["operator"]["name"] == "Bob"
    assert not queue_lists(carol.stream.events, chat_id)[-1]

    mark_v, mark_c = len(ann.stream.events), len(carol.stream.events)
    bob.disconnect()
    app.advance(0.9)
    assert not ann.stream.of_type("chat_requeued")
    app.advance(0.2)
    ev = ann.stream.last("chat_requeued")
    assert ev["chat_id"] == chat_id and ev["seq"] == 4
    assert ev["reason"] == "handed_over"
    assert ev["operator"] == {"id": bob.id, "name": "Bob"}
    t = carol.transcript(chat_id)
    assert t["chat"]["status"] == "waiting" and t["chat"]["operator"] is None
    # Another online operator sees it in the queue and the operator list without Bob.
    assert queue_lists(carol.stream.events[mark_c:], chat_id)[-1]
    ops = carol.stream.last("operators")
    assert [o["display_name"] for o in ops["operators"]] == ["Carol"]
    # Carol is still online, so visitors are never told that nobody is.
    assert app.services.presence.any_online() is True

    r = carol.ok({"type": "accept", "chat_id": chat_id})
    assert r["chat"]["operator"]["name"] == "Carol"
    ev = ann.stream.last("chat_accepted")
    assert ev["operator"]["name"] == "Carol" and ev["seq"] == 5
    assert seqs(carol.stream.events, chat_id) == [1, 2, 3, 4, 5]
    r = carol.say(chat_id, "Carol here")
    assert r["type"] == "ack" and r["message"]["seq"] == 6
    assert not [e for e in ann.stream.events[mark_v:] if e["type"] == "availability"]

    # The last operator goes: with nobody to take it, the chat stays hers, pending, and
    # visitors learn nobody is online.
    mark_v = len(ann.stream.events)
    carol.disconnect()
    app.advance(1.1)
    assert len(ann.stream.of_type("chat_requeued")) == 1
    ev = ann.stream.last("chat_pending")
    assert ev["operator"]["name"] == "Carol" and ev["seq"] == 7
    assert ev["reason"] == "operator_offline" and ev["mail"] is False
    (av,) = [e for e in ann.stream.events[mark_v:] if e["type"] == "availability"]
    assert av["online"] is False
    assert app.services.presence.any_online() is False
    late = app.visitor()
    late.connect()
    assert late.stream.events[0]["type"] == "welcome"
    assert late.stream.events[0]["online"] is False


def test_operator_reconnecting_within_the_grace_keeps_the_chat(make_app_in_process):
    app, bob, carol = _bob_and_carol_online(make_app_in_process, grace="5s")
    ann, ben = app.visitor(), app.visitor()
    ann.connect()
    ben.connect()
    ann_chat = ann.start_chat(name="Ann")["chat"]["id"]
    ben_chat = ben.start_chat(name="Ben")["chat"]["id"]
    bob.ok({"type": "accept", "chat_id": ann_chat})
    carol.ok({"type": "accept", "chat_id": ben_chat})

    # Bob's connection drops and he is back at once.
    bob.disconnect()
    app.advance(1)
    stream = bob.connect(cursors={ann_chat: 1})
    welcome = stream.events[0]
    assert welcome["type"] == "welcome"
    assert [(c["id"], c["status"]) for c in welcome["chats"]] == [(ann_chat, "active")]
    assert seqs(stream.events, ann_chat) == [2, 3]
    # Carol drops after Bob did and does not come back; once her grace is over, Bob's (had it
    # still been running) would be over too.
    carol.disconnect()
    app.advance(5.5)
    ev = ben.stream.last("chat_requeued")
    assert ev["operator"]["name"] == "Carol" and ev["reason"] == "handed_over"

    assert not [e for e in ann.stream.events if e["type"] in ("chat_requeued", "availability")]
    t = bob.transcript(ann_chat)
    assert t["chat"]["status"] == "active" and t["chat"]["operator"]["name"] == "Bob"
    assert [e["type"] for e in t["events"]] == ["chat_started", "message", "chat_accepted"]
    assert bob.say(ann_chat, "still here")["type"] == "ack"
    assert ann.stream.last("message")["text"] == "still here"


def test_status_offline_keeps_the_chat_pending_and_away_takes_no_new_chats(app):
    bob, ann, chat_id = app.bob_answers_ann()
    assert ann.stream.events[0]["online"] is True  # the welcome

    # offline, with nobody else online: the chat is not requeued for nobody; it stays Bob's,
    # pending, at once, with no grace; visitors see nobody.
    mark = len(ann.stream.events)
    r = bob.ok({"type": "status", "status": "offline"})
    assert r["status"] == "offline"
    assert not ann.stream.of_type("chat_requeued")
    ev = ann.stream.last("chat_pending")
    assert ev["reason"] == "operator_offline" and ev["operator"]["name"] == "Bob"
    assert [e["online"] for e in ann.stream.events[mark:] if e["type"] == "availability"] == [False]
    chat = bob.transcript(chat_id)["chat"]
    assert chat["status"] == "pending" and chat["operator"]["name"] == "Bob"
    assert not queue_lists(bob.stream.events, chat_id)[-1]
    r = bob.send({"type": "accept", "chat_id": chat_id})
    assert r["type"] == "error" and r["error"] == "status_not_online"
    assert bob.transcript(chat_id)["chat"]["status"] == "pending"

    # online again: available, and his reply makes the chat active again.
    mark = len(ann.stream.events)
    bob.ok({"type": "status", "status": "online"})
    assert [e["online"] for e in ann.stream.events[mark:] if e["type"] == "availability"] == [True]
    assert bob.say(chat_id, "Back now")["type"] == "ack"
    assert ann.stream.last("chat_resumed")["operator"]["name"] == "Bob"
    assert bob.transcript(chat_id)["chat"]["status"] == "active"

    # away: counts as offline for visitors, keeps its chats, accepts no new ones.
    mark = len(ann.stream.events)
    bmark = len(bob.stream.events)
    r = bob.ok({"type": "status", "status": "away"})
    assert r["status"] == "away"
    assert [e["online"] for e in ann.stream.events[mark:] if e["type"] == "availability"] == [False]
    ops = [e for e in bob.stream.events[bmark:] if e["type"] == "operators"][-1]
    assert [(o["display_name"], o["status"]) for o in ops["operators"]] == [("Bob", "away")]
    assert app.services.presence.any_online() is False
    ben = app.visitor()
    ben.connect()
    assert ben.stream.events[0]["online"] is False
    ben_chat = ben.start_chat(name="Ben")["chat"]["id"]
    r = bob.send({"type": "accept", "chat_id": ben_chat})
    assert r["type"] == "error" and r["error"] == "status_not_online"
    assert bob.transcript(ben_chat)["chat"]["status"] == "waiting"
    # The chat he has stays his, and he can still write in it.
    assert bob.transcript(chat_id)["chat"]["status"] == "active"
    assert bob.say(chat_id, "one moment")["type"] == "ack"
    assert not [e for e in ann.stream.events[mark:] if e["type"] == "chat_requeued"]
    # The status is what his session reports (GET /api/console/session), also after a restart.
    assert app.services.presence.status_of(bob.id) == "away"
    assert app.run(app.storage.accounts.operator(bob.id)).status == "away"
