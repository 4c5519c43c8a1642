"""No e-mail is lost to a passing outage: the outbox keeps every mail until the SMTP server (a
real one, the ``smtp`` fixture) accepts it, retries with backoff, survives a restart and a
``kill -9``, sends each mail once, and shows its state to the console."""

from conftest import mail_config, wait_for

LEAVE = {
    "type": "leave_message",
    "name": "Ann",
    "email": "ann@example.org",
    "text": "Do you ship to Norway?",
}


def outbox(app) -> list[dict]:
    """The outbox as ``GET /api/console/mail`` lists it, newest first."""
    return [m.public() for m in app.run(app.services.outbox.recent())]


# -- in-process, with the fake clock ----------------------------------------------------------


def test_backoff_doubles_to_its_cap_and_the_mail_goes_once_smtp_is_back(make_app_in_process, smtp):
    smtp.stop()  # the SMTP server is down when the message is left
    app = make_app_in_process(mail_config(smtp, retry_first="30s", retry_max="2m"))
    bob = app.operator("bob")
    bob.connect()
    ann = app.visitor()
    ann.connect()
    ann.ok(LEAVE)
    (mail,) = outbox(app)
    assert (mail["kind"], mail["recipient"], mail["state"]) == (
        "offline_message",
        "support@shop.example",
        "queued",
    )
    assert mail["attempts"] == 1 and mail["last_error"], mail
    assert mail["next_attempt_at"] == mail["created_at"] + 30_000
    # The wait doubles after each failed try, up to retry_max.
    for tries, wait in [(1, 30), (2, 60), (3, 120), (4, 120)]:
        app.advance(wait - 1)
        assert outbox(app)[0]["attempts"] == tries
        app.advance(1)
        mail = outbox(app)[0]
        assert (mail["state"], mail["attempts"]) == ("queued", tries + 1)
    assert mail["next_attempt_at"] == app.clock.now_ms() + 120_000
    # The console heard of every try; the inbox shows the message's mail as queued.
    changes = bob.stream.of_type("mail_changed")
    assert [e["mail"]["attempts"] for e in changes] == [0, 1, 2, 3, 4, 5]
    (msg,) = app.run(app.services.offline.listing())
    assert [(m["kind"], m["state"]) for m in msg["mail"]] == [("offline_message", "queued")]
    assert smtp.messages == []
    # Back: the next try delivers it, once.
    smtp.start()
    app.advance(120)
    mail = outbox(app)[0]
    assert (mail["state"], mail["attempts"], mail["last_error"]) == ("sent", 6, "")
    assert mail["sent_at"] == app.clock.now_ms() and mail["next_attempt_at"] is None
    assert len(smtp.messages) == 1
    _, rcpt, message = smtp.messages[0]
    assert rcpt == ["support@shop.example"] and "Norway" in message.get_content()
    app.advance(3 * 3600)
    assert len(smtp.messages) == 1 and outbox(app)[0]["attempts"] == 6
    assert bob.stream.last("mail_changed")["mail"]["state"] == "sent"
    (msg,) = app.run(app.services.offline.listing())
    assert msg["mail"][0]["state"] == "sent"


def test_mail_not_accepted_in_time_fails_and_is_tried_no_more(make_app_in_process, smtp):
    smtp.stop()
    app = make_app_in_process(
        mail_config(smtp, retry_first="1m", retry_max="1m", give_up_after="5m")
    )
    ann = app.visitor()
    ann.connect()
    ann.ok(LEAVE)
    for _ in range(5):
        assert outbox(app)[0]["state"] == "queued"
        app.advance(60)
    mail = outbox(app)[0]
    # Tried at 0, 1, ..., 5 minutes; the next try would have been past give_up_after.
    assert (mail["state"], mail["attempts"]) == ("failed", 6)
    assert mail["last_error"] and mail["next_attempt_at"] is None
    smtp.start()
    app.advance(3600)
    assert outbox(app)[0]["attempts"] == 6 and smtp.messages == []


def test_a_recipient_refused_for_good_fails_at_once(make_app_in_process, smtp):
    smtp.refuse_rcpt = "550 5.1.1 no such mailbox"
    app = make_app_in_process(mail_config(smtp))
    ann = app.visitor()
    ann.connect()
    ann.ok(LEAVE)
    mail = outbox(app)[0]
    assert (mail["state"], mail["attempts"]) == ("failed", 1)
    assert "550" in mail["last_error"] and "no such mailbox" in mail["last_error"]
    app.advance(3600)
    assert outbox(app)[0]["attempts"] == 1


def test_a_restart_resumes_the_queue_and_tries_at_once(make_app_in_process, smtp):
    smtp.stop()
    app = make_app_in_process(mail_config(smtp, retry_first="1h"))
    ann = app.visitor()
    ann.connect()
    ann.ok(LEAVE)
    assert outbox(app)[0]["attempts"] == 1
    smtp.start()
    app = app.restart()  # an hour before the next try
    app.settle()
    mail = outbox(app)[0]
    assert (mail["state"], mail["attempts"]) == ("sent", 2)
    assert len(smtp.messages) == 1


def test_one_sender_per_mail(make_app_in_process, smtp):
    app = make_app_in_process(mail_config(smtp))
    store, sender = app.storage.outbox, app.services.outbox
    # Woken many times at once, the one sender sends the mail once.
    ann = app.visitor()
    ann.connect()
    ann.send(LEAVE)  # settles: sent

    async def wake_five_times():
        for _ in range(5):
            sender.wake()

    app.run(wake_five_times())
    app.settle()
    assert len(smtp.messages) == 1 and outbox(app)[0]["attempts"] == 1
    # Two senders that read the same queued row: only one may claim the try.
    smtp.stop()
    ann.send(dict(LEAVE, text="A second one"))  # tried once, queued for the next try
    (mine,) = app.run(store.due(app.clock.now_ms() + 10**9, 10))
    theirs = app.run(store.mail(mine.id))
    later = app.clock.now_ms() + 1000
    assert app.run(store.claim(mine, later)) is True
    assert app.run(store.claim(theirs, later)) is False
    assert outbox(app)[0]["attempts"] == 2


def test_without_mail_nothing_is_queued(app):
    ann = app.visitor()
    ann.connect()
    ann.ok(LEAVE)
    assert outbox(app) == []
    assert app.run(app.services.offline.listing())[0]["mail"] == []


# -- the real server: an SMTP outage, and kill -9 -----------------------------------------------


def _mail(admin) -> list[dict]:
    r = admin.get("/api/console/mail")
    assert r.status_code == 200, r.text
    return r.json()["mail"]


def test_mail_survives_an_smtp_outage_and_goes_once(make_server, seeded_database, smtp):
    smtp.stop()
    server = make_server(
        config=mail_config(smtp, retry_first="1s", retry_max="2s"), database=seeded_database
    )
    admin = server.console("admin")
    ws = admin.connect()
    ann = server.visitor()
    r = ann.send(LEAVE)
    assert r.status_code == 200, r.text
    msg_id = r.json()["offline_message"]["id"]
    # Down: kept, tried again and again, with the error and the next try for the console.
    mail = wait_for(
        lambda: next((m for m in _mail(admin) if m["attempts"] >= 2), None), what="a retry"
    )
    assert mail["state"] == "queued" and mail["offline_message_id"] == msg_id
    assert mail["last_error"] and mail["next_attempt_at"] > mail["created_at"]
    ws.wait(lambda e: e["type"] == "mail_changed" and e["mail"]["attempts"] >= 2)
    r = admin.get("/api/console/offline-messages")
    assert r.json()["mail_enabled"] is True
    (listed,) = r.json()["messages"]
    assert listed["mail"][0]["state"] == "queued" and listed["mail"][0]["last_error"]
    # Back: delivered, once.
    smtp.start()
    ws.wait(lambda e: e["type"] == "mail_changed" and e["mail"]["state"] == "sent")
    (mail,) = _mail(admin)
    assert mail["state"] == "sent" and mail["sent_at"] >= mail["created_at"]
    assert len(smtp.messages) == 1
    assert "Norway" in smtp.messages[0][2].get_content()
    assert any("could not send e-mail" in line for line in server.log_lines)


def test_mail_survives_kill_9_before_delivery(make_server, seeded_database, smtp):
    smtp.stop()
    # The next try would be an hour away: only the restart can deliver it in this test.
    server = make_server(config=mail_config(smtp, retry_first="1h"), database=seeded_database)
    admin = server.console("admin")
    ann = server.visitor()
    assert ann.send(LEAVE).status_code == 200
    wait_for(lambda: _mail(admin)[0]["attempts"] == 1, what="the first try")
    server.kill()
    smtp.start()
    server.start()
    admin = server.console("admin")
    wait_for(lambda: _mail(admin)[0]["state"] == "sent", what="the mail sent after the restart")
    (mail,) = _mail(admin)
    assert mail["attempts"] == 2
    assert len(smtp.messages) == 1
    assert any("e-mails wait in the outbox" in line for line in server.log_lines)
