"""SIGTERM under load: exit 0, nothing acknowledged is lost, clients resume by themselves.

200 visitor clients send 1,000 messages/s in total over WebSockets. They behave as
docs/PROTOCOL.md tells a client to: on a close they reconnect with jittered backoff, say hello
with their cursors, apply replayed events only in sequence, and resend any unacknowledged
message with the same client id.
"""

import asyncio
import json
import random
import signal
import sqlite3
import time
import uuid

import tornado.httpclient
import tornado.websocket

CLIENTS = 200
RATE_PER_CLIENT = 5.0  # messages/s each: 1,000/s in all


class Client:
    def __init__(self, server, token, rnd):
        self.server = server
        self.token = token
        self.rnd = rnd
        self.chat_id = None
        self.cursor = 0
        self.applied: list[int] = []
        self.acked: dict[str, int] = {}  # client_id -> seq
        self.pending: dict[str, str] = {}  # client_id -> text, sent but not acked
        self.ws = None
        self.connects = 0
        self.welcomes = 0
        self.duplicates = 0
        self.gaps = 0
        self.stop = False
        self.early: list[dict] = []

    async def connect(self):
        attempt = 0
        while not self.stop:
            try:
                self.ws = await tornado.websocket.websocket_connect(
                    self.server.ws_url + "/api/visitor/ws", connect_timeout=5
                )
                cursors = {str(self.chat_id): self.cursor} if self.chat_id else {}
                await self.ws.write_message(
                    json.dumps({"type": "hello", "token": self.token, "cursors": cursors})
                )
                self.connects += 1
                return
            except (OSError, tornado.httpclient.HTTPClientError, tornado.websocket.WebSocketError):
                delay = min(30, 0.5 * 2**attempt) * (0.5 + self.rnd.random())
                attempt += 1
                await asyncio.sleep(min(delay, 2))  # capped for the test's sake

    def apply(self, ev):
        if "seq" not in ev:
            return
        if self.chat_id is None:  # events of our new chat come before start_chat's ack
            self.early.append(ev)
            return
        if ev["chat_id"] != self.chat_id:
            return
        if ev["seq"] <= self.cursor:
            self.duplicates += 1
        elif ev["seq"] > self.cursor + 1:
            self.gaps += 1
        else:
            self.cursor = ev["seq"]
            self.applied.append(ev["seq"])

    async def reader(self):
        while not self.stop:
            msg = await self.ws.read_message()
            if msg is None:
                await self.connect()
                # Resend whatever was not acknowledged, with the same client ids.
                for cid, text in list(self.pending.items()):
                    await self._send(cid, text)
                continue
            ev = json.loads(msg)
            if ev["type"] == "welcome":
                self.welcomes += 1
            elif ev["type"] == "ack" and "message" in ev:
                m = ev["message"]
                self.acked[m["client_id"]] = m["seq"]
                self.pending.pop(m["client_id"], None)
                if "chat" in ev and self.chat_id is None:
                    self.chat_id = ev["chat"]["id"]
                    for early in self.early:
                        self.apply(early)
            self.apply(ev)

    async def _send(self, cid, text):
        cmd = {"type": "message", "chat_id": self.chat_id, "text": text, "client_id": cid}
        try:
            await self.ws.write_message(json.dumps(cmd))
        except tornado.websocket.WebSocketClosedError:
            pass  # resent after the reconnect

    async def writer(self, until):
        while self.chat_id is None:
            await asyncio.sleep(0.01)
        nxt = time.monotonic()
        i = 0
        while time.monotonic() < until:
            nxt += 1 / RATE_PER_CLIENT
            await asyncio.sleep(max(0, nxt - time.monotonic()))
            cid = uuid.uuid4().hex
            text = f"m{i}"
            i += 1
            self.pending[cid] = text
            await self._send(cid, text)


async def _run(server):
    rnd = random.Random(7)
    http = tornado.httpclient.AsyncHTTPClient()
    clients = []
    for _ in range(CLIENTS):
        r = await http.fetch(server.url + "/api/visitor/token", method="POST", body="{}")
        clients.append(Client(server, json.loads(r.body)["token"], random.Random(rnd.random())))
    for c in clients:
        await c.connect()
        await c.ws.write_message(
            json.dumps(
                {
                    "type": "start_chat",
                    "name": "Load",
                    "text": "start",
                    "client_id": uuid.uuid4().hex,
                }
            )
        )
    readers = [asyncio.ensure_future(c.reader()) for c in clients]
    send_until = time.monotonic() + 6
    writers = [asyncio.ensure_future(c.writer(send_until)) for c in clients]
    # SIGTERM mid-burst: once 1,000 messages have been acknowledged, with the burst going on.
    deadline = time.monotonic() + 30
    while sum(len(c.acked) for c in clients) < 1000 and time.monotonic() < deadline:
        await asyncio.sleep(0.02)
    before = sum(len(c.acked) for c in clients)
    rc = await asyncio.get_running_loop().run_in_executor(None, server.stop, signal.SIGTERM)
    acked_at_stop = {cid: seq for c in clients for cid, seq in c.acked.items()}
    await asyncio.get_running_loop().run_in_executor(None, server.start, server_port(server))
    await asyncio.gather(*writers)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if all(c.welcomes >= 2 and not c.pending for c in clients):
            break
        await asyncio.sleep(0.1)
    for c in clients:
        c.stop = True
    for r in readers:
        r.cancel()
    for c in clients:
        if c.ws:
            c.ws.close()
    return rc, before, acked_at_stop, clients


def server_port(server):
    return server._last_port


def test_sigterm_under_load_loses_nothing_and_clients_resume(make_server):
    server = make_server(config={"limits": {"visitor_messages": "100000/1s"}})
    server._last_port = server.port
    rc, before, acked_at_stop, clients = asyncio.run(_run(server))
    assert rc == 0, "".join(server.log_lines[-20:])
    assert before > 500  # the burst was running when SIGTERM came
    # Every client came back by itself and had all its messages acknowledged.
    assert all(c.welcomes >= 2 for c in clients)
    assert all(not c.pending for c in clients), sum(len(c.pending) for c in clients)
    assert sum(c.duplicates for c in clients) == 0
    assert sum(c.gaps for c in clients) == 0
    db = sqlite3.connect(server.data_dir / "cutelive.db")
    assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    stored = dict(db.execute("SELECT client_id, seq FROM event WHERE client_id IS NOT NULL"))
    for cid, seq in acked_at_stop.items():
        assert stored.get(cid) == seq
    for c in clients:
        for cid, seq in c.acked.items():
            assert stored.get(cid) == seq
        # The client applied exactly the chat's events, in order, once each.
        last = db.execute("SELECT last_seq FROM chat WHERE id = ?", (c.chat_id,)).fetchone()[0]
        assert c.applied == list(range(1, last + 1))
