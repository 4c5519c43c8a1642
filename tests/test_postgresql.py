"""PostgreSQL as the database: refusals at start, ``migrate-db`` from SQLite, and a restart of
the database server mid-chat.

The protocol, durability, resume and browser-chat tests run on PostgreSQL too
(``backends.BOTH_BACKENDS``); these are the parts only PostgreSQL has.
"""

from __future__ import annotations

import subprocess
import urllib.parse
import uuid

import requests
from backends import Postgres
from common import upload
from conftest import PASSWORD, SERVER_CMD, TIMEOUT, Server, wait_for

COUNTED = ("operator", "visitor", "chat", "event", "file", "file_chunk", "session", "meta")


def _serve(tmp_path, url: str) -> subprocess.CompletedProcess:
    ini = tmp_path / "db.ini"
    ini.write_text(f"[database]\nurl = {url}\n")
    return subprocess.run(
        SERVER_CMD + ["serve", "-c", str(ini), "--data-dir", str(tmp_path / "data"), "--port", "0"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
    )


def test_a_database_url_that_cannot_be_used_refuses_the_start_in_one_line(tmp_path, postgres):
    base = urllib.parse.urlsplit(postgres.url)
    unreachable = base._replace(netloc="postgres@127.0.0.1:1").geturl()
    stranger = base._replace(netloc=f"nobody:secret@{base.hostname}:{base.port}").geturl()
    for url, reason in (
        ("mysql://root@localhost/db", "expected empty (SQLite"),
        ("postgresql://localhost:port/db", "expected empty (SQLite"),
        ("postgresql://user:secret@localhost:5432", "expected empty (SQLite"),
        (unreachable, "cannot use the database"),
        (postgres.database_url("no_such_database"), 'database "no_such_database" does not exist'),
        (stranger, "nobody"),  # no such role, or a wrong password
    ):
        r = _serve(tmp_path, url)
        assert r.returncode == 2, (url, r.stderr)
        lines = r.stderr.strip().splitlines()
        assert len(lines) == 1 and "[database] url" in lines[0] and reason in lines[0], r.stderr
        assert "secret" not in r.stderr  # no password in the message
        assert "Traceback" not in r.stderr
    assert not (tmp_path / "data").exists()


def test_a_database_written_by_a_newer_version_is_refused(tmp_path, postgres):
    url = postgres.new_database()
    s = Server(tmp_path / "s", database_url=url)
    s.start()
    s.stop()
    postgres.fetch(url, "UPDATE schema_version SET version = 999")
    r = _serve(tmp_path, url)
    assert r.returncode == 2
    assert "schema version 999, newer than" in r.stderr and "[database] url" in r.stderr
    assert postgres.fetch(url, "SELECT version FROM schema_version") == [(999,)]


def _counts(server: Server) -> dict[str, int]:
    return {t: server.rows(f"SELECT COUNT(*) FROM {t}")[0][0] for t in COUNTED}


def test_migrate_db_moves_an_installation_with_identical_counts_and_working_cursors(
    tmp_path, postgres
):
    # A populated SQLite installation: operators, a chat with messages and a file.
    old = Server(tmp_path / "old")
    old.start()
    try:
        old.create_operator("admin", admin=True)
        old.create_operator("bob", display_name="Bob")
        _bob_ws, ann, chat_id = old.bob_answers_ann("Hello from SQLite")
        for i in range(5):
            assert ann.say(chat_id, f"message {i}")["type"] == "ack"
        r = upload(ann, chat_id, b"some notes " * 10_000, name="notes.txt", client_id="f1")
        assert r.status_code == 201, r.text
        last = ann.say(chat_id, "the last one before the move")["message"]["seq"]
    finally:
        old.stop()
    before = _counts(old)

    url = postgres.new_database()
    r = old.run_cli("migrate-db", "--to", url)
    assert r.returncode == 0, r.stderr
    assert "the same" in r.stdout
    new = Server(tmp_path / "old", database_url=url)  # same data directory, now PostgreSQL
    assert _counts(new) == before

    # Again into the same (now full) database: refused, nothing changes.
    again = old.run_cli("migrate-db", "--to", url)
    assert again.returncode == 1 and "not empty" in again.stderr
    assert _counts(new) == before

    new.start()
    try:
        # The visitor's token and cursor still work: nothing replayed twice, seq continues.
        back = new.visitor(ann.token)
        ws = back.connect(cursors={str(chat_id): last})
        assert back.welcome["type"] == "welcome"
        assert not [e for e in ws.events if e.get("chat_id") == chat_id and "seq" in e]
        console = new.console("bob", PASSWORD)
        console_ws = console.connect(cursors={str(chat_id): last})
        ack = back.say(chat_id, "hello from PostgreSQL")
        assert ack["type"] == "ack" and ack["message"]["seq"] == last + 1
        console_ws.wait(lambda e: e.get("text") == "hello from PostgreSQL")
        # A new chat gets an id after the copied ones.
        ben = new.visitor()
        ben.connect()
        assert ben.start_chat("a new chat")["chat"]["id"] > chat_id
    finally:
        new.stop()


def test_a_database_restart_mid_chat_loses_and_duplicates_nothing_acknowledged(tmp_path):
    """The database server goes away for a while: sends get the retryable
    ``storage_unavailable``, the sockets stay up, and once it is back the same sends succeed
    with no gap and no duplicate in either party's numbering."""
    pg = Postgres(private=True)
    try:
        url = pg.new_database()
        s = Server(tmp_path / "s", database_url=url)
        s.start()
        try:
            s.create_operator("bob", display_name="Bob")
            bob_ws, ann, chat_id = s.bob_answers_ann("before the restart")
            acked = [ann.say(chat_id, f"before {i}")["message"]["seq"] for i in range(3)]

            pg.stop_server()
            pending = uuid.uuid4().hex
            refused = ann.say(chat_id, "during", client_id=pending)
            assert refused["type"] == "error", refused
            assert refused["error"] == "storage_unavailable", "".join(s.log_lines[-40:])
            assert refused.get("retry_after")
            # The stream stays up meanwhile: pings are answered.
            assert ann.ws.request({"type": "ping"})["type"] in ("pong", "ack")

            pg.start_server()
            ack = wait_for(
                lambda: (a := ann.say(chat_id, "during", client_id=pending))["type"] == "ack" and a,
                what="the send to succeed once the database is back",
            )
            # The same client_id again: the same message, not a second one.
            again = ann.say(chat_id, "during", client_id=pending)
            assert again["message"]["seq"] == ack["message"]["seq"]
            acked.append(ack["message"]["seq"])
            acked.append(ann.say(chat_id, "after")["message"]["seq"])
            bob_ws.wait(lambda e: e.get("text") == "after")
            seqs = [e["seq"] for e in bob_ws.events if e.get("chat_id") == chat_id and "seq" in e]
            assert seqs == sorted(set(seqs)) and seqs == list(range(seqs[0], seqs[-1] + 1))
            assert set(acked) <= set(seqs)
            stored = s.rows(
                "SELECT seq FROM event WHERE chat_id = ? AND type = 'message' ORDER BY seq",
                chat_id,
            )
            assert len(stored) == len({r[0] for r in stored}) == 1 + 3 + 2
        finally:
            s.stop()
    finally:
        pg.stop()


def test_sends_that_overlap_are_numbered_once_each_and_a_retry_stays_one_message(
    tmp_path, postgres
):
    """With PostgreSQL two sends can be in flight at once (two processes, or one process's
    pooled connections): each gets its own seq, and the same client id sent twice at once (a
    retry on a new connection before the first send finished) is stored once, both answered
    with it."""

    from inprocess import InProcessApp

    app = InProcessApp(tmp_path / "a", {"database": {"url": postgres.new_database()}})
    try:
        alice, bob = app.operator("alice"), app.operator("bob")
        alice.connect()
        bob.connect()
        ann = app.visitor()
        ann.connect()
        chat_id = ann.start_chat()["chat"]["id"]
        bob.ok({"type": "accept", "chat_id": chat_id})

        def at_once(party, commands: list[dict]) -> list[dict]:
            replies = party.at_once(commands)
            assert all(r["type"] == "ack" for r in replies), replies
            return replies

        said = [{"type": "message", "chat_id": chat_id, "text": f"m{i}"} for i in range(6)]
        replies = at_once(ann, [dict(c, client_id=f"c{i}") for i, c in enumerate(said)])
        seqs = sorted(r["message"]["seq"] for r in replies)
        assert len(set(seqs)) == 6 and seqs == list(range(seqs[0], seqs[0] + 6))
        twice = at_once(ann, [dict(said[0], client_id="again")] * 3)
        assert len({r["message"]["seq"] for r in twice}) == 1
        events = ann.transcript(chat_id)["events"]
        assert [e["client_id"] for e in events if e["type"] == "message"].count("again") == 1

        directs = [
            {"type": "direct", "operator_id": bob.id, "text": f"d{i}", "client_id": f"d{i}"}
            for i in range(6)
        ]
        replies = at_once(alice, directs)
        assert sorted(r["direct"]["seq"] for r in replies) == [1, 2, 3, 4, 5, 6]
        twice = at_once(alice, [dict(directs[0], client_id="again")] * 3)
        assert [r["direct"]["seq"] for r in twice] == [7, 7, 7]
    finally:
        app.close()


def test_processes_starting_together_on_an_empty_database_create_it_once(tmp_path, postgres):
    """Several processes started at the same moment on a new database: one creates the
    schema while the others wait for it, and all of them serve."""
    from concurrent.futures import ThreadPoolExecutor

    from backends import fetch

    from livesupport.storage.schema import SCHEMA_VERSION

    url = postgres.new_database()
    servers = [Server(tmp_path / f"p{i}", database_url=url) for i in range(4)]
    try:
        with ThreadPoolExecutor(len(servers)) as pool:
            list(pool.map(Server.start, servers))
        for s in servers:
            assert requests.get(s.url + "/api/status", timeout=TIMEOUT).status_code == 200
        assert fetch(url, "SELECT version FROM schema_version") == [(SCHEMA_VERSION,)]
        created = [s for s in servers if any("database created" in x for x in s.log_lines)]
        assert len(created) == 1
    finally:
        for s in servers:
            s.stop()
