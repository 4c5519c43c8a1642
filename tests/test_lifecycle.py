"""Chat and operator lifecycles: accept race, queue timeout, operators going offline, sessions
ending, login throttling, first-administrator setup and the command line.
"""

from __future__ import annotations

import random
import re
import sqlite3
import subprocess
import threading
import tomllib
import uuid

import requests
from conftest import ROOT, SERVER_CMD, TIMEOUT, ConsoleClient

PASSWORD = "correct horse 1"


def login(server, username: str, password: str) -> tuple[ConsoleClient, requests.Response]:
    """A fresh console client (with its CSRF token) and the raw answer to its login."""
    c = ConsoleClient(server)
    r = c.post("/api/console/login", {"username": username, "password": password})
    return c, r


def with_cookie(server, cookie: str) -> requests.Session:
    """A bare HTTP session presenting an old session cookie value."""
    s = requests.Session()
    s.cookies.set("cutelive_session", cookie, domain="127.0.0.1")
    return s


def transcript(client, chat_id: int) -> dict:
    r = client.get(f"/api/console/chats/{chat_id}")
    assert r.status_code == 200, r.text
    return r.json()


def queue_has(chat_id: int):
    return lambda e: e["type"] == "queue" and any(c["id"] == chat_id for c in e["chats"])


def queue_lacks(chat_id: int):
    return lambda e: e["type"] == "queue" and all(c["id"] != chat_id for c in e["chats"])


def alive(ws) -> bool:
    """The socket is open and answering (a ping gets its pong)."""
    return ws.request({"type": "ping"})["type"] == "pong"


# -- accept race -------------------------------------------------------------------------------


def test_accept_race_exactly_one_operator_wins(server):
    server.create_operator("carol", display_name="Carol")
    bob, carol = server.console("bob"), server.console("carol")
    streams = {"bob": bob.connect(), "carol": carol.connect()}
    names = {"bob": "Bob", "carol": "Carol"}

    chats = []
    for n in range(20):
        v = server.visitor()
        v.connect()
        chats.append((v, v.start_chat(name=f"Visitor {n}")["chat"]["id"]))

    rng = random.Random(20)
    won: dict[str, list[int]] = {"bob": [], "carol": []}
    for visitor, chat_id in chats:
        replies: dict[str, dict] = {}
        barrier = threading.Barrier(2)

        def accept(who, chat_id=chat_id, barrier=barrier, replies=replies):
            barrier.wait()
            replies[who] = streams[who].request({"type": "accept", "chat_id": chat_id})

        order = ["bob", "carol"]
        rng.shuffle(order)
        threads = [threading.Thread(target=accept, args=(who,)) for who in order]
        for t in threads:
            t.start()
        for t in threads:
            t.join(TIMEOUT)
        winners = [w for w, r in replies.items() if r["type"] == "ack"]
        losers = [w for w, r in replies.items() if r["type"] == "error"]
        assert len(winners) == 1 and len(losers) == 1, replies
        winner, loser = winners[0], losers[0]
        assert replies[winner]["chat"]["status"] == "active"
        assert replies[winner]["chat"]["operator"]["name"] == names[winner]
        assert replies[loser]["error"] == "chat_taken"
        assert replies[loser]["chat_id"] == chat_id
        won[winner].append(chat_id)

        # Exactly one chat_accepted is stored, naming the winner; the visitor is told once.
        events = transcript(bob, chat_id)["events"]
        accepted = [e for e in events if e["type"] == "chat_accepted"]
        assert len(accepted) == 1 and accepted[0]["operator"]["name"] == names[winner]
        assert [e["seq"] for e in events] == [1, 2, 3]
        ev = visitor.ws.wait(lambda e: e["type"] == "chat_accepted", what="chat_accepted")
        assert ev["operator"]["name"] == names[winner]

    assert len(won["bob"]) + len(won["carol"]) == 20
    for who, ws in streams.items():
        assert alive(ws)  # whatever the accepts published has arrived before this pong
        mine = set(won[who])
        for _, chat_id in chats:
            seqs = [e["seq"] for e in ws.chat_events(chat_id)]
            # The winner's stream got the whole chat; the loser's got nothing of it.
            assert seqs == ([1, 2, 3] if chat_id in mine else []), (who, chat_id, seqs)
    for visitor, _ in chats:
        assert alive(visitor.ws)
        assert len([e for e in visitor.ws.events if e["type"] == "chat_accepted"]) == 1


# -- queue timeout -----------------------------------------------------------------------------


def test_queue_timeout_offers_the_offline_form(make_server):
    server = make_server(config={"chat": {"queue_timeout": "1s"}})
    server.create_operator("bob", display_name="Bob")
    bob = server.console("bob")
    bws = bob.connect()
    ann = server.visitor()
    ws = ann.connect()
    chat_id = ann.start_chat("Is anyone there?")["chat"]["id"]
    listed = bws.wait(queue_has(chat_id), what="queue listing the chat")

    missed = ws.wait(lambda e: e["type"] == "chat_missed", what="chat_missed")
    assert missed["chat_id"] == chat_id and missed["reason"] == "queue_timeout"
    assert missed["seq"] == 3
    # The operators' queue no longer lists it.
    bws.wait(queue_lacks(chat_id), start=bws.events.index(listed) + 1, what="queue without it")
    t = ann.http.get(server.url + f"/api/visitor/chats/{chat_id}", timeout=TIMEOUT).json()
    assert t["chat"]["status"] == "missed" and t["chat"]["last_seq"] == 3
    assert t["chat"]["closed_at"] is not None
    assert [e["type"] for e in t["events"]] == ["chat_started", "message", "chat_missed"]
    # Too late to accept it or to write to it.
    r = bws.request({"type": "accept", "chat_id": chat_id})
    assert r["type"] == "error" and r["error"] == "chat_taken"
    r = ann.say(chat_id, "hello?")
    assert r["type"] == "error" and r["error"] == "chat_closed"

    # The visitor leaves a message instead, with what they typed, following the missed chat.
    r = ws.request(
        {
            "type": "leave_message",
            "name": "Ann",
            "email": "ann@example.com",
            "text": "Is anyone there?",
            "chat_id": chat_id,
            "page_url": "https://shop.example/x",
        }
    )
    assert r["type"] == "ack", r
    msg_id = r["offline_message"]["id"]
    inbox = bob.get("/api/console/offline-messages")
    assert inbox.status_code == 200
    (msg,) = [m for m in inbox.json()["messages"] if m["id"] == msg_id]
    assert msg["chat_id"] == chat_id and msg["text"] == "Is anyone there?"
    assert msg["name"] == "Ann" and msg["email"] == "ann@example.com" and msg["read"] is False
    assert msg["page_url"] == "https://shop.example/x"
    # The missed chat is over: a new one may be started.
    assert ann.start_chat("me again")["chat"]["id"] != chat_id


def test_queue_timeout_fires_after_a_restart(make_server):
    server = make_server(config={"chat": {"queue_timeout": "2s"}})
    ann = server.visitor()
    ann.connect()
    chat_id = ann.start_chat("anyone?")["chat"]["id"]
    server.stop()
    # The server stopped while the chat was still waiting.
    con = sqlite3.connect(server.data_dir / "cutelive.db")
    try:
        (status,) = con.execute("SELECT status FROM chat WHERE id = ?", (chat_id,)).fetchone()
    finally:
        con.close()
    assert status == "waiting"

    server.start(server.port)
    ws = ann.connect(cursors={str(chat_id): 2})
    missed = ws.wait(lambda e: e["type"] == "chat_missed", what="chat_missed after the restart")
    assert missed["chat_id"] == chat_id and missed["seq"] == 3
    assert missed["reason"] == "queue_timeout"
    t = ann.http.get(server.url + f"/api/visitor/chats/{chat_id}", timeout=TIMEOUT).json()
    assert t["chat"]["status"] == "missed"


# -- operators going offline -------------------------------------------------------------------


def test_operator_going_offline_returns_the_chat_to_the_queue(make_server):
    server = make_server(config={"operators": {"offline_grace": "1s"}})
    server.create_operator("bob", display_name="Bob")
    server.create_operator("carol", display_name="Carol")
    bob, carol = server.console("bob"), server.console("carol")
    bws, cws = bob.connect(), carol.connect()
    ann = server.visitor()
    ws = ann.connect()
    assert ann.welcome["online"] is True
    chat_id = ann.start_chat()["chat"]["id"]
    assert bws.request({"type": "accept", "chat_id": chat_id})["type"] == "ack"
    ws.wait(lambda e: e["type"] == "chat_accepted")
    cws.wait(queue_lacks(chat_id))

    mark_v, mark_c = len(ws.events), len(cws.events)
    bws.close()
    ev = ws.wait(lambda e: e["type"] == "chat_requeued", start=mark_v, what="chat_requeued")
    assert ev["chat_id"] == chat_id and ev["seq"] == 4
    assert ev["reason"] == "operator_offline"
    assert ev["operator"] == {"id": bob.operator["id"], "name": "Bob"}
    t = transcript(carol, chat_id)
    assert t["chat"]["status"] == "waiting" and t["chat"]["operator"] is None
    # Another online operator sees it in the queue and the operator list without Bob.
    cws.wait(queue_has(chat_id), start=mark_c, what="queue listing the requeued chat")
    ops = cws.wait(
        lambda e: (
            e["type"] == "operators" and all(o["id"] != bob.operator["id"] for o in e["operators"])
        ),
        start=mark_c,
    )
    assert [o["display_name"] for o in ops["operators"]] == ["Carol"]
    # Carol is still online, so visitors are never told that nobody is.
    assert requests.get(server.url + "/api/status", timeout=TIMEOUT).json()["online"] is True

    r = cws.request({"type": "accept", "chat_id": chat_id})
    assert r["type"] == "ack" and r["chat"]["operator"]["name"] == "Carol"
    ev = ws.wait(lambda e: e["type"] == "chat_accepted", start=mark_v)
    assert ev["operator"]["name"] == "Carol" and ev["seq"] == 5
    cws.wait(lambda e: e.get("chat_id") == chat_id and e.get("seq") == 5)
    assert [e["seq"] for e in cws.chat_events(chat_id)] == [1, 2, 3, 4, 5]
    r = cws.request(
        {"type": "message", "chat_id": chat_id, "text": "Carol here", "client_id": uuid.uuid4().hex}
    )
    assert r["type"] == "ack" and r["message"]["seq"] == 6
    assert not [e for e in ws.events[mark_v:] if e["type"] == "availability"]

    # The last operator goes: the chat is requeued again and visitors learn nobody is online.
    mark_v = len(ws.events)
    cws.close()
    ev = ws.wait(lambda e: e["type"] == "chat_requeued", start=mark_v)
    assert ev["operator"]["name"] == "Carol" and ev["seq"] == 7
    av = ws.wait(lambda e: e["type"] == "availability", start=mark_v, what="availability")
    assert av["online"] is False
    assert requests.get(server.url + "/api/status", timeout=TIMEOUT).json()["online"] is False
    late = server.visitor()
    late.connect()
    assert late.welcome["online"] is False


def test_operator_reconnecting_within_the_grace_keeps_the_chat(make_server):
    server = make_server(config={"operators": {"offline_grace": "5s"}})
    server.create_operator("bob", display_name="Bob")
    server.create_operator("carol", display_name="Carol")
    bob, carol = server.console("bob"), server.console("carol")
    bws, cws = bob.connect(), carol.connect()
    ann, ben = server.visitor(), server.visitor()
    ann_ws, ben_ws = ann.connect(), ben.connect()
    ann_chat = ann.start_chat(name="Ann")["chat"]["id"]
    ben_chat = ben.start_chat(name="Ben")["chat"]["id"]
    assert bws.request({"type": "accept", "chat_id": ann_chat})["type"] == "ack"
    assert cws.request({"type": "accept", "chat_id": ben_chat})["type"] == "ack"

    # Bob's connection drops and he is back at once.
    bws.close()
    bws = bob.connect(cursors={str(ann_chat): 1})
    welcome = bws.wait(lambda e: e["type"] == "welcome")
    assert [(c["id"], c["status"]) for c in welcome["chats"]] == [(ann_chat, "active")]
    bws.wait(lambda e: e.get("chat_id") == ann_chat and e.get("seq") == 3)
    # Carol drops after Bob did and does not come back; once her grace is over, Bob's (had it
    # still been running) would be over too.
    cws.close()
    ev = ben_ws.wait(lambda e: e["type"] == "chat_requeued", timeout=30, what="Carol's requeue")
    assert ev["operator"]["name"] == "Carol"

    assert not [e for e in ann_ws.events if e["type"] in ("chat_requeued", "availability")]
    t = transcript(bob, ann_chat)
    assert t["chat"]["status"] == "active" and t["chat"]["operator"]["name"] == "Bob"
    assert [e["type"] for e in t["events"]] == ["chat_started", "message", "chat_accepted"]
    r = bws.request(
        {
            "type": "message",
            "chat_id": ann_chat,
            "text": "still here",
            "client_id": uuid.uuid4().hex,
        }
    )
    assert r["type"] == "ack"
    ann_ws.wait(lambda e: e["type"] == "message" and e["text"] == "still here")


def test_status_offline_requeues_at_once_and_away_takes_no_new_chats(server):
    bob = server.console("bob")
    bws = bob.connect()
    ann = server.visitor()
    ws = ann.connect()
    assert ann.welcome["online"] is True
    chat_id = ann.start_chat()["chat"]["id"]
    assert bws.request({"type": "accept", "chat_id": chat_id})["type"] == "ack"

    # offline: the chat goes back to the queue at once, with no grace; visitors see nobody.
    mark = len(ws.events)
    r = bws.request({"type": "status", "status": "offline"})
    assert r["type"] == "ack" and r["status"] == "offline"
    ev = ws.wait(lambda e: e["type"] == "chat_requeued", start=mark)
    assert ev["reason"] == "operator_offline" and ev["operator"]["name"] == "Bob"
    assert ws.wait(lambda e: e["type"] == "availability", start=mark)["online"] is False
    assert transcript(bob, chat_id)["chat"]["status"] == "waiting"
    bws.wait(queue_has(chat_id))
    r = bws.request({"type": "accept", "chat_id": chat_id})
    assert r["type"] == "error" and r["error"] == "status_not_online"
    assert transcript(bob, chat_id)["chat"]["status"] == "waiting"

    # online again: available, and the chat can be taken.
    mark = len(ws.events)
    assert bws.request({"type": "status", "status": "online"})["type"] == "ack"
    assert ws.wait(lambda e: e["type"] == "availability", start=mark)["online"] is True
    assert bws.request({"type": "accept", "chat_id": chat_id})["type"] == "ack"

    # away: counts as offline for visitors, keeps its chats, accepts no new ones.
    mark = len(ws.events)
    bmark = len(bws.events)
    r = bws.request({"type": "status", "status": "away"})
    assert r["type"] == "ack" and r["status"] == "away"
    assert ws.wait(lambda e: e["type"] == "availability", start=mark)["online"] is False
    ops = bws.wait(lambda e: e["type"] == "operators", start=bmark)
    assert [(o["display_name"], o["status"]) for o in ops["operators"]] == [("Bob", "away")]
    assert requests.get(server.url + "/api/status", timeout=TIMEOUT).json()["online"] is False
    ben = server.visitor()
    ben.connect()
    assert ben.welcome["online"] is False
    ben_chat = ben.start_chat(name="Ben")["chat"]["id"]
    r = bws.request({"type": "accept", "chat_id": ben_chat})
    assert r["type"] == "error" and r["error"] == "status_not_online"
    assert transcript(bob, ben_chat)["chat"]["status"] == "waiting"
    # The chat he has stays his, and he can still write in it.
    assert transcript(bob, chat_id)["chat"]["status"] == "active"
    r = bws.request(
        {"type": "message", "chat_id": chat_id, "text": "one moment", "client_id": uuid.uuid4().hex}
    )
    assert r["type"] == "ack"
    assert not [e for e in ws.events[mark:] if e["type"] == "chat_requeued"]
    # The status is reported back on the session.
    assert bob.get("/api/console/session").json()["operator"]["status"] == "away"


# -- sessions ending ---------------------------------------------------------------------------


def ended(ws, reason: str) -> None:
    """The socket was told its session ended, and then closed with 4001."""
    ev = ws.wait(lambda e: e["type"] == "session_ended", what="session_ended")
    assert ev["reason"] == reason
    assert ws.wait_closed()[0] == 4001


def test_disabling_an_operator_ends_his_sessions(server):
    admin = server.console("admin")
    bob = server.console("bob")
    bws = bob.connect()
    cookie = bob.http.cookies["cutelive_session"]
    ann = server.visitor()
    ws = ann.connect()
    chat_id = ann.start_chat()["chat"]["id"]
    assert bws.request({"type": "accept", "chat_id": chat_id})["type"] == "ack"
    bob_id = bob.operator["id"]

    r = admin.patch(f"/api/console/operators/{bob_id}", {"disabled": True})
    assert r.status_code == 200 and r.json()["operator"]["disabled"] is True
    ended(bws, "disabled")
    r = bob.get("/api/console/chats")
    assert r.status_code == 401 and r.json()["error"] == "not_authenticated"
    r = with_cookie(server, cookie).get(server.url + "/api/console/chats", timeout=TIMEOUT)
    assert r.status_code == 401
    assert bob.get("/api/console/session").json()["operator"] is None
    # His chat goes back to the queue at once.
    ev = ws.wait(lambda e: e["type"] == "chat_requeued")
    assert ev["operator"]["name"] == "Bob"
    # He cannot log in, and is told exactly what a wrong password is told.
    _, r = login(server, "bob", PASSWORD)
    _, wrong = login(server, "bob", "not his password")
    assert r.status_code == 401 and r.json()["error"] == "login_failed"
    assert r.json() == wrong.json()

    r = admin.patch(f"/api/console/operators/{bob_id}", {"disabled": False})
    assert r.status_code == 200
    _, r = login(server, "bob", PASSWORD)
    assert r.status_code == 200


def test_admin_resetting_a_password_ends_the_sessions(server):
    admin = server.console("admin")
    aws = admin.connect()
    bob = server.console("bob")
    bws = bob.connect()
    r = admin.patch(f"/api/console/operators/{bob.operator['id']}", {"password": "reset horse 22"})
    assert r.status_code == 200
    ended(bws, "password_changed")
    assert bob.get("/api/console/chats").status_code == 401
    _, r = login(server, "bob", PASSWORD)
    assert r.status_code == 401
    _, r = login(server, "bob", "reset horse 22")
    assert r.status_code == 200
    # The administrator's own session is untouched.
    assert alive(aws) and admin.get("/api/console/chats").status_code == 200


def test_changing_your_own_password_keeps_this_session_and_ends_the_others(server):
    here, there = server.console("bob"), server.console("bob")
    here_ws, there_ws = here.connect(), there.connect()
    r = here.post(
        "/api/console/password", {"current_password": "wrong", "new_password": "new horse 333"}
    )
    assert r.status_code == 401 and r.json()["error"] == "login_failed"
    assert alive(there_ws)

    r = here.post(
        "/api/console/password", {"current_password": PASSWORD, "new_password": "new horse 333"}
    )
    assert r.status_code == 200, r.text
    ended(there_ws, "password_changed")
    assert there.get("/api/console/chats").status_code == 401
    assert alive(here_ws)
    assert here.get("/api/console/chats").status_code == 200
    assert not [e for e in here_ws.events if e["type"] == "session_ended"]
    assert login(server, "bob", PASSWORD)[1].status_code == 401
    assert login(server, "bob", "new horse 333")[1].status_code == 200


def test_logout_closes_that_sessions_sockets_only(server):
    here, there = server.console("bob"), server.console("bob")
    here_ws, there_ws = here.connect(), there.connect()
    cookie = here.http.cookies["cutelive_session"]
    r = here.post("/api/console/logout", {})
    assert r.status_code == 200
    ended(here_ws, "logout")
    # The session is gone on the server, not only the cookie in this client.
    r = with_cookie(server, cookie).get(server.url + "/api/console/chats", timeout=TIMEOUT)
    assert r.status_code == 401
    assert alive(there_ws) and there.get("/api/console/chats").status_code == 200
    assert not [e for e in there_ws.events if e["type"] == "session_ended"]


def test_cli_passwd_ends_the_sessions_of_a_running_server(server):
    bob = server.console("bob")
    bws = bob.connect()
    r = server.run_cli("passwd", "bob", "--password-stdin", stdin="brand new horse\n")
    assert r.returncode == 0, r.stderr
    assert bob.get("/api/console/chats").status_code == 401
    # The server learns of it from the database within seconds (the CLI cannot reach it).
    ev = bws.wait(lambda e: e["type"] == "session_ended", timeout=15, what="session_ended")
    assert ev["reason"] == "expired"
    assert bws.wait_closed()[0] == 4001


# -- login throttling --------------------------------------------------------------------------


def test_login_throttling_and_identical_failures(make_server):
    server = make_server(config={"operators": {"login_failures": "3/15m", "login_lockout": "15m"}})
    server.create_operator("bob", display_name="Bob")
    server.create_operator("carol", display_name="Carol")

    # Unknown user and wrong password look exactly the same.
    _, unknown = login(server, "nobody", PASSWORD)
    _, wrong = login(server, "bob", "not the password")
    assert unknown.status_code == wrong.status_code == 401
    assert unknown.json()["error"] == "login_failed"
    assert unknown.content == wrong.content
    assert "cutelive_session" not in wrong.cookies

    for attempt in ("wrong again", "wrong thrice"):
        assert login(server, "bob", attempt)[1].status_code == 401
    # Three failures: now even the right password is refused.
    c, r = login(server, "bob", PASSWORD)
    assert r.status_code == 429, r.text
    assert r.json()["error"] == "login_throttled" and r.json()["retry_after"] > 0
    assert int(r.headers["Retry-After"]) > 0
    assert "cutelive_session" not in r.cookies
    assert c.get("/api/console/chats").status_code == 401
    # Another account is not affected.
    assert login(server, "carol", PASSWORD)[1].status_code == 200
    # An unknown account locks the same way, so locking tells nothing either.
    for _ in range(2):
        assert login(server, "nobody", "guess")[1].status_code == 401
    _, r = login(server, "nobody", PASSWORD)
    assert r.status_code == 429 and r.json()["error"] == "login_throttled"


# -- first administrator -----------------------------------------------------------------------


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


# -- command line ------------------------------------------------------------------------------


def run(*args: str, stdin: str | None = "", timeout=60, **kw) -> subprocess.CompletedProcess:
    return subprocess.run(
        SERVER_CMD + list(args), input=stdin, capture_output=True, text=True, timeout=timeout, **kw
    )


def test_cli_version():
    version = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    r = run("--version")
    assert r.returncode == 0
    assert r.stdout.strip() == f"cutelive {version}"


def test_cli_create_operator_never_takes_the_password_as_an_argument(make_server):
    server = make_server()
    r = server.run_cli("create-operator", "--help")
    assert r.returncode == 0 and "--password-stdin" in r.stdout
    assert not re.search(r"--password(?!-stdin)", r.stdout), r.stdout
    for args in (
        ["carol", "secret horse 1"],
        ["carol", "--password", "secret horse 1"],
        ["carol", "--password=secret horse 1"],
        ["carol", "-p", "secret horse 1"],
    ):
        r = server.run_cli("create-operator", *args, stdin="")
        assert r.returncode == 2, (args, r.stdout, r.stderr)
    assert login(server, "carol", "secret horse 1")[1].status_code == 401

    r = server.run_cli(
        "create-operator",
        "carol",
        "--password-stdin",
        "--display-name",
        "Carol",
        stdin="secret horse 1\n",
    )
    assert r.returncode == 0, r.stderr
    assert "carol" in r.stdout
    c, r = login(server, "carol", "secret horse 1")
    assert r.status_code == 200
    assert r.json()["operator"]["display_name"] == "Carol"
    assert r.json()["operator"]["is_admin"] is False

    # Without --password-stdin it prompts twice (with no terminal, getpass reads stdin).
    def prompted(username: str, answers: str) -> subprocess.CompletedProcess:
        cmd = SERVER_CMD + [
            "create-operator",
            username,
            "--admin",
            "-c",
            str(server.ini),
            "--data-dir",
            str(server.data_dir),
        ]
        # A new session has no controlling terminal, so getpass falls back to stdin.
        return subprocess.run(
            cmd, input=answers, capture_output=True, text=True, timeout=60, start_new_session=True
        )

    r = prompted("dave", "dave's horse 4\ndave's horse 4\n")
    assert r.returncode == 0, r.stderr
    assert "Password" in r.stderr and "Repeat" in r.stderr
    _, r = login(server, "dave", "dave's horse 4")
    assert r.status_code == 200 and r.json()["operator"]["is_admin"] is True
    r = prompted("erin", "erin's horse 5\nsomething else\n")
    assert r.returncode == 1 and "do not match" in r.stderr, r.stderr
    assert login(server, "erin", "erin's horse 5")[1].status_code == 401

    # Bad input is refused by name, and nothing is created.
    r = server.run_cli("create-operator", "carol", "--password-stdin", stdin="other horse 1\n")
    assert r.returncode == 1 and "taken" in r.stderr
    r = server.run_cli("create-operator", "frank", "--password-stdin", stdin="short\n")
    assert r.returncode == 1 and "password" in r.stderr
    assert login(server, "frank", "short")[1].status_code == 401


def test_cli_passwd_changes_the_password(server):
    r = server.run_cli("passwd", "bob", "--password-stdin", stdin="brand new horse\n")
    assert r.returncode == 0, r.stderr
    assert login(server, "bob", PASSWORD)[1].status_code == 401
    assert login(server, "bob", "brand new horse")[1].status_code == 200
    # A password that is too short changes nothing; an unknown operator is an error.
    r = server.run_cli("passwd", "bob", "--password-stdin", stdin="short\n")
    assert r.returncode == 1
    assert login(server, "bob", "brand new horse")[1].status_code == 200
    r = server.run_cli("passwd", "nobody", "--password-stdin", stdin="brand new horse\n")
    assert r.returncode == 1 and "nobody" in r.stderr


def test_cli_bad_config_value_stops_the_start(tmp_path):
    data = tmp_path / "data"
    for ini, named in (
        ("[chat]\nqueue_timeout = soon\n", "[chat] queue_timeout"),
        ("[server]\nport = 70000\n", "[server] port"),
        ("[server]\nport = eighty\n", "[server] port"),
        ("[limits]\nvisitor_messages = lots\n", "[limits] visitor_messages"),
        ("[database]\nsynchronous = sometimes\n", "[database] synchronous"),
    ):
        path = tmp_path / "bad.ini"
        path.write_text(ini)
        # No --port flag here: it would override the ini's port.
        r = run("serve", "-c", str(path), "--data-dir", str(data), stdin=None, timeout=30)
        assert r.returncode == 2, (ini, r.stderr)
        assert named in r.stderr and "expected" in r.stderr, r.stderr
    # A flag is checked the same way.
    r = run("serve", "--data-dir", str(data), "--port", "eighty", stdin=None, timeout=30)
    assert r.returncode == 2 and "[server] port" in r.stderr
    assert "expected a port number" in r.stderr, r.stderr
    assert not data.exists()  # it stopped before touching anything


def test_cli_unknown_config_key_is_reported_by_name(make_server):
    server = make_server(config={"chat": {"queue_timeot": "1s"}, "nosuch": {"key": "1"}})
    log = "".join(server.log_lines)
    assert "[chat] queue_timeot" in log
    assert "[nosuch] key" in log
    assert requests.get(server.url + "/api/status", timeout=TIMEOUT).status_code == 200
