#!/usr/bin/env python3
"""Bare-Tornado baselines for bench/run.py: the least a Tornado + SQLite server can do.

One process, the same SQLite pragmas as cutelive (WAL, synchronous=NORMAL, foreign_keys,
busy_timeout). Routes: ``/ws`` idle WebSocket and relay (hello, ping, message: insert, commit,
fan-out to the room, ack), ``/track`` HTTP POST (page views, group commit once a second),
``/poll`` held GET (long-poll, woken by a relayed message), ``/broadcast`` one event to every
socket, ``/status``. A beacon is also sent at once, uncoalesced, to the sockets in room -1 (the
monitor fan-out). SIGTERM closes sockets with 1001 and exits 0, as cutelive does.
"""

import argparse
import asyncio
import contextlib
import json
import signal
import sqlite3
import time

import tornado.web
import tornado.websocket

db: sqlite3.Connection
rooms: dict[int, set] = {}  # room -> WebSocket handlers subscribed
waiters: dict[int, list] = {}  # room -> futures of held polls
sockets: set = set()
views: list[tuple] = []


def store(room: int, text: str) -> None:
    db.execute("INSERT INTO event (room, ts, data) VALUES (?, ?, ?)", (room, time.time(), text))
    db.commit()  # committed before anyone hears of it, as in cutelive


class Socket(tornado.websocket.WebSocketHandler):
    def open(self):
        self.rooms = []
        self.set_nodelay(True)
        sockets.add(self)

    def on_message(self, message):
        cmd = json.loads(message)
        kind, ref = cmd.get("type"), cmd.get("id")
        if kind == "hello":
            self.rooms = [int(r) for r in cmd.get("rooms", [])]
            for r in self.rooms:
                rooms.setdefault(r, set()).add(self)
            self.write_message(json.dumps({"type": "welcome", "heartbeat": HEARTBEAT}))
        elif kind == "ping":
            self.write_message(json.dumps({"type": "pong", "ref": ref}))
        elif kind == "message":
            room = int(cmd["chat_id"])
            ev = {"type": "message", "chat_id": room, "text": cmd["text"]}
            ev.update(client_id=cmd["client_id"], ts=int(time.time() * 1000))
            text = json.dumps(ev)
            store(room, text)
            for sub in rooms.get(room, ()):
                sub.write_message(text)
            for fut in waiters.pop(room, []):
                if not fut.done():
                    fut.set_result(text)
            self.write_message(json.dumps({"type": "ack", "ref": ref, "message": ev}))

    def on_close(self):
        sockets.discard(self)
        for r in self.rooms:
            rooms.get(r, set()).discard(self)


class Track(tornado.web.RequestHandler):
    def post(self):
        b = json.loads(self.request.body)
        views.append((b["token"], b["url"], b["title"], b.get("referrer", ""), time.time()))
        if watchers := rooms.get(-1):  # consoles watching the visitors: this row, to each
            row = {"id": b["token"], "url": b["url"], "title": b["title"], "ts": time.time()}
            text = json.dumps({"type": "visitors_changed", "visitors": [row], "gone": []})
            for s in watchers:
                s.write_message(text)
        self.set_status(204)


class Poll(tornado.web.RequestHandler):
    async def get(self):
        fut = asyncio.get_running_loop().create_future()
        waiters.setdefault(int(self.get_query_argument("room")), []).append(fut)
        try:
            text = await asyncio.wait_for(fut, 25)
        except TimeoutError:
            text = ""
        self.set_header("Content-Type", "application/json")
        self.finish('{"events": [' + text + "]}")


class Broadcast(tornado.web.RequestHandler):
    def post(self):
        text = json.dumps({"type": "availability", "online": self.get_query_argument("on") == "1"})
        for s in list(sockets):
            s.write_message(text)
        self.finish({"sockets": len(sockets)})


class Status(tornado.web.RequestHandler):
    def get(self):
        self.finish({"sockets": len(sockets)})


def flush_views():
    global views
    batch, views = views, []
    with db:
        db.executemany("INSERT INTO view (token, url, title, ref, ts) VALUES (?,?,?,?,?)", batch)


async def main():
    global db, HEARTBEAT
    p = argparse.ArgumentParser()
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--db", required=True)
    p.add_argument("--heartbeat", type=float, default=25)
    a = p.parse_args()
    HEARTBEAT = a.heartbeat
    db = sqlite3.connect(a.db)
    for pragma in ("journal_mode=WAL", "synchronous=NORMAL", "foreign_keys=ON"):
        db.execute("PRAGMA " + pragma)
    db.execute("PRAGMA busy_timeout=5000")
    db.execute("CREATE TABLE IF NOT EXISTS event (id INTEGER PRIMARY KEY, room, ts, data)")
    db.execute(
        "CREATE TABLE IF NOT EXISTS view (id INTEGER PRIMARY KEY, token, url, title, ref, ts)"
    )
    db.commit()
    app = tornado.web.Application(
        [(r"/ws", Socket), (r"/track", Track), (r"/poll", Poll)]
        + [(r"/broadcast", Broadcast), (r"/status", Status)],
        websocket_ping_interval=a.heartbeat,
        websocket_ping_timeout=a.heartbeat,
    )
    server = app.listen(a.port, "127.0.0.1", idle_connection_timeout=120)
    tornado.ioloop.PeriodicCallback(flush_views, 1000).start()
    print(f"baseline listening on http://127.0.0.1:{a.port}", flush=True)
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        asyncio.get_running_loop().add_signal_handler(sig, stop.set)
    await stop.wait()
    server.stop()
    flush_views()
    for s in list(sockets):
        s.close(1001, "server shutting down")
    await asyncio.sleep(0)
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(server.close_all_connections(), 2)


HEARTBEAT = 25.0
if __name__ == "__main__":
    asyncio.run(main())
