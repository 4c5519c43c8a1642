"""The queue, in-process: waiting, accepting (one winner), timing out, requeuing when an
operator leaves, and timeouts that outlive a restart."""

from __future__ import annotations

import asyncio
import random

from conftest import queue_lists, seqs


def test_a_chat_nobody_answers_is_missed_after_the_queue_timeout(app):
    bob = app.operator("bob")
    bob.connect()
    bob.ok({"type": "status", "status": "away"})
    ann = app.visitor()
    ann.connect()
    chat = ann.start_chat()["chat"]
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


def test_queue_timeout_offers_the_offline_form(make_app_in_process):
    app = make_app_in_process({"chat": {"queue_timeout": "1s"}})
    bob = app.operator("bob", display_name="Bob")
    bob.connect()
    ann = app.visitor()
    ann.connect()
    chat_id = ann.start_chat("Is anyone there?")["chat"]["id"]
    assert queue_lists(bob.stream.events, chat_id)[-1] is True

    app.advance(1.5)
    missed = ann.stream.last("chat_missed")
    assert missed["chat_id"] == chat_id and missed["reason"] == "queue_timeout"
    assert missed["seq"] == 3
    # The operators' queue no longer lists it.
    listed = queue_lists(bob.stream.events, chat_id)
    assert listed.index(True) < len(listed) - 1 and listed[-1] is False
    t = ann.transcript(chat_id)
    assert t["chat"]["status"] == "missed" and t["chat"]["last_seq"] == 3
    assert t["chat"]["closed_at"] is not None
    assert [e["type"] for e in t["events"]] == ["chat_started", "message", "chat_missed"]
    # Too late to accept it or to write to it.
    r = bob.send({"type": "accept", "chat_id": chat_id})
    assert r["type"] == "error" and r["error"] == "chat_taken"
    r = ann.say(chat_id, "hello?")
    assert r["type"] == "error" and r["error"] == "chat_closed"

    # The visitor leaves a message instead, with what they typed, following the missed chat.
    r = ann.ok(
        {
            "type": "leave_message",
            "name": "Ann",
            "email": "ann@example.com",
            "text": "Is anyone there?",
            "chat_id": chat_id,
            "page_url": "https://shop.example/x",
        }
    )
    msg_id = r["offline_message"]["id"]
    (msg,) = [m for m in app.inbox() if m["id"] == msg_id]
    assert msg["chat_id"] == chat_id and msg["text"] == "Is anyone there?"
    assert msg["name"] == "Ann" and msg["email"] == "ann@example.com" and msg["read"] is False
    assert msg["page_url"] == "https://shop.example/x"
    # The operators are told of it as it arrives.
    assert bob.stream.last("offline_message")["message"]["id"] == msg_id
    # The missed chat is over: a new one may be started.
    assert ann.start_chat("me again")["chat"]["id"] != chat_id


def test_queue_timeout_fires_after_a_restart(make_app_in_process):
    app = make_app_in_process({"chat": {"queue_timeout": "2s"}})
    ann = app.visitor()
    ann.connect()
    chat_id = ann.start_chat("anyone?")["chat"]["id"]
    app.advance(1)
    app = app.restart()
    # The server stopped while the chat was still waiting.
    assert app.run(app.storage.chats.chat(chat_id)).status == "waiting"

    ann = app.as_visitor(ann.token)
    ann.connect(cursors={chat_id: 2})
    assert not ann.stream.of_type("chat_missed")
    app.advance(1.5)
    missed = ann.stream.last("chat_missed")
    assert missed["chat_id"] == chat_id and missed["seq"] == 3
    assert missed["reason"] == "queue_timeout"
    assert ann.transcript(chat_id)["chat"]["status"] == "missed"


def test_accept_race_exactly_one_operator_wins(app):
    bob, carol = (
        app.operator("bob", display_name="Bob"),
        app.operator("carol", display_name="Carol"),
    )
    bob.connect()
    carol.connect()
    names = {"bob": "Bob", "carol": "Carol"}
    parties = {"bob": bob, "carol": carol}
    chats = []
    for n in range(20):
        v = app.visitor()
        v.connect()
        chats.append((v, v.start_chat(name=f"Visitor {n}")["chat"]["id"]))

    rng = random.Random(20)
    won: dict[str, list[int]] = {"bob": [], "carol": []}
    commands = app.services.commands
    for visitor, chat_id in chats:
        order = ["bob", "carol"]
        rng.shuffle(order)

        async def race(order=order, chat_id=chat_id):
            cmd = {"type": "accept", "chat_id": chat_id}
            replies = await asyncio.gather(
                *(commands.dispatch(parties[w].party, parties[w].stream, cmd) for w in order)
            )
            return dict(zip(order, replies, strict=True))

        replies = app.run(race())
        app.settle()
        winners = [w for w, r in replies.items() if r["type"] == "ack"]
        losers = [w for w, r in replies.items() if r["type"] == "error"]
        assert len(winners) == 1 and len(losers) == 1, replies
        winner, loser = winners[0], losers[0]
        assert replies[winner]["chat"]["status"] == "active"
        assert replies[winner]["chat"]["operator"]["name"] == names[winner]
        assert replies[loser]["error"] == "chat_taken"
        assert replies[loser]["chat_id"] == chat_id
        won[winner].append(chat_id)

        # Exactly one chat_accepted is stored, naming the winner; the visitor is told once.
        events = bob.transcript(chat_id)["events"]
        accepted = [e for e in events if e["type"] == "chat_accepted"]
        assert len(accepted) == 1 and accepted[0]["operator"]["name"] == names[winner]
        assert [e["seq"] for e in events] == [1, 2, 3]
        assert visitor.stream.last("chat_accepted")["operator"]["name"] == names[winner]

    assert len(won["bob"]) + len(won["carol"]) == 20
    for who, party in parties.items():
        mine = set(won[who])
        for _, chat_id in chats:
            got = seqs(party.stream.events, chat_id)
            # The winner's stream got the whole chat; the loser's got nothing of it.
            assert got == ([1, 2, 3] if chat_id in mine else []), (who, chat_id, got)
    for visitor, _ in chats:
        assert len(visitor.stream.of_type("chat_accepted")) == 1


def _bob_leaves_anns_chat(app):
    """Bob accepts Ann's chat, then his console goes away; returns (bob, ann, chat id)."""
    bob, ann, chat_id = app.bob_answers_ann()
    bob.disconnect()
    return bob, ann, chat_id


def test_an_operator_gone_past_the_grace_hands_the_chat_over_at_the_head_of_the_queue(app):
    carol = app.operator("carol", display_name="Carol")
    carol.connect()
    _bob, ann, chat_id = _bob_leaves_anns_chat(app)
    newer = app.visitor()
    newer.connect()
    newer_chat = newer.start_chat(name="Newer")["chat"]
    app.advance(29)
    assert not ann.stream.of_type("chat_requeued")
    app.advance(2)
    requeued = ann.stream.last("chat_requeued")
    assert requeued["reason"] == "handed_over" and requeued["operator"]["name"] == "Bob"
    # Handed over: first in the queue, ahead of a chat that waited longer, marked "from Bob".
    queue = carol.stream.last("queue")["chats"]
    assert [c["id"] for c in queue] == [chat_id, newer_chat["id"]]
    assert queue[0]["handed_over_by"]["name"] == "Bob" and "handed_over_by" not in queue[1]
    assert queue[0]["answered"] is True and queue[1]["answered"] is False


def test_an_operator_gone_past_the_grace_with_nobody_online_keeps_the_chat_pending(app):
    _bob, ann, chat_id = _bob_leaves_anns_chat(app)
    app.advance(31)
    assert not ann.stream.of_type("chat_requeued")
    assert ann.stream.last("chat_pending")["operator"]["name"] == "Bob"
    carol = app.operator("carol")
    carol.connect()
    assert carol.stream.last("queue")["chats"] == []
    assert carol.transcript(chat_id)["chat"]["status"] == "pending"


def test_reconnecting_within_the_grace_keeps_the_chat(app):
    bob, ann, chat_id = _bob_leaves_anns_chat(app)
    app.advance(20)
    bob.connect()
    app.advance(60)
    assert not ann.stream.of_type("chat_requeued")
    bob.ok({"type": "message", "chat_id": chat_id, "text": "Still here", "client_id": "m1"})
    assert ann.stream.last("message")["text"] == "Still here"
