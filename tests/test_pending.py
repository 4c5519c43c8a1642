"""A conversation is never lost (in-process, fake clock): hand-over to an online colleague,
pending when nobody can take it, "missed" only when nobody ever answered, pending timeouts,
the operator's return, the visitor's address, ratings and the links that reopen a chat."""

from __future__ import annotations

from conftest import queue_lists


def _answered(app, *, colleague=False):
    """Bob answers Ann's chat (Carol online too when ``colleague``): (bob, carol, ann, chat)."""
    bob = app.operator("bob")
    bob.connect()
    carol = None
    if colleague:
        carol = app.operator("carol")
        carol.connect()
    ann = app.visitor()
    ann.connect()
    chat_id = ann.start_chat(text="Where is my order?")["chat"]["id"]
    bob.ok({"type": "accept", "chat_id": chat_id})
    assert bob.say(chat_id, "Let me look that up")["type"] == "ack"
    return bob, carol, ann, chat_id


def test_a_handed_over_chat_nobody_takes_becomes_pending_not_missed(app):
    bob, carol, ann, chat_id = _answered(app, colleague=True)
    bob.ok({"type": "status", "status": "offline", "chats": "hand_over"})
    ev = ann.stream.last("chat_requeued")
    assert ev["reason"] == "handed_over" and ev["operator"]["name"] == "Bob"
    queued = carol.stream.last("queue")["chats"]
    assert [c["id"] for c in queued] == [chat_id]
    assert queued[0]["handed_over_by"]["name"] == "Bob"
    # The whole transcript waits with it: the colleague sees every message.
    texts = [e.get("text") for e in carol.transcript(chat_id)["events"] if e["type"] == "message"]
    assert texts == ["Where is my order?", "Let me look that up"]

    # Nobody takes it within the queue timeout: answered once, so never missed; it goes back
    # to Bob as pending.
    app.advance(121)
    assert not ann.stream.of_type("chat_missed")
    pending = ann.stream.last("chat_pending")
    assert pending["reason"] == "queue_timeout" and pending["operator"]["name"] == "Bob"
    chat = carol.transcript(chat_id)["chat"]
    assert chat["status"] == "pending" and chat["operator"]["name"] == "Bob"
    assert chat["answered"] is True
    assert not queue_lists(carol.stream.events, chat_id)[-1]
    missed = app.run(app.services.transcripts.console_list(carol.party, "missed", 50, 0))
    assert chat_id not in [c["id"] for c in missed]
    pendings = app.run(app.services.transcripts.console_list(carol.party, "pending", 50, 0))
    assert [c["id"] for c in pendings] == [chat_id]


def test_keeping_the_chats_leaves_them_pending_and_a_colleague_may_take_one_over(app):
    bob, carol, ann, chat_id = _answered(app, colleague=True)
    bob.ok({"type": "status", "status": "offline", "chats": "keep"})
    assert not ann.stream.of_type("chat_requeued")
    assert ann.stream.last("chat_pending")["operator"]["name"] == "Bob"
    assert carol.stream.last("queue")["chats"] == []
    # The visitor may still write; Bob's console gets it.
    assert ann.say(chat_id, "Still there?")["type"] == "ack"
    assert bob.stream.last("message")["text"] == "Still there?"
    # Carol takes the conversation over; Bob's console learns it is no longer his.
    carol.ok({"type": "accept", "chat_id": chat_id})
    assert bob.stream.last("chat_accepted")["operator"]["name"] == "Carol"
    assert ann.stream.last("chat_accepted")["operator"]["name"] == "Carol"
    assert carol.transcript(chat_id)["chat"]["status"] == "active"
    assert carol.say(chat_id, "Carol here, I can help")["type"] == "ack"


def test_a_chat_nobody_ever_answered_is_still_missed(app):
    bob = app.operator("bob")
    bob.connect()
    ann = app.visitor()
    ann.connect()
    chat_id = ann.start_chat()["chat"]["id"]
    app.advance(121)
    assert ann.stream.last("chat_missed")["reason"] == "queue_timeout"
    assert bob.transcript(chat_id)["chat"]["status"] == "missed"


def test_a_pending_chat_ends_after_the_pending_timeout(make_app_in_process):
    app = make_app_in_process({"chat": {"pending_timeout": "1h"}})
    bob, _carol, ann, chat_id = _answered(app)
    bob.ok({"type": "status", "status": "offline"})
    assert ann.stream.last("chat_pending")["reason"] == "operator_offline"
    app.advance(3590)
    assert not ann.stream.of_type("chat_closed")
    app.advance(20)
    closed = ann.stream.last("chat_closed")
    assert closed["by"] == "system" and closed["reason"] == "pending_timeout"
    assert ann.transcript(chat_id)["chat"]["status"] == "closed"


def test_pending_chats_survive_a_restart_and_the_operator_picks_them_up(make_app_in_process):
    app = make_app_in_process({"chat": {"pending_timeout": "1h"}})
    bob, _carol, ann, chat_id = _answered(app)
    bob.ok({"type": "status", "status": "offline"})
    token = ann.token
    app2 = app.restart()
    bob2 = app2.login("bob")
    bob2.connect()
    bob2.ok({"type": "status", "status": "online"})
    assert bob2.transcript(chat_id)["chat"]["status"] == "pending"
    ann2 = app2.as_visitor(token)
    ann2.connect()
    assert [c["status"] for c in ann2.stream.events[0]["chats"]] == ["pending"]
    assert bob2.say(chat_id, "Sorry for the wait")["type"] == "ack"
    assert ann2.stream.last("chat_resumed")["operator"]["name"] == "Bob"
    assert ann2.stream.last("message")["text"] == "Sorry for the wait"
    # The pending timeout was forgotten with the status: it never closes the chat now.
    app2.advance(2 * 3600)
    assert bob2.transcript(chat_id)["chat"]["status"] == "active"


def test_the_visitor_leaves_an_address_and_rates_the_chat(app):
    bob, _carol, ann, chat_id = _answered(app)
    r = ann.send({"type": "set_email", "chat_id": chat_id, "email": "ann@example.com"})
    assert r["type"] == "ack" and r["chat"]["email"] == "ann@example.com"
    assert bob.stream.last("visitor_details")["email"] == "ann@example.com"
    bad = ann.send({"type": "set_email", "chat_id": chat_id, "email": "x?bcc=evil@a.io"})
    assert bad["type"] == "error" and bad["field"] == "email"
    assert bob.transcript(chat_id)["chat"]["email"] == "ann@example.com"

    bob.ok({"type": "close", "chat_id": chat_id})
    for wrong in (0, 6, "5", True, 4.5):
        r = ann.send({"type": "rate", "chat_id": chat_id, "rating": wrong})
        assert r["type"] == "error" and r["field"] == "rating", wrong
    r = ann.send({"type": "rate", "chat_id": chat_id, "rating": 5, "comment": "Quick <b>help</b>"})
    assert r["type"] == "ack" and r["chat"]["rating"] == 5
    rated = bob.stream.last("chat_rated")
    assert rated["rating"] == 5 and rated["comment"] == "Quick <b>help</b>"
    history = app.run(app.services.transcripts.console_list(bob.party, "closed", 50, 0))
    assert (history[0]["rating"], history[0]["rating_comment"]) == (5, "Quick <b>help</b>")
    long = ann.send({"type": "rate", "chat_id": chat_id, "rating": 4, "comment": "x" * 1001})
    assert long["error"] == "too_long" and long["limit"] == 1000

    # A chat nobody answered has nothing to rate; without [mail] there is no transcript mail.
    ben = app.visitor()
    ben.connect()
    missed = ben.start_chat(name="Ben")["chat"]["id"]
    r = ben.send({"type": "rate", "chat_id": missed, "rating": 1})
    assert r["type"] == "error" and r["error"] == "not_answered"
    r = ann.send({"type": "email_transcript", "chat_id": chat_id, "email": "ann@example.com"})
    assert r["type"] == "error" and r["error"] == "mail_not_configured"


def test_a_link_stands_for_its_visitor_until_it_expires(make_app_in_process):
    app = make_app_in_process({"chat": {"pending_timeout": "1h"}})
    _bob, _carol, ann, chat_id = _answered(app)
    chat = app.run(app.services.chats.chat_for(ann.party, chat_id))
    link = app.run(app.services.followup.new_link(chat))
    token = link.split("?link=", 1)[1]
    assert len(token) >= 40 and token not in (ann.token,)
    again = app.as_visitor(token)
    assert again.id == ann.id
    again.connect()
    assert [c["id"] for c in again.stream.events[0]["chats"]] == [chat_id]
    app.advance(3600 + 1)
    err = app.error(app.services.accounts.visitor_party(token, "127.0.0.1", "x"))
    assert err["error"] == "bad_token"
    # The visitor's own token is untouched.
    assert app.as_visitor(ann.token).id == ann.id


def test_the_name_and_address_given_in_a_chat_reach_the_monitor(app):
    bob = app.operator("bob")
    bob.connect()
    ann = app.visitor()
    ann.connect()
    ann.track("https://shop.example/teapots", "Teapots")
    assert ann.row()["name"] == ""
    chat_id = ann.start_chat(name="Ann Lee", email="ann@example.com")["chat"]["id"]
    app.advance(1)
    row = ann.row()
    assert (row["name"], row["email"], row["state"]) == ("Ann Lee", "ann@example.com", "waiting")
    bob.ok({"type": "accept", "chat_id": chat_id})
    ann.ok({"type": "set_email", "chat_id": chat_id, "email": "ann.lee@example.com"})
    app.advance(1)
    assert ann.row()["email"] == "ann.lee@example.com"
    bob.ok({"type": "status", "status": "offline"})
    app.advance(1)
    assert ann.row()["state"] == "chatting"  # pending: still in a conversation
    bob.ok({"type": "close", "chat_id": chat_id})
    app.advance(1)
    assert ann.row()["name"] == "Ann Lee" and ann.row()["state"] == "browsing"


def test_the_pre_chat_form_asks_what_the_settings_say(app):
    ann = app.visitor()
    ann.connect()
    start = {"type": "start_chat", "text": "Hi", "client_id": "c1"}
    r = ann.send(start)
    assert r["type"] == "error" and r["field"] == "name"
    app.run(
        app.services.site.update({"appearance": {"ask_name": "hidden", "ask_email": "required"}})
    )
    r = ann.send(dict(start, name="Ann"))
    assert r["type"] == "error" and r["field"] == "email" and "required" in r["message"]
    r = ann.send(dict(start, name="Ann", email="ann@example.com"))
    assert r["type"] == "ack"
    assert (r["chat"]["name"], r["chat"]["email"]) == ("", "ann@example.com")  # not asked, not kept
    bad = app.error(app.services.site.update({"appearance": {"ask_name": "sometimes"}}))
    assert bad["error"] == "invalid_field" and bad["field"] == "appearance.ask_name"
