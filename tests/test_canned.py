"""Canned replies, in process (docs/PROTOCOL.md §7.9): personal ones each operator manages,
shared ones administrators manage, department ones offered only to its members, and input
refused with the field named and nothing stored."""

from __future__ import annotations

import pytest


def _create(app, op, **body):
    return app.run(app.services.canned.create(op.party, body))


def _shortcuts(app, op) -> dict[str, bool]:
    """What the operator's console lists: shortcut -> usable in the composer."""
    return {r["shortcut"]: r["usable"] for r in app.run(app.services.canned.listing(op.party))}


@pytest.fixture
def team(app):
    admin = app.operator("admin", admin=True, display_name="Alice")
    bob = app.operator("bob", display_name="Bob")
    carol = app.operator("carol", display_name="Carol")
    sales = app.run(
        app.services.departments.create({"key": "sales", "name": "Sales", "members": [bob.id]})
    )
    return admin, bob, carol, sales


def test_each_sees_their_own_the_shared_and_their_departments(app, team):
    admin, bob, carol, sales = team
    _create(app, bob, shortcut="bye", text="Bye {visitor}!")
    _create(app, carol, shortcut="bye", text="See you")  # the same shortcut: another owner
    hello = _create(app, admin, shortcut="hello", text="Hello, I'm {operator}", shared=True)
    assert hello["shared"] and hello["department"] is None and hello["usable"]
    deal = _create(app, admin, shortcut="deal", text="10% off", department_id=sales["id"])
    assert deal["shared"] and deal["department"] == {
        "id": sales["id"],
        "key": "sales",
        "name": "Sales",
    }
    assert _shortcuts(app, bob) == {"bye": True, "deal": True, "hello": True}
    assert _shortcuts(app, carol) == {"bye": True, "hello": True}
    # The administrator manages the department's reply without being offered it.
    assert _shortcuts(app, admin) == {"deal": False, "hello": True}
    # A department's replies go with it.
    app.run(app.services.departments.delete(sales["id"]))
    assert _shortcuts(app, bob) == {"bye": True, "hello": True}


def test_only_administrators_manage_shared_replies(app, team):
    admin, bob, carol, sales = team
    canned = app.services.canned
    for body in (
        {"shortcut": "x", "text": "x", "shared": True},
        {"shortcut": "x", "text": "x", "department_id": sales["id"]},
    ):
        err = app.error(canned.create(bob.party, body))
        assert (err["error"], err["status"]) == ("forbidden", 403)
    shared = _create(app, admin, shortcut="hello", text="Hello", shared=True)
    for call in (
        canned.update(bob.party, shared["id"], {"text": "Mine now"}),
        canned.delete(bob.party, shared["id"]),
    ):
        assert app.error(call)["status"] == 403
    assert _shortcuts(app, bob) == {"hello": True}
    changed = app.run(
        canned.update(admin.party, shared["id"], {"text": "Hi", "department_id": sales["id"]})
    )
    assert (changed["text"], changed["department_id"]) == ("Hi", sales["id"])
    back = app.run(canned.update(admin.party, shared["id"], {"department_id": None}))
    assert back["department_id"] is None
    app.run(canned.delete(admin.party, shared["id"]))
    assert _shortcuts(app, bob) == {}


def test_another_operators_reply_is_missing_like_one_that_is_not_there(app, team):
    admin, bob, carol, _sales = team
    canned = app.services.canned
    mine = _create(app, bob, shortcut="bye", text="Bye")
    for op in (carol, admin):  # an administrator has no business in personal replies either
        for call in (
            canned.update(op.party, mine["id"], {"text": "Hijacked"}),
            canned.delete(op.party, mine["id"]),
        ):
            err = app.error(call)
            assert (err["error"], err["status"]) == ("not_found", 404)
    assert app.error(canned.delete(bob.party, 999))["status"] == 404
    edited = app.run(canned.update(bob.party, mine["id"], {"shortcut": "ciao", "text": "Ciao"}))
    assert (edited["shortcut"], edited["text"], edited["shared"]) == ("ciao", "Ciao", False)
    app.run(canned.delete(bob.party, mine["id"]))
    assert _shortcuts(app, bob) == {}


def test_bad_input_names_the_field_and_stores_nothing(app, team):
    admin, bob, _carol, sales = team
    canned = app.services.canned
    limit = app.services.config.limits_message_chars
    kept = _create(app, bob, shortcut="bye", text="Bye")
    _create(app, admin, shortcut="hello", text="Hello", shared=True)
    for op, body, code, field in (
        (bob, {"shortcut": "bye", "text": "Again"}, "duplicate", "shortcut"),
        (admin, {"shortcut": "hello", "text": "x", "shared": True}, "duplicate", "shortcut"),
        (bob, {"shortcut": "/bye", "text": "x"}, "invalid_field", "shortcut"),
        (bob, {"shortcut": "Bye", "text": "x"}, "invalid_field", "shortcut"),
        (bob, {"shortcut": "a b", "text": "x"}, "invalid_field", "shortcut"),
        (bob, {"shortcut": "", "text": "x"}, "invalid_field", "shortcut"),
        (bob, {"shortcut": "s" * 33, "text": "x"}, "too_long", "shortcut"),
        (bob, {"shortcut": "ok", "text": ""}, "invalid_field", "text"),
        (bob, {"shortcut": "ok", "text": "t" * (limit + 1)}, "too_long", "text"),
        (bob, {"shortcut": "ok"}, "invalid_field", "text"),
        (bob, {"shortcut": "ok", "text": "x", "shared": "yes"}, "invalid_field", "shared"),
        (bob, {"shortcut": "ok", "text": "x", "operator_id": 1}, "forbidden_field", "operator_id"),
        (bob, {"shortcut": "ok", "text": "x", "colour": "red"}, "unknown_field", "colour"),
        (
            admin,
            {"shortcut": "ok", "text": "x", "department_id": 999},
            "unknown_department",
            "department_id",
        ),
        (
            admin,
            {"shortcut": "ok", "text": "x", "shared": False, "department_id": sales["id"]},
            "invalid_field",
            "department_id",
        ),
    ):
        err = app.error(canned.create(op.party, body))
        assert (err["error"], err.get("field")) == (code, field), (body, err)
    other = _create(app, bob, shortcut="thanks", text="Thanks")
    for body, code, field in (
        ({"shortcut": "bye"}, "duplicate", "shortcut"),
        ({"shortcut": "fine", "text": "t" * (limit + 1)}, "too_long", "text"),
        ({"department_id": sales["id"]}, "invalid_field", "department_id"),
        ({"shared": True}, "unknown_field", "shared"),
    ):
        err = app.error(canned.update(bob.party, other["id"], body))
        assert (err["error"], err.get("field")) == (code, field), (body, err)
    listed = app.run(canned.listing(bob.party))
    assert [(r["shortcut"], r["text"]) for r in listed] == [
        ("bye", "Bye"),
        ("hello", "Hello"),
        ("thanks", "Thanks"),
    ]
    assert kept["id"] in {r["id"] for r in listed}
    # A text at the limit is fine, and kept exactly (line breaks, spaces, placeholders).
    text = "Hi {visitor},\n  I'm {operator}. "
    text += "x" * (limit - len(text))
    assert _create(app, bob, shortcut="long_one-2", text=text)["text"] == text


def test_over_http_with_statuses_and_the_limit_in_the_session(server):
    admin, bob = server.console("admin"), server.console("bob")
    limits = bob.get("/api/console/session").json()["protocol"]["limits"]
    assert limits["canned_shortcut_chars"] == 32
    r = bob.post("/api/console/canned", {"shortcut": "greet", "text": "Hi {visitor}"})
    assert r.status_code == 201, r.text
    mine = r.json()["reply"]
    r = bob.post("/api/console/canned", {"shortcut": "greet", "text": "Again"})
    assert (r.status_code, r.json()["error"], r.json()["field"]) == (409, "duplicate", "shortcut")
    r = bob.post("/api/console/canned", {"shortcut": "all", "text": "x", "shared": True})
    assert (r.status_code, r.json()["error"]) == (403, "forbidden")
    r = admin.post("/api/console/canned", {"shortcut": "all", "text": "For all", "shared": True})
    assert r.status_code == 201, r.text
    shared = r.json()["reply"]
    url = server.url + f"/api/console/canned/{mine['id']}"
    r = admin.http.delete(url, timeout=10)
    assert (r.status_code, r.json()["error"]) == (404, "not_found")
    r = bob.patch(f"/api/console/canned/{shared['id']}", {"text": "Mine"})
    assert (r.status_code, r.json()["error"]) == (403, "forbidden")
    r = bob.patch(f"/api/console/canned/{mine['id']}", {"text": "Hello {visitor}"})
    assert (r.status_code, r.json()["reply"]["text"]) == (200, "Hello {visitor}")
    listed = bob.get("/api/console/canned").json()["replies"]
    assert [(c["shortcut"], c["shared"]) for c in listed] == [("all", True), ("greet", False)]
    assert bob.http.delete(url, timeout=10).status_code == 200
    assert [c["shortcut"] for c in bob.get("/api/console/canned").json()["replies"]] == ["all"]
