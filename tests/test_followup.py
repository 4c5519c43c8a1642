"""A conversation continued by e-mail, against the real server and a real SMTP server: the
operator's reply to a visitor who has left is e-mailed with the conversation and a link, and
the link reopens the conversation as that visitor; the transcript by e-mail."""

from __future__ import annotations

import re

import requests
from conftest import TIMEOUT, VisitorClient, mail_config, wait_for


def _pending_chat(server):
    """Bob answers Ann's chat and goes offline with nobody else online: (bob, bob_ws, ann,
    chat_id)."""
    bob = server.console("bob")
    ws = bob.connect()
    assert ws.request({"type": "status", "status": "online"})["type"] == "ack"
    ann = server.visitor()
    ann.connect()
    chat_id = ann.start_chat(text="Is the blue teapot back in stock?")["chat"]["id"]
    assert ws.request({"type": "accept", "chat_id": chat_id})["type"] == "ack"
    reply = {"type": "message", "chat_id": chat_id, "text": "Let me check", "client_id": "b1"}
    assert ws.request(reply)["type"] == "ack"
    ack = ws.request({"type": "status", "status": "offline", "chats": "keep"})
    assert ack["type"] == "ack"
    pending = ann.ws.wait(lambda e: e["type"] == "chat_pending", what="chat_pending")
    assert pending["operator"]["name"] == "Bob"
    return bob, ws, ann, chat_id, pending


def test_the_reply_to_a_visitor_who_left_is_mailed_with_a_link_that_reopens_the_chat(
    make_server, smtp
):
    server = make_server(config=mail_config(smtp, from_address="chat@shop.example"))
    server.create_operator("bob", display_name="Bob")
    bob, ws, ann, chat_id, pending = _pending_chat(server)
    assert pending["mail"] is True
    r = ann.send({"type": "set_email", "chat_id": chat_id, "email": "ann@example.org"})
    assert r.status_code == 200 and r.json()["chat"]["email"] == "ann@example.org", r.text

    # While Ann is on the site, the reply reaches her in the widget, and no e-mail is sent.
    say = {"type": "message", "chat_id": chat_id, "text": "Yes, 3 left!", "client_id": "b2"}
    assert ws.request(say)["type"] == "ack"
    ann.ws.wait(lambda e: e.get("text") == "Yes, 3 left!", what="the reply in the widget")
    # Ann leaves the site.
    ann.close()
    wait_for(lambda: server.metrics()["visitor_streams"] == 0, what="Ann's stream closed")
    say = {"type": "message", "chat_id": chat_id, "text": "Shall I reserve one?", "client_id": "b3"}
    assert ws.request(say)["type"] == "ack"
    wait_for(lambda: smtp.messages, what="the reply e-mail")
    assert len(smtp.messages) == 1
    _, rcpt, msg = smtp.messages[0]
    assert rcpt == ["ann@example.org"]
    assert msg["From"] == "chat@shop.example" and msg["Reply-To"] == "support@shop.example"
    body = msg.get_content()
    for line in ("Shall I reserve one?", "Is the blue teapot back in stock?", "Yes, 3 left!"):
        assert line in body, body
    link = re.search(r"(http://\S+/chat\?link=([A-Za-z0-9_-]{43}))", body)
    assert link, body
    token = link.group(2)
    # The page the link opens is served; its token is Ann's while it is valid.
    assert requests.get(link.group(1), timeout=TIMEOUT).status_code == 200
    again = VisitorClient(server, token=token)
    welcome_ws = again.connect()
    assert again.welcome["type"] == "welcome"
    assert [c["id"] for c in again.welcome["chats"]] == [chat_id]
    transcript = again.http.get(f"{server.url}/api/visitor/chats/{chat_id}", timeout=TIMEOUT)
    texts = [e["text"] for e in transcript.json()["events"] if e["type"] == "message"]
    assert texts == [
        "Is the blue teapot back in stock?",
        "Let me check",
        "Yes, 3 left!",
        "Shall I reserve one?",
    ]
    # Answering through it continues the same conversation.
    r = again.say(chat_id, "Yes please!")
    assert r["type"] == "ack"
    ws.wait(lambda e: e.get("text") == "Yes please!", what="the answer in the console")
    welcome_ws.close()
    # A link is unguessable: a made-up one is an unknown token.
    bad = VisitorClient(server, token="A" * 43)
    r = bad.send({"type": "ping"})
    assert r.status_code == 401 and r.json()["error"] == "bad_token"


def test_without_mail_nothing_is_offered_and_the_reply_waits_for_the_visit(make_server):
    server = make_server()
    server.create_operator("bob", display_name="Bob")
    bob, ws, ann, chat_id, pending = _pending_chat(server)
    assert pending["mail"] is False
    config = requests.get(server.url + "/api/widget/config", timeout=TIMEOUT).json()
    assert config["mail"] is False
    session = bob.get("/api/console/session").json()
    assert session["protocol"]["mail"] is False
    r = ann.send({"type": "email_transcript", "chat_id": chat_id, "email": "ann@example.org"})
    assert r.status_code == 409 and r.json()["error"] == "mail_not_configured"
    # Ann leaves; Bob's reply is kept and shown on her next visit.
    ann.close()
    say = {"type": "message", "chat_id": chat_id, "text": "Back now", "client_id": "b2"}
    assert ws.request(say)["type"] == "ack"
    ann.connect(cursors={chat_id: 2})
    got = ann.ws.wait(lambda e: e.get("text") == "Back now", what="the kept reply")
    assert got["seq"] > 2


def test_the_transcript_by_e_mail(make_server, smtp):
    server = make_server(config=mail_config(smtp))
    server.create_operator("bob", display_name="Bob")
    bob = server.console("bob")
    ws = bob.connect()
    ws.request({"type": "status", "status": "online"})
    ann = server.visitor()
    ann.connect()
    chat_id = ann.start_chat(text="Do you ship <b>abroad</b>?")["chat"]["id"]
    ws.request({"type": "accept", "chat_id": chat_id})
    ws.request({"type": "message", "chat_id": chat_id, "text": "We do!", "client_id": "x"})
    ws.request({"type": "close", "chat_id": chat_id})
    ack = ann.ws.request({"type": "email_transcript", "chat_id": chat_id, "email": "a@ex.org"})
    assert ack["type"] == "ack" and ack["mail"]["id"] > 0, ack
    wait_for(lambda: smtp.messages, what="the transcript e-mail")
    _, rcpt, msg = smtp.messages[0]
    assert rcpt == ["a@ex.org"] and msg.get_content_type() == "text/plain"
    body = msg.get_content()
    assert "Do you ship <b>abroad</b>?" in body and "Bob:" in body and "We do!" in body
    # The outbox shows it to the console.
    mail = bob.get("/api/console/mail").json()["mail"]
    wait_for(
        lambda: bob.get("/api/console/mail").json()["mail"][0]["state"] == "sent",
        what="the transcript marked sent",
    )
    assert mail[0]["kind"] == "transcript" and mail[0]["recipient"] == "a@ex.org"
