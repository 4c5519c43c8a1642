"""``kill -9`` inside a burst of sends: nothing acknowledged is lost, no seq is reused.

DESIGN.md §5 promises that a ``kill -9`` at any moment loses no acknowledged message and leaves a
database that passes ``PRAGMA integrity_check``. Twenty visitors each send a stream of messages
over their own WebSocket (a few in flight at a time); the server is SIGKILLed after a random
number of acknowledgements; then the SQLite file is read directly and the server restarted.
"""

from __future__ import annotations

import json
import random
import sqlite3
import threading
import uuid

import pytest
import websocket
from conftest import TIMEOUT

CLIENTS = 20
PER_CLIENT = 100  # 2,000 planned sends; the kill comes after at most 1,000 acks


class Sender(threading.Thread):
    """One visitor sending its burst over its own WebSocket with up to ``window`` in flight."""

    def __init__(self, n, server, token, chat_id, first, window, seed, progress):
        super().__init__(daemon=True)
        self.n = n
        self.token = token
        self.chat_id = chat_id
        self.window = window
        self.progress = progress
        self.url = server.ws_url + "/api/visitor/ws"
        #: client_id -> text of everything sent (acked or not), in sending order.
        self.sent: dict[str, str] = {first["client_id"]: first["text"]}
        #: client_id -> (chat_id, seq, text) as the acks said.
        self.acked: dict[str, tuple[int, int, str]] = {
            first["client_id"]: (first["chat_id"], first["seq"], first["text"])
        }
        #: (chat_id, seq) -> (client_id, text) of every message event the stream delivered.
        self.seen: dict[tuple[int, int], tuple[str | None, str | None]] = {}
        self.errors: list[dict] = []
        self.rng = random.Random(seed * 1000 + n)
        self.ended = None  # why the loop stopped

    def run(self) -> None:
        try:
            ws = websocket.create_connection(self.url, timeout=TIMEOUT)
        except Exception as e:  # the kill can come before we connect
            self.ended = f"connect: {e}"
            return
        try:
            self._burst(ws)
        except Exception as e:  # the server died under us: expected
            self.ended = f"{type(e).__name__}: {e}"
        finally:
            try:
                ws.close(timeout=0.2)
            except Exception:
                pass

    def _burst(self, ws) -> None:
        ws.send(json.dumps({"type": "hello", "token": self.token, "cursors": {}}))
        planned = iter(range(PER_CLIENT))
        in_flight = {}
        done_sending = False
        welcomed = False
        while True:
            while welcomed and not done_sending and len(in_flight) < self.window:
                j = next(planned, None)
                if j is None:
                    done_sending = True
                    break
                cid = f"{self.n}-{j}-{uuid.uuid4().hex[:8]}"
                text = f"client {self.n} message {j} · {self.rng.random():.6f}"
                ref = f"q{j}"
                self.sent[cid] = text
                in_flight[ref] = cid
                ws.send(
                    json.dumps(
                        {
                            "type": "message",
                            "id": ref,
                            "chat_id": self.chat_id,
                            "text": text,
                            "client_id": cid,
                        }
                    )
                )
            if done_sending and not in_flight:
                self.ended = "finished"
                return
            ev = json.loads(ws.recv())
            if ev["type"] == "welcome":
                welcomed = True
            elif ev["type"] == "message":
                self.seen[(ev["chat_id"], ev["seq"])] = (ev.get("client_id"), ev.get("text"))
            elif ev["type"] == "ack" and ev.get("ref") in in_flight:
                cid = in_flight.pop(ev["ref"])
                m = ev["message"]
                assert m["client_id"] == cid, ev
                self.acked[cid] = (m["chat_id"], m["seq"], m["text"])
                self.progress()
            elif ev["type"] == "error":
                self.errors.append(ev)
                in_flight.pop(ev.get("ref"), None)


def _read_db(server):
    """Everything the checks need from the database, read directly (with plain sqlite3 from
    the file, or from PostgreSQL). PostgreSQL checks its pages and foreign keys itself."""
    integrity, fk = ["ok"], []
    if not server.database_url:
        con = sqlite3.connect(server.data_dir / "cutelive.db")
        try:
            integrity = [r[0] for r in con.execute("PRAGMA integrity_check")]
            fk = con.execute("PRAGMA foreign_key_check").fetchall()
        finally:
            con.close()
    chats = dict(server.rows("SELECT id, last_seq FROM chat"))
    events = {}
    for chat_id, seq, typ, client_id, data in server.rows(
        "SELECT chat_id, seq, type, client_id, data FROM event ORDER BY chat_id, seq"
    ):
        events.setdefault(chat_id, []).append((seq, typ, client_id, json.loads(data)))
    return integrity, chats, events, fk


@pytest.mark.parametrize("seed", [1, 2, 3, 4, 5])
def test_kill_9_inside_a_burst_loses_no_acknowledged_message(make_server, seed):
    rng = random.Random(seed)
    server = make_server(
        config={"limits": {"visitor_messages": "100000/1s", "chats_per_ip": "100000/1m"}}
    )

    # Twenty visitors, each with a waiting chat (visitors may write to waiting chats).
    senders: list[Sender] = []
    acks = [0]
    cond = threading.Condition()

    def progress():
        with cond:
            acks[0] += 1
            cond.notify_all()

    for n in range(CLIENTS):
        v = server.visitor()
        v.connect()
        ack = v.start_chat(text=f"client {n} starts", name=f"Visitor {n}")
        first = ack["message"]
        v.close()
        senders.append(
            Sender(n, server, v.token, ack["chat"]["id"], first, rng.randint(1, 8), seed, progress)
        )

    kill_after = rng.randint(100, 1000)
    for s in senders:
        s.start()
    with cond:
        assert cond.wait_for(lambda: acks[0] >= kill_after, timeout=60), (
            f"only {acks[0]} acks before the timeout; "
            f"{[s.ended for s in senders if s.ended]} {[s.errors[:1] for s in senders]}"
        )
    server.kill()
    for s in senders:
        s.join(TIMEOUT)
        assert not s.is_alive(), f"sender {s.n} still running after the kill"
    assert not [s.errors for s in senders if s.errors]
    total_sent = sum(len(s.sent) for s in senders)
    total_acked = sum(len(s.acked) for s in senders)
    # The kill really came inside the burst: not everything planned was acknowledged.
    assert total_acked >= kill_after + CLIENTS
    assert total_acked < CLIENTS * (PER_CLIENT + 1), "the burst ended before the kill"

    # -- the database file, exactly as the crash left it ----------------------------------
    integrity, chats, events, fk = _read_db(server)
    assert integrity == ["ok"]
    assert fk == []
    for s in senders:
        assert s.chat_id in chats, f"chat {s.chat_id} was acknowledged but is not stored"
        stored = events.get(s.chat_id, [])
        seqs = [e[0] for e in stored]
        # Sequence numbers are exactly 1..last_seq: none reused, none skipped.
        assert seqs == list(range(1, len(seqs) + 1)), (s.chat_id, seqs)
        assert chats[s.chat_id] == len(seqs)
        assert stored[0][1] == "chat_started"
        by_client = {}
        for seq, typ, client_id, data in stored:
            assert data["seq"] == seq and data["chat_id"] == s.chat_id and data["type"] == typ
            if typ == "message":
                assert client_id not in by_client, f"client_id {client_id} stored twice"
                # Nothing stored that was not sent, and stored as sent.
                assert s.sent.get(client_id) == data["text"], (client_id, data)
                by_client[client_id] = (seq, data["text"])
        # Every acknowledged message is there, with the seq and text of its ack.
        for cid, (chat_id, seq, text) in s.acked.items():
            assert chat_id == s.chat_id
            assert by_client.get(cid) == (seq, text), f"acked {cid} seq {seq} lost or changed"
        # No two acks share a seq.
        acked_seqs = [seq for _, seq, _ in s.acked.values()]
        assert len(set(acked_seqs)) == len(acked_seqs)
        # Every message event delivered to the stream had been committed (fan-out after commit).
        for (chat_id, seq), (cid, text) in s.seen.items():
            assert by_client.get(cid) == (seq, text), (chat_id, seq, cid)
    assert sum(len(v) for v in events.values()) <= total_sent + CLIENTS

    # -- after a restart: resume, idempotent retries, and the next seq ---------------------
    server.start(server.port)
    for s in senders:
        last = chats[s.chat_id]
        stored = {e[2]: e[0] for e in events[s.chat_id] if e[1] == "message"}
        v = server.visitor(s.token)
        # The client resumes from the highest seq it saw: exactly the rest, no reset.
        cursor = max([seq for _, seq, _ in s.acked.values()] + [k[1] for k in s.seen])
        ws = v.connect(cursors={str(s.chat_id): cursor})
        assert v.welcome["type"] == "welcome"
        ws.request({"type": "ping"})
        replay = [e for e in ws.events if e.get("chat_id") == s.chat_id]
        assert all(e["type"] != "reset" for e in replay), replay
        assert [e["seq"] for e in replay] == list(range(cursor + 1, last + 1))
        # Every message sent but not acknowledged is retried, as a client would: a committed
        # one returns its stored seq, a lost one is stored now with the next seq.
        for cid, text in s.sent.items():
            if cid in s.acked:
                continue
            r = v.say(s.chat_id, text, client_id=cid)
            assert r["type"] == "ack", r
            if cid in stored:
                assert r["message"]["seq"] == stored[cid]
            else:
                last += 1
                assert r["message"]["seq"] == last
        # A retry of an acknowledged message returns the original; nothing new is stored.
        cid, (_, seq, text) = list(s.acked.items())[-1]
        r = v.say(s.chat_id, text, client_id=cid)
        assert r["type"] == "ack" and r["message"]["seq"] == seq and r["message"]["text"] == text
        # A new message continues the sequence.
        r = v.say(s.chat_id, "after the crash")
        assert r["type"] == "ack" and r["message"]["seq"] == last + 1, r
        t = v.http.get(server.url + f"/api/visitor/chats/{s.chat_id}", timeout=TIMEOUT).json()
        assert [e["seq"] for e in t["events"]] == list(range(1, last + 2))
        v.close()

    server.stop()
    integrity, chats, events, fk = _read_db(server)
    assert integrity == ["ok"] and fk == []
    for chat_id, stored in events.items():
        assert [e[0] for e in stored] == list(range(1, chats[chat_id] + 1))
