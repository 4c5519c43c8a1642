"""Another program holds the database (a backup tool's ``BEGIN IMMEDIATE``, an
administrator's ``sqlite3`` shell): writes wait for it without freezing the server, and a lock
held past ``[database] busy_timeout`` gets the retryable ``storage_busy`` — nothing is lost."""

from __future__ import annotations

import subprocess
import sys
import uuid

import requests
from conftest import TIMEOUT

#: Another program: takes the write lock, says so, and lets go when told (a line on stdin).
LOCKER = """
import sqlite3, sys
con = sqlite3.connect(sys.argv[1], isolation_level=None, timeout=10)
con.execute("BEGIN IMMEDIATE")
print("locked", flush=True)
sys.stdin.readline()
con.execute("ROLLBACK")
print("released", flush=True)
"""


class Locker:
    def __init__(self, server):
        self.proc = subprocess.Popen(
            [sys.executable, "-c", LOCKER, str(server.data_dir / "cutelive.db")],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.proc.stdout.readline().strip() == "locked"

    def release(self) -> None:
        self.proc.stdin.write("go\n")
        self.proc.stdin.flush()
        assert self.proc.stdout.readline().strip() == "released"
        self.proc.wait(TIMEOUT)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def _message(chat_id: int, text: str, client_id: str, ref: str) -> dict:
    return {"type": "message", "chat_id": chat_id, "text": text, "client_id": client_id, "id": ref}


def test_writes_wait_for_another_programs_lock_and_the_server_keeps_answering(make_server):
    server = make_server()
    ann = server.visitor()
    ws = ann.connect()
    chat_id = ann.start_chat("Hello")["chat"]["id"]
    other = server.visitor()
    other_ws = other.connect()
    locker = Locker(server)
    try:
        start = len(ws.events)
        ws.send(_message(chat_id, "sent while the database is locked", "m1", "r1"))
        # The loop is free while the message waits: others are answered.
        assert other_ws.request({"type": "ping"})["type"] == "pong"
        assert requests.get(server.url + "/api/widget/config", timeout=TIMEOUT).status_code == 200
        assert not any(e.get("ref") == "r1" for e in ws.events[start:])  # still waiting
        locker.release()
    finally:
        locker.stop()
    ack = ws.wait(lambda e: e.get("ref") == "r1", what="the message's answer", start=start)
    assert ack["type"] == "ack" and ack["message"]["text"] == "sent while the database is locked"
    assert ann.say(chat_id, "and after")["message"]["seq"] == ack["message"]["seq"] + 1


def test_a_lock_held_past_busy_timeout_gets_storage_busy_and_nothing_is_lost(make_server):
    server = make_server({"database": {"busy_timeout": "1s"}})
    ann = server.visitor()
    ws = ann.connect()
    chat_id = ann.start_chat("Hello")["chat"]["id"]
    locker = Locker(server)
    try:
        err = ws.request(_message(chat_id, "first try", "m1", "r1"))
        assert err["type"] == "error" and err["error"] == "storage_busy", err
        assert err["retry_after"] > 0 and "busy_timeout" in err["message"]
        r = ann.send(_message(chat_id, "over HTTP", "m2", "r2"))
        assert r.status_code == 503 and r.json()["error"] == "storage_busy"
        assert int(r.headers["Retry-After"]) > 0
        assert ws.request({"type": "ping"})["type"] == "pong"  # the socket goes on
        locker.release()
    finally:
        locker.stop()
    # The same commands again, as the error says: each is stored once.
    for client_id in ("m1", "m2"):
        ack = ws.request(_message(chat_id, "again", client_id, uuid.uuid4().hex))
        assert ack["type"] == "ack", ack
    events = ann.http.get(f"{server.url}/api/visitor/chats/{chat_id}", timeout=TIMEOUT).json()
    seqs = [e["seq"] for e in events["events"]]
    assert seqs == list(range(1, len(seqs) + 1))
    assert [e["client_id"] for e in events["events"] if e["type"] == "message"][-2:] == [
        "m1",
        "m2",
    ]
    warnings = [line for line in server.log_lines if "stayed locked by another program" in line]
    assert len(warnings) == 1, warnings  # once, not once a request
    assert not [line for line in server.log_lines if "ERROR" in line or "Traceback" in line]
