"""Departments, routing, escalation, queue position, transfer and internal notes, in process
with the fake clock (docs/PROTOCOL.md §5.5): who a chat reaches, assignment within each
operator's maximum and its races, the visitor's place in the queue, and a visitor's sequence
that internal notes never break."""

from __future__ import annotations

import asyncio


def _department(app, key, name, members, **fields):
    body = {"key": key, "name": name, "members": [m.id for m in members], **fields}
    return app.run(app.services.departments.create(body))


def _queue_ids(op) -> list[int]:
    return [c["id"] for c in op.stream.last("queue")["chats"]]


def _team(app, **config):
    alice = app.operator("alice", display_name="Alice")
    bob = app.operator("bob", display_name="Bob")
    carol = app.operator("carol", display_name="Carol")
    for op in (alice, bob, carol):
        op.connect()
    return alice, bob, carol


def test_a_chat_for_a_department_reaches_only_its_members(app):
    alice, bob, carol = _team(app)
    _department(app, "sales", "Sales", [alice])
    _department(app, "support", "Support", [bob])
    ann = app.visitor()
    ann.connect()
    assert {d["key"]: d["online"] for d in ann.stream.last("welcome")["departments"]} == {
        "sales": True,
        "support": True,
    }
    chat = ann.start_chat(department="sales")["chat"]
    assert chat["department"]["key"] == "sales"
    app.settle()
    assert _queue_ids(alice) == [chat["id"]]
    assert _queue_ids(bob) == []
    assert _queue_ids(carol) == []  # in no department: only chats of no department
    # A chat of no department reaches everyone.
    ben = app.visitor()
    ben.connect()
    other = ben.start_chat()["chat"]["id"]
    app.settle()
    assert other in _queue_ids(bob) and other in _queue_ids(carol)
    assert _queue_ids(alice) == [chat["id"], other]


def test_departments_refuse_bad_input_and_change_nothing(app):
    alice, bob, _carol = _team(app)
    _department(app, "sales", "Sales", [alice])
    empty = _department(app, "night", "Night shift", [])
    depts = app.services.departments
    for body, code, field in (
        ({"key": "sales", "name": "Other"}, "duplicate", "key"),
        ({"key": "other", "name": "sales"}, "duplicate", "name"),
        ({"key": "Bad Key", "name": "X"}, "invalid_field", "key"),
        ({"key": "x", "name": "N" * 61}, "too_long", "name"),
        ({"key": "x", "name": "   "}, "invalid_field", "name"),
        ({"key": "x", "name": "X", "escalate_after": 5}, "invalid_field", "escalate_after"),
        ({"key": "x", "name": "X", "members": "all"}, "invalid_field", "members"),
        ({"key": "x", "name": "X", "email": "x?bcc=evil@a.io"}, "invalid_field", "email"),
    ):
        err = app.error(depts.create(body))
        assert (err["error"], err.get("field")) == (code, field), (body, err)
    assert [d["key"] for d in depts.list()] == ["night", "sales"]
    ann = app.visitor()
    ann.connect()
    for department, code in (("nowhere", "unknown_department"), ("night", "department_offline")):
        err = ann.send(
            {
                "type": "start_chat",
                "name": "Ann",
                "text": "Hi",
                "client_id": "c" + code,
                "department": department,
            }
        )
        assert err["error"] == code, err
        assert department in err["message"] or "Night shift" in err["message"]
    assert app.run(app.services.transcripts.visitor_list(ann.party)) == []
    # The documented fallback: the message form, to that department.
    left = ann.send(
        {
            "type": "leave_message",
            "name": "Ann",
            "email": "ann@example.org",
            "text": "Call me",
            "department": "night",
        }
    )
    assert left["type"] == "ack", left
    assert app.inbox()[0]["department_id"] == empty["id"]
    assert app.error(depts.update(999, {"name": "X"}))["error"] == "not_found"


def test_automatic_assignment_never_exceeds_the_maximum(make_app_in_process):
    app = make_app_in_process()
    alice, bob, _carol = _team(app)
    app.run(app.services.accounts.update_operator(alice.party, alice.id, {"max_chats": 1}))
    app.run(app.services.accounts.update_operator(alice.party, bob.id, {"max_chats": 1}))
    _department(app, "sales", "Sales", [alice, bob], auto_assign=True)
    chats = []
    for name in ("Ann", "Ben", "Cy"):
        v = app.visitor()
        v.connect()
        chats.append(v.start_chat(name=name, department="sales")["chat"]["id"])
    app.settle()
    owners = {cid: app.run(app.services.chats.store.chat(cid)).operator_id for cid in chats}
    assert sorted(o for o in owners.values() if o) == sorted([alice.id, bob.id])
    third = [cid for cid, o in owners.items() if o is None]
    assert len(third) == 1 and _queue_ids(alice) == third
    assigned = alice.stream.of_type("chat_accepted")
    assert assigned and all(e["assigned"] for e in assigned)
    # By hand an operator may go above the maximum; a chat ending frees a slot for routing.
    alice.ok({"type": "accept", "chat_id": third[0]})
    mine = [cid for cid, o in owners.items() if o == bob.id][0]
    d = app.visitor()
    d.connect()
    fourth = d.start_chat(name="Di", department="sales")["chat"]["id"]
    app.settle()
    assert app.run(app.services.chats.store.chat(fourth)).operator_id is None
    bob.ok({"type": "close", "chat_id": mine})
    app.settle()
    assert app.run(app.services.chats.store.chat(fourth)).operator_id == bob.id


def test_assignment_races_give_every_chat_exactly_one_owner(app):
    alice, bob, _carol = _team(app)
    for op in (alice, bob):
        app.run(app.services.accounts.update_operator(alice.party, op.id, {"max_chats": 1}))
    _department(app, "sales", "Sales", [alice, bob], auto_assign=True)
    services = app.services
    # Two chats arrive at once with two operators of capacity 1: one each, never two for one.
    ann, ben = app.visitor(), app.visitor()

    async def both():
        return await asyncio.gather(
            *(
                services.commands.dispatch(
                    v.party,
                    None,
                    {
                        "type": "start_chat",
                        "name": "V",
                        "text": "Hi",
                        "client_id": f"c{v.id}",
                        "department": "sales",
                    },
                )
                for v in (ann, ben)
            )
        )

    acks = app.run(both())
    app.settle()
    owners = [app.run(services.chats.store.chat(a["chat"]["id"])).operator_id for a in acks]
    assert sorted(owners) == sorted([alice.id, bob.id]), owners
    # Assignment against a manual accept of the same chat: exactly one wins.
    for op in (alice, bob):
        app.run(services.accounts.update_operator(alice.party, op.id, {"max_chats": 2}))
    cy = app.visitor()
    cy.connect()
    chat = app.run(
        services.chats.start_chat(
            cy.party, name="Cy", text="Hi", client_id="cy", department="sales"
        )
    )["chat"]

    async def race():
        accept = {"type": "accept", "chat_id": chat["id"]}
        return await asyncio.gather(
            services.commands.dispatch(alice.party, None, accept), services.routing.run()
        )

    results = app.run(race())
    app.settle()
    accepted = [e for e in cy.stream.of_type("chat_accepted") if e["chat_id"] == chat["id"]]
    assert len(accepted) == 1, accepted
    owner = app.run(services.chats.store.chat(chat["id"])).operator_id
    if results[0]["type"] == "ack":
        assert owner == alice.id
    else:
        assert results[0]["error"] == "chat_taken" and owner in (alice.id, bob.id)


def test_escalation_offers_the_chat_to_everyone_then_it_is_missed(make_app_in_process):
    app = make_app_in_process({"chat": {"queue_timeout": "5m"}})
    alice, bob, _carol = _team(app)
    sales = _department(app, "sales", "Sales", [alice], escalate_after=30)
    ann = app.visitor()
    ann.connect()
    chat_id = ann.start_chat(department="sales")["chat"]["id"]
    app.settle()
    assert _queue_ids(bob) == []
    app.advance(29)
    assert _queue_ids(bob) == []
    app.advance(2)
    assert _queue_ids(bob) == [chat_id]
    assert bob.stream.last("queue")["chats"][0]["escalated_at"] is not None
    app.advance(300)
    assert ann.stream.last("chat_missed")["reason"] == "queue_timeout"
    assert [e["text"] for e in ann.transcript(chat_id)["events"] if e["type"] == "message"]
    # The message that follows the missed chat goes to its department.
    left = {"type": "leave_message", "name": "Ann", "email": "ann@example.org", "text": "Call"}
    ann.ok(dict(left, chat_id=chat_id))
    assert app.inbox()[0]["department_id"] == sales["id"]


def test_the_queue_position_counts_down_with_an_estimate(app):
    alice, _bob, _carol = _team(app)
    # Without departments the site behaves as before: no queue position.
    early = app.visitor()
    early.connect()
    early_chat = early.start_chat(name="Early")["chat"]["id"]
    app.advance(1)
    assert not early.stream.of_type("queue_position")
    alice.ok({"type": "accept", "chat_id": early_chat})
    _department(app, "sales", "Sales", [alice])
    visitors = []
    for name in ("Ann", "Ben", "Cy"):
        v = app.visitor()
        v.connect()
        v.start_chat(name=name, department="sales")
        visitors.append(v)
    app.settle()
    places = [v.stream.last("queue_position") for v in visitors]
    assert [p["position"] for p in places] == [1, 2, 3]
    assert all(p["estimated_wait"] is None for p in places)  # no wait measured yet
    app.advance(40)
    alice.ok({"type": "accept", "chat_id": places[0]["chat_id"]})
    app.settle()
    cy = visitors[2].stream.last("queue_position")
    assert cy["position"] == 2 and cy["estimated_wait"] == 40  # the Sales wait only
    # A new stream learns its place right after welcome; the event is never stored.
    again = visitors[2].connect()
    assert [e["type"] for e in again.events[:2]] == ["welcome", "queue_position"]
    assert "seq" not in cy
    assert all(
        e["type"] != "queue_position" for e in visitors[2].transcript(cy["chat_id"])["events"]
    )


def _answered(app):
    alice, bob, carol = _team(app)
    ann = app.visitor()
    ann.connect()
    chat_id = ann.start_chat(name="Ann")["chat"]["id"]
    alice.ok({"type": "accept", "chat_id": chat_id})
    alice.ok({"type": "message", "chat_id": chat_id, "text": "Hi Ann", "client_id": "a1"})
    return alice, bob, carol, ann, chat_id


def test_notes_never_reach_the_visitor_whose_sequence_has_no_gap(app):
    alice, bob, _carol, ann, chat_id = _answered(app)
    cursor = ann.stream.last("message")["seq"]
    ann.disconnect()
    # While Ann is away: a note, a reply, another note, and Bob's note (any operator may).
    alice.ok({"type": "note", "chat_id": chat_id, "text": "Wants a refund", "client_id": "n1"})
    alice.ok({"type": "message", "chat_id": chat_id, "text": "Checking", "client_id": "a2"})
    again = alice.ok({"type": "note", "chat_id": chat_id, "text": "Order 1234", "client_id": "n2"})
    assert (
        alice.ok({"type": "note", "chat_id": chat_id, "text": "Order 1234", "client_id": "n2"})[
            "note"
        ]
        == again["note"]
    )  # idempotent by client_id
    bob.ok({"type": "note", "chat_id": chat_id, "text": "I know them", "client_id": "b1"})
    assert alice.stream.last("note")["text"] == "I know them"
    # Ann resumes from her cursor: exactly the reply, numbered right after it; no reset.
    stream = ann.connect(cursors={str(chat_id): cursor})
    replay = [e for e in stream.events if e.get("chat_id") == chat_id and "seq" in e]
    assert [(e["type"], e["seq"]) for e in replay] == [("message", cursor + 1)]
    assert not stream.of_type("reset") and not stream.of_type("note")
    assert ann.send({"type": "sync", "cursors": {str(chat_id): cursor + 1}})["type"] == "ack"
    assert not stream.of_type("reset")
    # Live as well: the next reply follows at once in her sequence, the operator's is further.
    op_seq = alice.ok({"type": "message", "chat_id": chat_id, "text": "Done", "client_id": "a3"})
    assert stream.last("message")["seq"] == cursor + 2
    assert op_seq["message"]["seq"] == cursor + 5
    # Her transcript and summary know nothing of notes; the operators' have them all.
    mine = ann.transcript(chat_id)
    assert [e["seq"] for e in mine["events"]] == list(range(1, cursor + 3))
    assert all(e["type"] != "note" for e in mine["events"])
    assert mine["chat"]["last_seq"] == cursor + 2
    ops = alice.transcript(chat_id)
    assert [e["text"] for e in ops["events"] if e["type"] == "note"] == [
        "Wants a refund",
        "Order 1234",
        "I know them",
    ]
    assert ops["chat"]["last_seq"] == cursor + 5
    # A visitor retrying a message gets it in her own numbering.
    sent = ann.say(chat_id, "Thanks", client_id="v9")
    assert ann.say(chat_id, "Thanks", client_id="v9")["message"] == sent["message"]
    assert sent["message"]["seq"] == cursor + 3


def test_a_transfer_with_a_note_keeps_the_chat_whole(app):
    alice, bob, _carol, ann, chat_id = _answered(app)
    offer = alice.ok(
        {"type": "transfer", "chat_id": chat_id, "operator_id": bob.id, "note": "Billing <b>"}
    )["transfer"]
    assert offer["state"] == "offered" and offer["to_operator"]["name"] == "Bob"
    assert bob.stream.last("transfer")["transfer"]["note"] == "Billing <b>"
    # While offered the chat stays Alice's.
    alice.ok({"type": "message", "chat_id": chat_id, "text": "One moment", "client_id": "a2"})
    got = bob.ok({"type": "accept_transfer", "transfer_id": offer["id"]})
    assert got["chat"]["operator"]["name"] == "Bob"
    moved = ann.stream.last("chat_transferred")
    assert (moved["from"]["name"], moved["operator"]["name"]) == ("Alice", "Bob")
    assert not ann.stream.of_type("note")
    texts = [e.get("text") for e in bob.stream.events if e.get("chat_id") == chat_id]
    assert "Hi, I need help" not in texts  # the first message is in the replay below
    replay = [e for e in bob.stream.events if e.get("chat_id") == chat_id and "seq" in e]
    assert [e["type"] for e in replay][:2] == ["chat_started", "message"]
    assert any(e["type"] == "note" and e["transfer"] for e in replay)
    assert alice.stream.last("transfer")["transfer"]["state"] == "accepted"
    assert bob.say(chat_id, "Bob here")["type"] == "ack"
    assert alice.say(chat_id, "Still me?")["error"] == "forbidden"
    again = bob.send({"type": "accept_transfer", "transfer_id": offer["id"]})
    assert again["error"] == "not_found"


def test_a_declined_or_expired_transfer_returns_and_bad_transfers_change_nothing(
    make_app_in_process,
):
    app = make_app_in_process({"chat": {"transfer_timeout": "20s"}})
    alice, bob, carol, ann, chat_id = _answered(app)
    _department(app, "support", "Support", [bob, carol])
    offer = alice.ok({"type": "transfer", "chat_id": chat_id, "operator_id": bob.id})["transfer"]
    assert (
        alice.send({"type": "transfer", "chat_id": chat_id, "operator_id": carol.id})["error"]
        == "transfer_pending"
    )
    assert (
        carol.send({"type": "accept_transfer", "transfer_id": offer["id"]})["error"] == "forbidden"
    )
    bob.ok({"type": "decline_transfer", "transfer_id": offer["id"]})
    assert alice.stream.last("transfer")["transfer"]["state"] == "declined"
    # To a department: Bob declines, Carol says nothing: it expires; the chat stays Alice's.
    offer = alice.ok({"type": "transfer", "chat_id": chat_id, "department": "support"})["transfer"]
    assert offer["to_department"]["key"] == "support"
    bob.ok({"type": "decline_transfer", "transfer_id": offer["id"]})
    assert alice.stream.last("transfer")["transfer"]["state"] == "offered"
    app.advance(21)
    assert alice.stream.last("transfer")["transfer"]["state"] == "expired"
    assert carol.stream.last("transfer")["transfer"]["state"] == "expired"
    assert alice.transcript(chat_id)["chat"]["operator"]["name"] == "Alice"
    # Bad transfers: each named, nothing changes.
    app.run(app.services.accounts.create_operator("dan", "Dan", "correct horse 1"))
    dan = app.run(app.services.storage.accounts.operator_by_username("dan"))
    app.run(app.services.accounts.update_operator(alice.party, carol.id, {"disabled": True}))
    for cmd, code in (
        ({"operator_id": 999}, "unknown_operator"),
        ({"operator_id": carol.id}, "operator_disabled"),
        ({"operator_id": dan.id}, "operator_not_online"),
        ({"operator_id": alice.id}, "invalid_field"),
        ({"department": "nowhere"}, "unknown_department"),
        ({}, "invalid_field"),
        ({"operator_id": bob.id, "department": "support"}, "invalid_field"),
        ({"operator_id": bob.id, "note": "x" * 1001}, "too_long"),
    ):
        err = alice.send({"type": "transfer", "chat_id": chat_id, **cmd})
        assert err["error"] == code, (cmd, err)
    bob.ok({"type": "status", "status": "away"})
    err = alice.send({"type": "transfer", "chat_id": chat_id, "department": "support"})
    assert err["error"] == "department_offline"
    assert (
        bob.send({"type": "transfer", "chat_id": chat_id, "operator_id": alice.id})["error"]
        == "forbidden"
    )
    assert alice.transcript(chat_id)["chat"]["operator"]["name"] == "Alice"
    assert not ann.stream.of_type("chat_transferred")


def test_a_transfer_survives_a_reconnect_of_either_side(app):
    alice, bob, _carol, ann, chat_id = _answered(app)
    cursor = max(e["seq"] for e in alice.stream.events if e.get("chat_id") == chat_id)
    bob.disconnect()
    offer = alice.ok({"type": "transfer", "chat_id": chat_id, "operator_id": bob.id})["transfer"]
    # Bob's console comes back within its grace: the offer is there right after welcome.
    stream = bob.connect()
    assert stream.events[0]["type"] == "welcome"
    assert stream.last("transfer")["transfer"]["id"] == offer["id"]
    # Alice drops meanwhile; Bob accepts; Alice's console, back, replays the hand-over.
    alice.disconnect()
    bob.ok({"type": "accept_transfer", "transfer_id": offer["id"]})
    back = alice.connect(cursors={str(chat_id): cursor})
    replay = [e for e in back.events if e.get("chat_id") == chat_id and "seq" in e]
    assert [e["type"] for e in replay] == ["chat_transferred"]
    assert replay[0]["seq"] == cursor + 1
    assert not back.of_type("transfer")  # nothing offered any more


def test_a_departments_offline_message_is_mailed_to_its_address(make_app_in_process):
    app = make_app_in_process(
        {"mail": {"smtp_host": "127.0.0.1", "smtp_port": "9", "to_address": "all@shop.example"}}
    )
    alice, _bob, _carol = _team(app)
    _department(app, "sales", "Sales", [alice], email="sales@shop.example")
    _department(app, "support", "Support", [alice])  # no address of its own
    ann = app.visitor()
    ann.connect()
    note = {"type": "leave_message", "name": "Ann", "email": "ann@example.org", "text": "Quote?"}
    for department in ("sales", "support", None):
        ann.ok(dict(note, department=department) if department else note)
    listing = app.run(app.services.offline.listing())
    got = {(m["department"] or {}).get("key"): m["mail"][0]["recipient"] for m in listing}
    assert got == {
        "sales": "sales@shop.example",
        "support": "all@shop.example",
        None: "all@shop.example",
    }
    err = ann.send(dict(note, department="nowhere"))
    assert err["error"] == "unknown_department" and err["field"] == "department"
    assert len(app.run(app.services.offline.listing())) == 3
