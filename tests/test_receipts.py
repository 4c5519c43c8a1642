"""Receipts and the typing preview (docs/PROTOCOL.md §5.7), in-process: read cursors move
forward only, reach both parties in their own numbering, survive a reconnect, and the
visitor's text reaches operators only when the site switched the preview on."""


def _chat(app):
    return app.bob_answers_ann("Hello there")


def test_read_cursors_move_forward_and_reach_both_parties(app):
    bob, ann, chat_id = _chat(app)
    sent = bob.say(chat_id, "How can I help?")["message"]["seq"]  # 4
    # The visitor's client got it (delivered), then saw it (read).
    ack = ann.ok({"type": "receipt", "chat_id": chat_id, "delivered": sent})
    assert ack["receipts"]["visitor"] == {"delivered": sent, "read": 0}
    ev = bob.stream.last("receipt")
    assert ev == {
        "type": "receipt",
        "chat_id": chat_id,
        "party": "visitor",
        "delivered": sent,
        "read": 0,
    }
    ann.ok({"type": "receipt", "chat_id": chat_id, "read": sent})
    assert bob.stream.last("receipt")["read"] == sent
    # The visitor's other tabs learn it too (the event goes to the visitor's topic).
    assert ann.stream.last("receipt") == dict(ev, read=sent)
    # A lower value changes nothing and sends nothing.
    before = len(bob.stream.of_type("receipt"))
    ack = ann.ok({"type": "receipt", "chat_id": chat_id, "read": 1})
    assert ack["receipts"]["visitor"] == {"delivered": sent, "read": sent}
    assert len(bob.stream.of_type("receipt")) == before
    # The operator reads the visitor's reply.
    reply = ann.say(chat_id, "A refund, please")["message"]["seq"]
    bob.ok({"type": "receipt", "chat_id": chat_id, "read": reply})
    got = ann.stream.last("receipt")
    assert got["party"] == "operator" and got["read"] == reply and got["delivered"] == reply


def test_receipts_are_refused_beyond_the_chat_and_for_other_peoples_chats(app):
    bob, ann, chat_id = _chat(app)
    last = ann.transcript(chat_id)["chat"]["last_seq"]
    err = ann.send({"type": "receipt", "chat_id": chat_id, "read": last + 1})
    assert err["error"] == "invalid_field" and err["field"] == "read" and err["limit"] == last
    assert ann.send({"type": "receipt", "chat_id": chat_id})["error"] == "invalid_field"
    assert ann.send({"type": "receipt", "chat_id": chat_id, "read": 0})["error"] == "invalid_field"
    # Another visitor's chat is missing; a colleague's chat is not theirs to mark.
    eve = app.visitor()
    eve.connect()
    assert eve.send({"type": "receipt", "chat_id": chat_id, "read": 1})["error"] == "not_found"
    carol = app.operator("carol", display_name="Carol")
    carol.connect()
    assert carol.send({"type": "receipt", "chat_id": chat_id, "read": 1})["error"] == "forbidden"
    assert ann.transcript(chat_id)["chat"]["receipts"]["visitor"] == {"delivered": 0, "read": 0}


def test_receipts_survive_a_reconnect_in_each_partys_numbering(app):
    """With an internal note in the chat the two numberings differ: each party gets the
    cursors in its own, in the welcome and the transcript, after reconnecting."""
    bob, ann, chat_id = _chat(app)
    bob.ok({"type": "note", "chat_id": chat_id, "text": "VIP", "client_id": "n1"})  # seq 4
    msg = bob.say(chat_id, "Hi Ann")["message"]  # seq 5; the visitor's 4
    assert msg["seq"] == 5
    seen = ann.stream.last("message")["seq"]
    assert seen == 4
    ann.ok({"type": "receipt", "chat_id": chat_id, "read": seen})
    assert bob.stream.last("receipt")["read"] == 5
    ann.disconnect()
    bob.disconnect()
    again = ann.connect()
    welcome = again.of_type("welcome")[0]
    (summary,) = [c for c in welcome["chats"] if c["id"] == chat_id]
    assert summary["receipts"]["visitor"] == {"delivered": 4, "read": 4}
    bob_again = bob.connect()
    (summary,) = [c for c in bob_again.of_type("welcome")[0]["chats"] if c["id"] == chat_id]
    assert summary["receipts"]["visitor"] == {"delivered": 5, "read": 5}
    assert bob.transcript(chat_id)["chat"]["receipts"]["visitor"]["read"] == 5
    # The operator reads up to the note's seq: the visitor sees its own number for it.
    ann_msg = ann.say(chat_id, "Thanks")["message"]["seq"]  # the visitor's 5, the chat's 6
    bob.ok({"type": "receipt", "chat_id": chat_id, "read": 6})
    assert ann.stream.last("receipt")["read"] == ann_msg == 5


def test_the_typing_preview_is_off_by_default(app):
    bob, ann, chat_id = _chat(app)
    assert ann.stream.of_type("welcome")[0]["typing_preview"] is False
    ann.ok({"type": "typing", "chat_id": chat_id, "typing": True, "text": "my card is 4111"})
    ev = bob.stream.last("typing")
    assert ev["typing"] is True and "text" not in ev
    # Operators never send it.
    err = bob.send({"type": "typing", "chat_id": chat_id, "typing": True, "text": "x"})
    assert err["error"] == "unknown_field" and err["field"] == "text"


def test_the_typing_preview_when_switched_on(make_app_in_process):
    app = make_app_in_process({"chat": {"typing_preview": "yes"}})
    bob, ann, chat_id = _chat(app)
    assert ann.stream.of_type("welcome")[0]["typing_preview"] is True
    app.advance(2)

    def previews():
        return [e.get("text") for e in bob.stream.of_type("typing") if e["typing"]]

    ann.ok({"type": "typing", "chat_id": chat_id, "typing": True, "text": "I ord"})
    # A change of text within a quarter second is dropped; after it, it goes out.
    ann.ok({"type": "typing", "chat_id": chat_id, "typing": True, "text": "I orde"})
    assert previews() == ["I ord"]
    app.advance(0.5)
    ann.ok({"type": "typing", "chat_id": chat_id, "typing": True, "text": "I ordered <b>"})
    assert previews() == ["I ord", "I ordered <b>"]
    # Never stored; the message ends it.
    ann.say(chat_id, "I ordered <b>")
    assert bob.stream.last("typing")["typing"] is False
    events = bob.transcript(chat_id)["events"]
    assert [e["type"] for e in events][-1] == "message"
    assert not any("I ord" in str(e) for e in events if e["type"] != "message")
    # The site says so to the widget before any stream.
    assert app.services.site.widget_config()["typing_preview"] is True
