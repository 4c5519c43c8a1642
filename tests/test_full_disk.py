"""A full disk (docs/PROTOCOL.md §8 ``storage_full``): the real server on a data directory of
its own 4 MiB tmpfs, the rest of which a filler file takes.

Writes get the documented, retryable error over WebSocket and HTTP, and nothing of them is
stored (a message, an upload's pieces); reads, pings and page-view beacons go on; the warning
is logged once, not per request. When the filler goes, the next write succeeds at once, the
page views held meanwhile reach the database, every transcript is contiguous and the database
passes ``PRAGMA integrity_check``.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import socket
import sqlite3
import subprocess
import uuid
from pathlib import Path

import pytest
from common import upload
from conftest import (
    PASSWORD,
    TIMEOUT,
    InProcessApp,
    Server,
    mail_config,
    track,
    wait_for,
)

from livesupport.storage import StorageFull

#: One 64 KiB piece of a chunked upload body.
PIECE = b"10000\r\n" + b"\x03" * 65536 + b"\r\n"
#: An offline message, whose notification goes through the outbox.
LEAVE = {"type": "leave_message", "name": "Ann", "email": "ann@example.org", "text": "Hello?"}
#: The line the server logs (at most once a minute) when a write finds the disk full.
WARNING = "is full"


@contextlib.contextmanager
def tmpfs(directory: Path):
    """A 4 MiB tmpfs mounted at ``directory`` (made if need be), unmounted afterwards, always."""
    directory.mkdir(parents=True, exist_ok=True)
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(directory)],
        capture_output=True,
        text=True,
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.strip()}")
    try:
        yield directory
    finally:
        if subprocess.run(["umount", str(directory)]).returncode != 0:
            # A file in it is still open (a failed test's): detached now, freed when closed.
            subprocess.run(["umount", "--lazy", str(directory)], check=True)


@pytest.fixture
def full_disk_server(tmp_path, seeded_database):
    """A server whose data directory is a 4 MiB tmpfs."""
    server = Server(tmp_path)
    with tmpfs(server.data_dir):
        try:
            shutil.copyfile(seeded_database, server.data_dir / "cutelive.db")
            server.admin = ("admin", PASSWORD)
            yield server.start()
        finally:
            server.stop()


def fill(directory: Path) -> Path:
    """Take every free byte of the file system with one file; returns its path."""
    filler = directory / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT | os.O_EXCL)
    try:
        for size in (65536, 512, 1):  # down to the last partial block
            try:
                while True:
                    os.write(fd, b"\0" * size)
            except OSError as e:
                assert e.errno == errno.ENOSPC, e
    finally:
        os.close(fd)
    return filler


def db(server, sql: str) -> list[tuple]:
    con = sqlite3.connect(server.data_dir / "cutelive.db")
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


def test_a_full_disk_gives_a_retryable_error_keeps_nothing_partial_and_recovers_at_once(
    full_disk_server,
):
    server = full_disk_server
    ann = server.visitor()
    ws = ann.connect()
    chat_id = ann.start_chat("Before the disk fills")["chat"]["id"]
    assert ann.say(chat_id, "second")["type"] == "ack"
    # An upload under way when the disk fills: its first pieces are stored by then.
    under_way = socket.create_connection(("127.0.0.1", server.port), timeout=TIMEOUT)
    under_way.sendall(
        f"POST /api/visitor/chats/{chat_id}/files?name=under-way.bin&client_id=f0 HTTP/1.1\r\n"
        f"Host: x\r\nAuthorization: Bearer {ann.token}\r\n"
        "Transfer-Encoding: chunked\r\n\r\n".encode()
        + PIECE * 2
    )
    wait_for(lambda: db(server, "SELECT COUNT(*) FROM file_chunk") >= [(1,)], what="a piece")
    filler = fill(server.data_dir)

    # SQLite reuses the space its write-ahead log and database file already have (and a
    # checkpoint can free some), so a write may still fit now and then; one that does not gets
    # the error. Every send is counted: each acknowledged one must be stored, no refused one.
    acked: set[str] = set()
    refused: set[str] = set()

    def send_until_refused(over_http: bool) -> dict:
        for n in range(200):
            cid = uuid.uuid4().hex
            text = f"message {n} " + "x" * 3000
            if over_http:
                cmd = {"type": "message", "chat_id": chat_id, "text": text, "client_id": cid}
                r = ann.send(cmd)
                reply = dict(r.json(), status=r.status_code, headers=r.headers)
                if r.status_code == 200:
                    reply["type"] = "ack"
            else:
                reply = ann.say(chat_id, text, client_id=cid)
            (acked if reply["type"] == "ack" else refused).add(cid)
            if reply["type"] != "ack":
                return reply
        raise AssertionError("200 messages of 3 KB fitted on a full disk")

    error = send_until_refused(over_http=False)
    assert error["error"] == "storage_full", "".join(server.log_lines[-40:])
    assert error["retry_after"] > 0 and "disk is full" in error["message"]
    error = send_until_refused(over_http=True)
    assert error["status"] == 503 and error["error"] == "storage_full", error
    assert int(error["headers"]["Retry-After"]) >= error["retry_after"]

    # A new upload gets the same error.
    up = upload(ann, chat_id, b"\x01" * (1024 * 1024), name="big.bin", client_id="f1")
    assert up.status_code == 503 and up.json()["error"] == "storage_full", up.text

    # The upload under way gets it too when its next piece finds no room.
    try:
        for _ in range(32):
            under_way.sendall(PIECE)
        under_way.sendall(b"0\r\n\r\n")
    except OSError:
        pass  # the server answered and closed: the rest is not wanted
    answer = under_way.recv(65536)
    under_way.close()
    assert answer.startswith(b"HTTP/1.1 503") and b'"storage_full"' in answer, answer
    assert b"\r\nRetry-After: " in answer

    # Page views are held in memory meanwhile; reads, pings and the stream go on.
    for n in range(3):
        assert track(server, ann.token, f"https://shop.example/full/{n}").status_code == 204
    assert ws.request({"type": "ping"})["type"] == "pong"
    for over_http in (False, True, False):  # more failures, and ticks of the page-view writer
        assert send_until_refused(over_http)["error"] == "storage_full"
    transcript = ann.http.get(f"{server.url}/api/visitor/chats/{chat_id}", timeout=TIMEOUT)
    assert transcript.status_code == 200
    warnings = [line for line in server.log_lines if WARNING in line]
    assert len(warnings) == 1, warnings
    assert str(server.data_dir) in warnings[0] and "WARNING" in warnings[0]

    # Space comes back: the very next write succeeds, with no restart.
    filler.unlink()
    assert ann.say(chat_id, "the disk has room again")["type"] == "ack"
    r = ann.send({"type": "message", "chat_id": chat_id, "text": "and over HTTP", "client_id": "h"})
    assert r.status_code == 200, r.text
    up = upload(ann, chat_id, b"\x02" * 1000, name="small.bin", client_id="f2")
    assert up.status_code == 201, up.text

    def views() -> int:
        return db(server, "SELECT COUNT(*) FROM page_view WHERE url LIKE '%/full/%'")[0][0]

    wait_for(lambda: views() == 3, what="the page views held during the full disk, stored")
    wait_for(
        lambda: db(server, "SELECT COUNT(*) FROM file WHERE complete = 0") == [(0,)],
        what="the pieces of the upload cut short by the full disk, deleted",
    )

    events = ann.http.get(f"{server.url}/api/visitor/chats/{chat_id}", timeout=TIMEOUT).json()[
        "events"
    ]
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
    stored = {e.get("client_id") for e in events}
    assert acked <= stored and not (refused & stored)
    # Nothing was logged per request (no access-log line for the refusals) and no background
    # task failed (the tick, the page-view writer, the upload's clean-up).
    assert [line for line in server.log_lines if " ERROR " in line or "Traceback" in line] == []

    server.stop()
    assert db(server, "PRAGMA integrity_check") == [("ok",)]
    assert db(server, "SELECT COUNT(*), SUM(complete) FROM file") == [(1, 1)]
    assert db(server, "SELECT COUNT(*) FROM file_chunk") == [(1,)]
    stored_seqs = [s for (s,) in db(server, f"SELECT seq FROM event WHERE chat_id = {chat_id}")]
    assert sorted(stored_seqs) == list(range(1, len(stored_seqs) + 1))


def fill_for_every_write(app: InProcessApp, visitor, chat_id: int) -> Path:
    """Fill the in-process app's tmpfs so that every write fails, not just most: without
    checkpoints the write-ahead log is never reset for reuse, so once the space it has is
    taken (by the visitor's messages) every write needs more. Returns the filler."""
    app.storage._checkpointer.stop()
    filler = fill(app.tmp / "data")
    for n in range(200):
        if visitor.say(chat_id, f"{n}")["type"] == "error":
            break
    assert visitor.say(chat_id, "full?")["error"] == "storage_full"
    return filler


def test_a_queue_timeout_due_while_the_disk_is_full_comes_at_the_first_tick_with_room(tmp_path):
    """In process, on the fake clock: the chat stays in the queue while its timeout cannot be
    stored (the tick tries again each second, and the rest of the tick still runs)."""
    with tmpfs(tmp_path / "data"):
        app = InProcessApp(tmp_path, {"chat": {"queue_timeout": "60s"}})
        try:
            bob = app.operator("bob")
            bob.connect()
            bob.ok({"type": "status", "status": "away"})
            ann = app.visitor()
            ann.connect()
            chat_id = ann.start_chat()["chat"]["id"]
            eve = app.visitor()
            eve.connect()
            eve_chat = eve.start_chat()["chat"]["id"]
            filler = fill_for_every_write(app, eve, eve_chat)

            app.advance(61)  # the timeouts are due, and ticked a few times
            assert not ann.stream.of_type("chat_missed")
            assert chat_id in [c["id"] for c in bob.stream.last("queue")["chats"]]
            assert chat_id in app.services.chats.waiting

            filler.unlink()
            app.advance(1)
            missed = ann.stream.last("chat_missed")
            assert missed["chat_id"] == chat_id and missed["reason"] == "queue_timeout"
            assert chat_id not in [c["id"] for c in bob.stream.last("queue")["chats"]]
            assert ann.transcript(chat_id)["chat"]["status"] == "missed"
        finally:
            app.close()


def test_the_outbox_keeps_its_mail_while_the_disk_is_full_and_sends_it_once_after(
    tmp_path, smtp, caplog
):
    """A try that cannot even be recorded (the claim before it goes out) leaves the mail
    queued; the sender looks again after ``retry_after`` rather than at once, again and again."""
    smtp.stop()
    with tmpfs(tmp_path / "data"):
        app = InProcessApp(tmp_path, mail_config(smtp, retry_first="30s"))
        try:
            ann = app.visitor()
            ann.connect()
            ann.ok(LEAVE)  # its notification is queued; the first try fails (SMTP is down)
            eve = app.visitor()
            eve.connect()
            eve_chat = eve.start_chat()["chat"]["id"]
            filler = fill_for_every_write(app, eve, eve_chat)
            smtp.start()

            app.advance(120)  # the next try is due, and a few after it
            (mail,) = [m.public() for m in app.run(app.services.outbox.recent())]
            assert (mail["state"], mail["attempts"]) == ("queued", 1)
            assert smtp.messages == []

            filler.unlink()
            app.advance(StorageFull.RETRY_AFTER)
            (mail,) = [m.public() for m in app.run(app.services.outbox.recent())]
            assert (mail["state"], mail["attempts"]) == ("sent", 2)
            assert len(smtp.messages) == 1
            assert [r for r in caplog.records if r.levelname == "ERROR"] == []
        finally:
            app.close()
