"""Every event the server sends during a typical day is declared in ``protocol.EVENTS``, for
the party that gets it: clients dispatch only allow-listed types (DESIGN §3), and
docs/PROTOCOL.md documents exactly that list (test_docs.py)."""

from __future__ import annotations

import json
import socket

from inprocess import Recorder

from livesupport.protocol import EVENTS


def test_every_event_of_a_typical_day_is_a_declared_protocol_event(make_app_in_process):
    with socket.socket() as probe:  # an SMTP port nobody listens on: mail waits in the outbox
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    app = make_app_in_process(
        {
            "chat": {"queue_timeout": "30s"},
            "monitor": {"invitation_ttl": "10s"},
            "mail": {
                "smtp_host": "127.0.0.1",
                "smtp_port": str(closed_port),
                "to_address": "support@shop.example",
            },
        }
    )
    # Whatever reaches any visitor's or operator's topic, recorded besides their own streams.
    everything = Recorder()
    hub = app.services.hub
    hub.subscribe(everything, "visitors", "ops")

    admin = app.operator("admin", admin=True, display_name="Alice")
    bob = app.operator("bob", display_name="Bob")
    streams = {"operator": [admin.connect(), bob.connect()], "visitor": []}
    replies = []

    def send(party, cmd):
        reply = party.send(cmd)
        replies.append(reply)
        return reply

    ann, ben, cy = app.visitor(), app.visitor(), app.visitor()
    for v in (ann, ben, cy):
        hub.subscribe(everything, f"v:{v.id}")
        v.track("https://shop.example/pricing", "Pricing")
        streams["visitor"].append(v.connect())
    for op in (admin, bob):
        hub.subscribe(everything, f"op:{op.id}")
    app.advance(1)

    # An invitation declined, one expired; a chat started, typed in, answered, closed.
    inv = send(bob, {"type": "invite", "visitor_id": ben.id})["invitation"]
    send(ben, {"type": "decline_invitation", "invitation_id": inv["id"]})
    send(bob, {"type": "invite", "visitor_id": cy.id, "message": "Hello?"})
    app.advance(11)
    chat_id = send(ann, {"type": "start_chat", "name": "Ann", "text": "Hi", "client_id": "a1"})[
        "chat"
    ]["id"]
    send(bob, {"type": "accept", "chat_id": chat_id})
    send(ann, {"type": "typing", "chat_id": chat_id, "typing": True})
    send(bob, {"type": "typing", "chat_id": chat_id, "typing": True})
    send(bob, {"type": "message", "chat_id": chat_id, "text": "Hello Ann", "client_id": "b1"})
    send(ann, {"type": "receipt", "chat_id": chat_id, "read": 4})
    up = app.run(app.services.files.start(ann.party, chat_id, "a.txt", "f1", None))
    app.run(up.write(b"my order number"))
    replies.append(dict(app.run(up.finish()), type="ack"))  # answered over HTTP, not a stream
    send(ann, {"type": "ping"})
    send(ann, {"type": "sync", "cursors": {str(chat_id): 1, "999": 1}})
    send(ann, {"type": "message", "chat_id": 999, "text": "x", "client_id": "a2"})  # an error
    app.advance(6)  # typing expires
    # Bob goes offline: his chat is handed over to Alice, who takes it; Ann leaves an address.
    send(bob, {"type": "status", "status": "offline"})
    send(admin, {"type": "accept", "chat_id": chat_id})
    send(bob, {"type": "status", "status": "online"})
    send(ann, {"type": "set_email", "chat_id": chat_id, "email": "ann@example.org"})
    # Departments appear; Alice notes something and passes the chat to Bob, who passes it back.
    sales = {"key": "sales", "name": "Sales", "members": [admin.id, bob.id]}
    app.run(app.services.departments.create(sales))
    send(admin, {"type": "note", "chat_id": chat_id, "text": "Asked twice", "client_id": "n1"})
    offer = send(admin, {"type": "transfer", "chat_id": chat_id, "operator_id": bob.id})
    send(bob, {"type": "accept_transfer", "transfer_id": offer["transfer"]["id"]})
    offer = send(bob, {"type": "transfer", "chat_id": chat_id, "operator_id": admin.id})
    send(admin, {"type": "accept_transfer", "transfer_id": offer["transfer"]["id"]})
    # Alice goes offline keeping it (pending), is back and writes (resumed), and closes it;
    # Ann rates the chat.
    send(admin, {"type": "status", "status": "offline", "chats": "keep"})
    send(admin, {"type": "status", "status": "online"})
    send(admin, {"type": "message", "chat_id": chat_id, "text": "Back", "client_id": "a9"})
    send(admin, {"type": "close", "chat_id": chat_id})
    send(ann, {"type": "rate", "chat_id": chat_id, "rating": 5})
    # A chat nobody answers is missed; its visitor leaves a message.
    send(bob, {"type": "status", "status": "away"})
    send(admin, {"type": "status", "status": "away"})
    ben_chat = send(ben, {"type": "start_chat", "name": "Ben", "text": "?", "client_id": "b"})
    app.advance(31)
    send(
        ben,
        {
            "type": "leave_message",
            "name": "Ben",
            "email": "ben@example.org",
            "text": "Call me",
            "chat_id": ben_chat["chat"]["id"],
        },
    )
    # Alice answers the message by e-mail (it waits in the outbox: the SMTP server is down).
    message_id = app.inbox()[0]["id"]
    app.run(app.services.offline.reply(admin.party, message_id, "We will call you."))
    # Alice writes Bob directly; Bob reads it (Alice gets the receipt).
    dm = {"type": "direct", "operator_id": bob.id, "text": "Thanks!", "client_id": "d1"}
    seq = send(admin, dm)["direct"]["seq"]
    send(bob, {"type": "direct_read", "operator_id": admin.id, "seq": seq})
    # The look changes; Bob logs out.
    app.run(app.services.site.update({"appearance": {"color": "#123456"}}))
    app.run(
        app.services.accounts.end_sessions(bob.id, "logout", only_session_id=bob.party.session_id)
    )
    cy.disconnect()
    app.advance(60)

    seen: dict[str, set[str]] = {"visitor": set(), "operator": set()}
    for role, recorders in streams.items():
        for rec in recorders:
            seen[role] |= {e["type"] for e in rec.events}
    published = {e["type"] for e in everything.events}
    answered = {r["type"] for r in replies}
    undeclared = (published | answered | seen["visitor"] | seen["operator"]) - set(EVENTS)
    assert not undeclared, f"events not in protocol.EVENTS: {sorted(undeclared)}"
    for role, types in seen.items():
        wrong = {t for t in types if EVENTS[t] not in ("both", role)}
        assert not wrong, f"{role} streams got {sorted(wrong)}, declared for the other party"
    # The day above did meet nearly every kind of event.
    assert set(EVENTS) == published | answered | seen["visitor"] | seen["operator"]


def test_events_held_during_a_hello_that_its_replay_carries_go_out_once():
    """A message committed while a stream's replay was being read (a networked database
    gives the loop back between reads) is both replayed and delivered live: the live copy is
    dropped; later events and events of other kinds go out."""
    from livesupport.streams import not_replayed

    def ev(**fields):
        return (json.dumps(fields), fields)

    welcome = [
        ev(type="welcome"),
        ev(type="message", chat_id=7, seq=5),
        ev(type="message", chat_id=7, seq=6),
    ]
    held = [
        ev(type="message", chat_id=7, seq=6),
        ev(type="message", chat_id=8, seq=6),
        ev(type="typing", chat_id=7, typing=True),
        ev(type="message", chat_id=7, seq=7),
    ]
    assert not_replayed(welcome, held, {7: 4}) == held[1:]


def test_events_held_during_a_hello_up_to_the_clients_cursor_are_not_sent_again():
    """In a cluster, a catch-up (Redis back, or another process gone) may deliver a chat's
    events from the start to a stream whose hello is still being answered: what the client
    already has by its cursor is dropped, even when its replay is empty. A chat the welcome
    reset (a cursor the server does not know) keeps its live events."""
    from livesupport.streams import not_replayed

    def ev(**fields):
        return (json.dumps(fields), fields)

    welcome = [ev(type="welcome"), ev(type="reset", chat_id=9, reason="unknown_cursor")]
    held = [ev(type="message", chat_id=7, seq=n) for n in (1, 2, 3, 4)] + [
        ev(type="message", chat_id=9, seq=2),
        ev(type="message", chat_id=8, seq=1),
    ]
    assert not_replayed(welcome, held, {7: 3, 9: 5}) == held[3:]
