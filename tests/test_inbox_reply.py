"""The Inbox answers an offline message by e-mail through the outbox (a real SMTP server, the
``smtp`` fixture), the reply kept with the message; without ``[mail]`` it says so."""

from conftest import ConsoleClient, mail_config, wait_for

LEAVE = {
    "type": "leave_message",
    "name": "Ann Smith",
    "email": "ann@example.org",
    "text": "Do you ship to Norway?\n\nThanks, Ann",
}
REPLY = "Yes, we do.\nWe ship every Monday."


def test_a_reply_reaches_the_visitor_with_their_message_quoted(make_server, seeded_database, smtp):
    server = make_server(
        config=mail_config(smtp, from_address="chat@shop.example"), database=seeded_database
    )
    bob = server.console("bob")
    ws = bob.connect()
    r = server.visitor().send(LEAVE)
    assert r.status_code == 200, r.text
    msg_id = r.json()["offline_message"]["id"]
    wait_for(lambda: len(smtp.messages) == 1, what="the notification")
    inbox = bob.get("/api/console/offline-messages").json()
    assert inbox["mail_enabled"] is True
    assert [m["kind"] for m in inbox["messages"][0]["mail"]] == ["offline_message"]

    r = bob.post(f"/api/console/offline-messages/{msg_id}/reply", {"text": REPLY})
    assert r.status_code == 200, r.text
    answer = r.json()
    assert answer["reply_text"] == REPLY and answer["read"] is True
    assert answer["replied_by"] == bob.operator["id"] and answer["replied_at"]
    assert [m["kind"] for m in answer["mail"]] == ["offline_message", "offline_reply"]
    # The other consoles hear of it; the mail goes out once.
    ev = ws.wait(lambda e: e["type"] == "offline_message_replied")
    assert ev["message"]["id"] == msg_id and ev["message"]["reply_text"].startswith("Yes")
    ws.wait(
        lambda e: (
            e["type"] == "mail_changed"
            and e["mail"]["kind"] == "offline_reply"
            and e["mail"]["state"] == "sent"
        )
    )
    assert len(smtp.messages) == 2
    mail_from, rcpt, mail = smtp.messages[1]
    assert rcpt == ["ann@example.org"] and mail_from == "chat@shop.example"
    assert mail["To"] == "Ann Smith <ann@example.org>"
    assert mail["From"] == "chat@shop.example"
    assert mail["Reply-To"] == "support@shop.example"
    assert mail["Subject"] == "Re: Do you ship to Norway?"
    body = mail.get_content().replace("\r\n", "\n")
    assert body.startswith(REPLY + "\n\nBob\n\nOn ")  # signed with the operator's name
    assert "Ann Smith wrote:\n> Do you ship to Norway?\n>\n> Thanks, Ann" in body
    # Kept with the message, in the inbox.
    (listed,) = bob.get("/api/console/offline-messages").json()["messages"]
    assert listed["reply_text"] == REPLY
    assert [(m["kind"], m["state"]) for m in listed["mail"]] == [
        ("offline_message", "sent"),
        ("offline_reply", "sent"),
    ]
    # Once only.
    r = bob.post(f"/api/console/offline-messages/{msg_id}/reply", {"text": "Again"})
    assert (r.status_code, r.json()["error"]) == (409, "already_replied")
    assert len(smtp.messages) == 2


def test_a_reply_is_checked_like_every_console_change(make_server, seeded_database, smtp):
    server = make_server(config=mail_config(smtp), database=seeded_database)
    bob = server.console("bob")
    msg_id = server.visitor().send(LEAVE).json()["offline_message"]["id"]
    path = f"/api/console/offline-messages/{msg_id}/reply"
    # The message text limit, named.
    r = bob.post(path, {"text": "x" * 5001})
    assert r.status_code == 400, r.text
    assert (r.json()["error"], r.json()["field"], r.json()["limit"]) == ("too_long", "text", 5000)
    for body, field in [({}, "text"), ({"text": "  "}, "text"), ({"text": 5}, "text")]:
        r = bob.post(path, body)
        assert (r.status_code, r.json()["error"], r.json()["field"]) == (
            400,
            "invalid_field",
            field,
        )
    r = bob.post(path, {"text": "hi", "to": "evil@a.io"})
    assert (r.status_code, r.json()["error"]) == (400, "unknown_field")
    r = bob.post("/api/console/offline-messages/999/reply", {"text": "hi"})
    assert r.status_code == 404
    # Only operators, and only with the CSRF token.
    r = bob.http.post(server.url + path, json={"text": "hi"}, headers={"X-XSRFToken": ""})
    assert (r.status_code, r.json()["error"]) == (403, "csrf_failed")
    stranger = ConsoleClient(server)
    r = stranger.post(path, {"text": "hi"})
    assert (r.status_code, r.json()["error"]) == (401, "not_authenticated")
    (listed,) = bob.get("/api/console/offline-messages").json()["messages"]
    assert listed["reply_text"] == "" and listed["replied_at"] is None
    assert [m["kind"] for m in listed["mail"]] == ["offline_message"]


def test_without_mail_there_is_no_reply(server):
    bob = server.console("bob")
    msg_id = server.visitor().send(LEAVE).json()["offline_message"]["id"]
    inbox = bob.get("/api/console/offline-messages").json()
    assert inbox["mail_enabled"] is False and inbox["messages"][0]["mail"] == []
    r = bob.post(f"/api/console/offline-messages/{msg_id}/reply", {"text": "Yes"})
    assert r.status_code == 409, r.text
    assert r.json()["error"] == "mail_not_configured" and "[mail]" in r.json()["message"]
    assert bob.get("/api/console/mail").json() == {"mail": [], "mail_enabled": False}
    (listed,) = bob.get("/api/console/offline-messages").json()["messages"]
    assert listed["replied_at"] is None
