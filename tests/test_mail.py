"""Offline messages reach the inbox and, with SMTP configured, a real SMTP server."""

import email
import email.policy
import socket
import threading

import pytest
from aiosmtpd.controller import Controller
from conftest import wait_for


class Inbox:
    def __init__(self):
        self.messages = []
        self.lock = threading.Lock()

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 (aiosmtpd's name)
        msg = email.message_from_bytes(envelope.content, policy=email.policy.default)
        with self.lock:
            self.messages.append((envelope.mail_from, envelope.rcpt_tos, msg))
        return "250 OK"


@pytest.fixture
def smtp():
    inbox = Inbox()
    with socket.socket() as probe:  # aiosmtpd needs a concrete port
        probe.bind(("127.0.0.1", 0))
        inbox.port = probe.getsockname()[1]
    controller = Controller(inbox, hostname="127.0.0.1", port=inbox.port)
    controller.start()
    yield inbox
    controller.stop()


def test_offline_message_is_stored_and_mailed_with_reply_to(make_server, smtp):
    server = make_server(
        config={
            "mail": {
                "smtp_host": "127.0.0.1",
                "smtp_port": str(smtp.port),
                "smtp_security": "none",
                "from_address": "chat@shop.example",
                "to_address": "support@shop.example",
            }
        }
    )
    server.create_operator("admin", admin=True)
    ann = server.visitor()
    r = ann.send(
        {
            "type": "leave_message",
            "name": "Ann Smith",
            "email": "ann@example.org",
            "text": "Please call me back.\nThanks",
            "page_url": "https://shop.example/p",
        }
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
    server = make_server(
        config={
            "mail": {
                "smtp_host": "127.0.0.1",
                "smtp_port": str(smtp.port),
                "smtp_security": "none",
                "to_address": "support@shop.example",
            }
        }
    )
    ann = server.visitor()
    for name, addr in [
        ("Ann\r\nBcc: victim@example.org", "ann@example.org"),
        ("Ann", "ann@example.org\r\nBcc: victim@example.org"),
        ("Ann\nSubject: spam", "ann@example.org"),
    ]:
        r = ann.send({"type": "leave_message", "name": name, "email": addr, "text": "hi"})
        assert r.status_code == 400 and r.json()["error"] == "invalid_field", r.text
    # A real one after them goes through, and it is the only mail.
    r = ann.send(
        {"type": "leave_message", "name": "Ann", "email": "ann@example.org", "text": "real"}
    )
    assert r.status_code == 200
    wait_for(lambda: smtp.messages, what="the e-mail")
    assert len(smtp.messages) == 1
    _, rcpt, msg = smtp.messages[0]
    assert rcpt == ["support@shop.example"] and msg["Bcc"] is None
