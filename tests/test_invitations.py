"""Invitations to chat, in-process: an operator's invitation accepted into a chat, declined,
expired, superseded by the visitor's own chat, refused for a visitor who left, and the
automatic rules."""

from __future__ import annotations

import uuid

from conftest import row_of

from livesupport.monitor import Monitor

#: Consoles get monitor changes coalesced: a change reaches them this long after it.
COALESCE = Monitor.COALESCE


def test_invite_accept_and_chat(app):
    bob = app.operator("bob", display_name="Bob")
    bob.connect()
    ann = app.visitor()
    ann.track("https://shop.example/pricing", "Pricing")
    tab = ann.connect()
    app.advance(COALESCE)
    assert row_of(bob.stream.events, ann.id)
    bob.ok({"type": "invite", "visitor_id": ann.id, "message": "Need help with pricing?"})
    inv = tab.last("invitation")
    assert inv["operator"]["name"] == "Bob" and inv["message"] == "Need help with pricing?"
    # Inviting twice does not make a second invitation.
    r2 = bob.ok({"type": "invite", "visitor_id": ann.id, "message": "again"})
    assert r2["invitation"]["id"] == inv["id"]
    assert len(tab.of_type("invitation")) == 1
    app.advance(COALESCE)
    assert row_of(bob.stream.events, ann.id)["state"] == "invited"
    # A reconnecting tab is shown the pending invitation too.
    tab2 = ann.connect()
    assert tab2.last("invitation")["id"] == inv["id"]
    a = ann.ok(
        {
            "type": "accept_invitation",
            "invitation_id": inv["id"],
            "name": "Ann",
            "text": "Yes please",
            "client_id": uuid.uuid4().hex,
        }
    )
    assert a["chat"]["status"] == "active", a
    chat_id = a["chat"]["id"]
    assert a["chat"]["operator"]["name"] == "Bob"
    assert bob.stream.last("message")["text"] == "Yes please"
    started = [e for e in bob.stream.of_type("chat_started") if e["chat_id"] == chat_id][0]
    assert started["invitation"]["message"] == "Need help with pricing?"
    bob.ok({"type": "message", "chat_id": chat_id, "text": "Hi Ann", "client_id": "x1"})
    assert tab.last("message")["text"] == "Hi Ann"
    app.advance(COALESCE)
    row = row_of(bob.stream.events, ann.id)
    assert row["state"] == "chatting" and row["operator"]["name"] == "Bob"


def test_decline_expire_and_left_visitor(make_app_in_process):
    app = make_app_in_process({"monitor": {"invitation_ttl": "1s", "leave_grace": "1s"}})
    bob = app.operator("bob", display_name="Bob")
    bob.connect()
    ann = app.visitor()
    ann.connect()
    app.advance(COALESCE)
    assert row_of(bob.stream.events, ann.id)
    bob.ok({"type": "invite", "visitor_id": ann.id})
    inv = ann.stream.last("invitation")
    ann.ok({"type": "decline_invitation", "invitation_id": inv["id"]})
    assert ann.stream.last("invitation_answered") == {
        "type": "invitation_answered",
        "id": inv["id"],
        "state": "declined",
    }
    app.advance(COALESCE)
    assert row_of(bob.stream.events, ann.id)["invitation"]["state"] == "declined"
    # A new invitation expires when ignored, after its time and not before.
    inv2 = bob.ok({"type": "invite", "visitor_id": ann.id})["invitation"]
    assert inv2["id"] != inv["id"]
    app.advance(0.5)
    assert not ann.stream.of_type("invitation_expired")
    app.advance(1.5)  # its time, and the once-a-second tick that notices
    assert ann.stream.last("invitation_expired")["id"] == inv2["id"]
    assert row_of(bob.stream.events, ann.id)["invitation"]["state"] == "expired"
    late = ann.send({"type": "accept_invitation", "invitation_id": inv2["id"]})
    assert late["error"] == "not_found"
    # A visitor who left cannot be invited.
    ann.disconnect()
    app.advance(1.1 + COALESCE)
    assert row_of(bob.stream.events, ann.id)["state"] == "left"
    r = bob.send({"type": "invite", "visitor_id": ann.id})
    assert r["error"] == "visitor_left"


def test_starting_a_chat_supersedes_a_pending_invitation(app):
    bob = app.operator("bob")
    bob.connect()
    ann = app.visitor()
    tab = ann.connect()
    app.advance(COALESCE)
    assert row_of(bob.stream.events, ann.id)
    inv = bob.ok({"type": "invite", "visitor_id": ann.id})["invitation"]
    ann.start_chat("I'd rather ask myself")
    assert tab.last("invitation_answered") == {
        "type": "invitation_answered",
        "id": inv["id"],
        "state": "superseded",
    }
    tab2 = ann.connect()
    assert not tab2.of_type("invitation")
    r = ann.send({"type": "accept_invitation", "invitation_id": inv["id"]})
    assert r["error"] == "not_found"


def test_automatic_invitation_rule(app):
    admin = app.operator("admin", admin=True)
    admin.connect()  # an operator online: rules only fire then
    invitations = app.services.invitations
    app.run(
        invitations.save_rule(
            {
                "name": "Pricing help",
                "message": "Questions about plans?",
                "conditions": {"url_contains": "/pricing", "min_pages": 2},
            }
        )
    )
    bad = app.error(
        invitations.save_rule({"name": "x", "message": "y", "conditions": {"weather": "sunny"}})
    )
    assert bad["status"] == 400 and bad["error"] == "unknown_field"
    ann = app.visitor()
    ann.connect()
    ann.track("https://shop.example/pricing", "Pricing")
    assert not ann.stream.of_type("invitation")
    ann.track("https://shop.example/pricing?plan=pro", "Pricing")
    inv = ann.stream.last("invitation")
    assert inv["message"] == "Questions about plans?" and inv["operator"] is None
    # At most once per visit.
    ann.ok({"type": "decline_invitation", "invitation_id": inv["id"]})
    ann.track("https://shop.example/pricing", "Pricing")
    app.advance(5)
    assert len(ann.stream.of_type("invitation")) == 1


def test_rules_wait_for_an_operator_online_and_for_time_on_the_page(app):
    admin = app.operator("admin", admin=True)
    app.run(
        app.services.invitations.save_rule(
            {
                "name": "Lingering",
                "message": "Still deciding?",
                "conditions": {"min_time_on_page": 30},
            }
        )
    )
    ann = app.visitor()
    ann.connect()
    ann.track("https://shop.example/", "Home")
    app.advance(40)
    assert not ann.stream.of_type("invitation")  # nobody online to answer
    admin.connect()
    ann.track("https://shop.example/cart", "Cart")
    app.advance(29)
    assert not ann.stream.of_type("invitation")
    app.advance(2)
    assert ann.stream.last("invitation")["message"] == "Still deciding?"
