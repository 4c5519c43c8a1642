"""Operators' accounts: sessions that end (disabled, password changed, logout, expiry), login
throttling, and the first administrator. The rules in-process; what a browser sees of them
(cookies, headers, the logged setup token) against the real server."""

from __future__ import annotations

import requests
from conftest import PASSWORD, TIMEOUT, ConsoleClient, login


def ended(stream, reason: str) -> None:
    """The stream was told its session ended, and then closed with 4001."""
    assert stream.last("session_ended")["reason"] == reason
    assert stream.closed[0] == 4001


def test_disabling_an_operator_ends_his_sessions(app):
    admin = app.operator("admin", admin=True)
    admin.connect()  # online: there is a colleague to hand Bob's chat to
    bob, ann, chat_id = app.bob_answers_ann()
    accounts = app.services.accounts

    op = app.run(accounts.update_operator(admin.party, bob.id, {"disabled": True}))
    assert op.public()["disabled"] is True
    ended(bob.stream, "disabled")
    # The session is gone: its cookie opens nothing (GET /api/console/* answers 401).
    assert not app.session_alive(bob)
    # His chat is handed over to the queue at once.
    requeued = ann.stream.last("chat_requeued")
    assert requeued["operator"]["name"] == "Bob" and requeued["reason"] == "handed_over"
    # He cannot log in, and is told exactly what a wrong password is told.
    refused = app.login_error("bob", PASSWORD)
    wrong = app.login_error("bob", "not his password")
    assert refused["status"] == 401 and refused["error"] == "login_failed"
    assert refused == wrong

    app.run(accounts.update_operator(admin.party, bob.id, {"disabled": False}))
    assert app.session_alive(app.login("bob"))


def test_admin_resetting_a_password_ends_the_sessions(app):
    admin = app.operator("admin", admin=True)
    admin.connect()
    bob = app.operator("bob")
    bob.connect()
    app.run(
        app.services.accounts.update_operator(admin.party, bob.id, {"password": "reset horse 22"})
    )
    ended(bob.stream, "password_changed")
    assert not app.session_alive(bob)
    assert app.login_error("bob", PASSWORD)["status"] == 401
    assert app.session_alive(app.login("bob", "reset horse 22"))
    # The administrator's own session is untouched.
    assert admin.alive() and app.session_alive(admin)


def test_changing_your_own_password_keeps_this_session_and_ends_the_others(app):
    here = app.operator("bob")
    there = app.login("bob")
    here.connect()
    there.connect()
    accounts = app.services.accounts
    wrong = app.error(
        accounts.change_own_password(
            here.party, {"current_password": "wrong", "new_password": "new horse 333"}
        )
    )
    assert wrong["status"] == 401 and wrong["error"] == "login_failed"
    assert there.alive()

    app.run(
        accounts.change_own_password(
            here.party, {"current_password": PASSWORD, "new_password": "new horse 333"}
        )
    )
    app.settle()
    ended(there.stream, "password_changed")
    assert not app.session_alive(there)
    assert here.alive() and app.session_alive(here)
    assert not here.stream.of_type("session_ended")
    assert app.login_error("bob", PASSWORD)["status"] == 401
    assert app.session_alive(app.login("bob", "new horse 333"))


def test_logout_closes_that_sessions_sockets_only(app):
    here = app.operator("bob")
    there = app.login("bob")
    here.connect()
    there.connect()
    # What POST /api/console/logout does.
    app.run(
        app.services.accounts.end_sessions(here.id, "logout", only_session_id=here.party.session_id)
    )
    ended(here.stream, "logout")
    # The session is gone on the server, not only the cookie in this client.
    assert not app.session_alive(here)
    assert there.alive() and app.session_alive(there)
    assert not there.stream.of_type("session_ended")


def test_a_password_set_from_the_command_line_ends_the_streams_within_seconds(app):
    bob = app.operator("bob")
    bob.connect()
    # What ``cutelive passwd`` does, from another process: it cannot reach the server, so the
    # server learns of it from the database.
    app.run(app.services.accounts.set_password("bob", "brand new horse"))
    assert not app.session_alive(bob)
    app.advance(5)
    ended(bob.stream, "expired")
    assert app.session_alive(app.login("bob", "brand new horse"))


def test_login_throttling_and_identical_failures(make_app_in_process):
    app = make_app_in_process({"operators": {"login_failures": "3/15m", "login_lockout": "15m"}})
    app.operator("bob")
    app.operator("carol")

    # Unknown user and wrong password look exactly the same.
    unknown = app.login_error("nobody", PASSWORD)
    wrong = app.login_error("bob", "not the password")
    assert unknown == wrong
    assert unknown["status"] == 401 and unknown["error"] == "login_failed"

    for attempt in ("wrong again", "wrong thrice"):
        assert app.login_error("bob", attempt)["status"] == 401
    # Three failures: now even the right password is refused.
    throttled = app.login_error("bob", PASSWORD)
    assert throttled["status"] == 429 and throttled["error"] == "login_throttled"
    assert throttled["retry_after"] > 0
    # Another account is not affected.
    assert app.session_alive(app.login("carol"))
    # An unknown account locks the same way, so locking tells nothing either.
    for _ in range(2):
        assert app.login_error("nobody", "guess")["status"] == 401
    throttled = app.login_error("nobody", PASSWORD)
    assert throttled["status"] == 429 and throttled["error"] == "login_throttled"
    # The lockout ends after its time, not before.
    app.advance(14 * 60)
    assert app.login_error("bob", PASSWORD)["error"] == "login_throttled"
    app.advance(61)
    assert app.session_alive(app.login("bob"))


def test_login_failures_per_address_are_throttled(make_app_in_process):
    app = make_app_in_process({"operators": {"login_failures_per_ip": "3/15m"}})
    app.operator("bob")
    for name in ("x", "y", "z"):
        assert app.login_error(name, "guess", ip="203.0.113.9")["status"] == 401
    throttled = app.login_error("bob", PASSWORD, ip="203.0.113.9")
    assert throttled["status"] == 429 and throttled["error"] == "login_throttled"
    # Another address is not affected.
    assert app.session_alive(app.login("bob", ip="203.0.113.10"))


def test_a_refused_login_over_http_sets_no_cookie_and_says_when_to_retry(make_server):
    server = make_server(config={"operators": {"login_failures": "1/15m"}})
    server.create_operator("bob", display_name="Bob")
    _, unknown = login(server, "nobody", PASSWORD)
    _, wrong = login(server, "bob", "not the password")
    assert unknown.status_code == wrong.status_code == 401
    assert unknown.content == wrong.content
    assert "cutelive_session" not in wrong.cookies
    c, r = login(server, "bob", PASSWORD)
    assert r.status_code == 429, r.text
    assert r.json()["error"] == "login_throttled" and r.json()["retry_after"] > 0
    assert int(r.headers["Retry-After"]) > 0
    assert "cutelive_session" not in r.cookies
    assert c.get("/api/console/chats").status_code == 401


def test_first_administrator_setup_needs_the_logged_token(make_server):
    server = make_server()
    c = ConsoleClient(server)
    s = c.get("/api/console/session").json()
    assert s["setup_required"] is True and s["operator"] is None
    token = server.setup_token_from_log()
    body = {"username": "root", "display_name": "Root", "password": PASSWORD}

    r = c.post("/api/console/setup", dict(body, setup_token="not-" + token))
    assert r.status_code == 403 and r.json()["error"] == "bad_setup_token"
    r = requests.post(
        server.url + "/api/console/setup", json=dict(body, setup_token=token), timeout=TIMEOUT
    )
    assert r.status_code == 403 and r.json()["error"] == "csrf_failed"
    assert c.get("/api/console/session").json()["setup_required"] is True

    r = c.post("/api/console/setup", dict(body, setup_token=token))
    assert r.status_code == 201, r.text
    op = r.json()["operator"]
    assert op["username"] == "root" and op["is_admin"] is True
    s = c.get("/api/console/session").json()
    assert s["setup_required"] is False and s["operator"]["username"] == "root"
    assert c.get("/api/console/operators").status_code == 200  # logged in

    other = ConsoleClient(server)
    r = other.post("/api/console/setup", dict(body, username="eve", setup_token=token))
    assert r.status_code == 409 and r.json()["error"] == "setup_done"
    assert login(server, "eve", PASSWORD)[1].status_code == 401
    # With an administrator in place, a restart prints no new token.
    server.restart()
    assert sum("setup token" in line for line in server.log_lines) == 1
    assert ConsoleClient(server).get("/api/console/session").json()["setup_required"] is False
