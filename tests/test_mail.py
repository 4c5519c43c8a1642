"""Offline messages reach the inbox and, with SMTP configured, a real SMTP server (the
``smtp`` fixture); what a visitor types cannot add headers or recipients to the mail, nor an
address that a mail client would read as more than one mailbox (``x?bcc=evil@a.io``)."""

import pytest
from conftest import PASSWORD, mail_config, wait_for

LEAVE = {"type": "leave_message", "name": "Ann", "email": "ann@example.org", "text": "hi"}


def test_offline_message_is_stored_and_mailed_with_reply_to(make_server, smtp):
    server = make_server(config=mail_config(smtp, from_address="chat@shop.example"))
    server.create_operator("admin", admin=True)
    ann = server.visitor()
    r = ann.send(
        dict(
            LEAVE,
            name="Ann Smith",
            text="Please call me back.\nThanks",
            page_url="https://shop.example/p",
        )
    )
    assert r.status_code == 200, r.text
    assert r.json()["offline_message"]["id"] > 0
    wait_for(lambda: smtp.messages, what="the e-mail at the SMTP server")
    mail_from, rcpt, msg = smtp.messages[0]
    assert rcpt == ["support@shop.example"]
    assert msg["Reply-To"] == "Ann Smith <ann@example.org>"
    assert msg["From"] == "chat@shop.example"
    assert "Ann Smith" in msg["Subject"]
    body = msg.get_content()
    assert "Please call me back." in body and "https://shop.example/p" in body
    # And in the console inbox, unread, then marked read.
    admin = server.console("admin")
    msgs = admin.get("/api/console/offline-messages").json()["messages"]
    assert [(m["name"], m["read"]) for m in msgs] == [("Ann Smith", False)]
    r = admin.patch(f"/api/console/offline-messages/{msgs[0]['id']}", {"read": True})
    assert r.json()["read"] is True


def test_header_injection_is_impossible(make_server, smtp):
    server = make_server(config=mail_config(smtp))
    ann = server.visitor()
    for name, addr in [
        ("Ann\r\nBcc: victim@example.org", "ann@example.org"),
        ("Ann", "ann@example.org\r\nBcc: victim@example.org"),
        ("Ann\nSubject: spam", "ann@example.org"),
    ]:
        r = ann.send(dict(LEAVE, name=name, email=addr))
        assert r.status_code == 400 and r.json()["error"] == "invalid_field", r.text
    # A real one after them goes through, and it is the only mail.
    r = ann.send(dict(LEAVE, text="real"))
    assert r.status_code == 200
    wait_for(lambda: smtp.messages, what="the e-mail")
    assert len(smtp.messages) == 1
    _, rcpt, msg = smtp.messages[0]
    assert rcpt == ["support@shop.example"] and msg["Bcc"] is None


def test_encoded_words_cannot_smuggle_headers_into_the_mail(make_server, smtp):
    server = make_server(config=mail_config(smtp))
    ann = server.visitor()
    r = ann.send(dict(LEAVE, name="=?utf-8?q?=0D=0ABcc:_x@evil.example?="))
    assert r.status_code == 200, r.text
    wait_for(lambda: smtp.messages, what="the mail")
    _, rcpt, msg = smtp.messages[0]
    assert rcpt == ["support@shop.example"] and msg["Bcc"] is None
    # Addresses that cannot be mailed are refused before anything is stored.
    for addr in ["é@example.com", "a@[x.com", "a,b@example.com"]:
        r = ann.send(dict(LEAVE, email=addr))
        assert r.status_code == 400 and r.json()["field"] == "email", (addr, r.text)
    server.create_operator("admin", admin=True)
    admin = server.console("admin")
    assert len(admin.get("/api/console/offline-messages").json()["messages"]) == 1
    # A retry with the same client id stores nothing new.
    for _ in range(2):
        r = ann.send(dict(LEAVE, text="again", client_id="lm-1"))
        assert r.status_code == 200
    assert len(admin.get("/api/console/offline-messages").json()["messages"]) == 2


def test_offline_messages_reach_the_inbox_once_and_are_marked_read(app):
    """In-process, without mail: the inbox, the console's live notice, retries, marking."""
    bob = app.operator("bob")
    bob.connect()
    ann = app.visitor()
    ann.connect()
    leave = dict(LEAVE, text="Call me", page_url="https://shop.example/p", client_id="lm-1")
    first = ann.ok(leave)["offline_message"]
    assert ann.ok(leave)["offline_message"] == first  # a retry stores nothing new
    (msg,) = app.inbox()
    assert msg["id"] == first["id"] and msg["read"] is False
    assert (msg["name"], msg["email"], msg["text"]) == ("Ann", "ann@example.org", "Call me")
    assert [e["message"]["id"] for e in bob.stream.of_type("offline_message")] == [first["id"]]
    offline = app.services.offline
    assert app.run(offline.mark(first["id"], True)).public()["read"] is True
    assert app.inbox()[0]["read"] is True
    assert app.run(offline.mark(first["id"], False)).public()["read"] is False
    assert app.error(offline.mark(999, True))["status"] == 404
    # A message about another visitor's chat is refused like a missing chat.
    ben = app.visitor()
    ben.connect()
    chat_id = ben.start_chat()["chat"]["id"]
    r = ann.send(dict(leave, client_id="lm-2", chat_id=chat_id))
    assert r["type"] == "error" and r["error"] == "not_found"
    assert len(app.inbox()) == 1


# -- attacker finding 4: addresses that are more than an address ---------------------------------

#: Each would make a mail client's ``mailto:`` (or a header) do more than address one mailbox.
SMUGGLING = [
    "x?bcc=evil@a.io",
    "x&bcc=evil@a.io",
    "x%3Fbcc%3Devil@a.io",
    "ann@example.org?bcc=evil@a.io",
    "a,evil@a.io",
    "a;evil@a.io",
    "<evil@a.io>",
    '"a b"@a.io',
    "a b@a.io",
    "a:b@a.io",
    "a/b@a.io",
    "a\\b@a.io",
    "a#b@a.io",
    "`a`@a.io",
]


@pytest.mark.parametrize("address", SMUGGLING)
def test_an_address_that_is_more_than_an_address_is_refused_over_http(server, address):
    r = server.visitor().send(dict(LEAVE, email=address))
    assert r.status_code == 400, r.text
    assert (r.json()["error"], r.json()["field"]) == ("invalid_field", "email")


def test_such_addresses_are_refused_over_the_websocket_and_plain_ones_pass(server):
    ann = server.visitor()
    ann.connect()
    for address in SMUGGLING[:4]:
        err = ann.ws.request(dict(LEAVE, email=address))
        assert (err["type"], err["error"], err["field"]) == ("error", "invalid_field", "email")
        err = ann.ws.request(
            {"type": "start_chat", "name": "Ann", "text": "hi", "client_id": "c1", "email": address}
        )
        assert (err["type"], err["error"], err["field"]) == ("error", "invalid_field", "email")
    for address in ["ann@example.org", "o'brien+shop@mail.example.ie", "a.b-c_d@x-y.co.uk"]:
        ack = ann.ws.request(dict(LEAVE, email=address))
        assert ack["type"] == "ack", (address, ack)
    bob = server.console("bob", PASSWORD)
    emails = [m["email"] for m in bob.get("/api/console/offline-messages").json()["messages"]]
    assert sorted(emails) == sorted(
        ["ann@example.org", "o'brien+shop@mail.example.ie", "a.b-c_d@x-y.co.uk"]
    )
