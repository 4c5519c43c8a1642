#!/usr/bin/env python3
"""A generator process for bench/run.py's reconnect storm: visitors on raw asyncio sockets.

Connects ``--count`` visitors (``--concurrency`` handshakes in flight), each saying ``hello``
with the tokens of ``--tokens`` (cutelive) or its room (``--baseline``), and prints ``READY``.
From then on each follows the protocol's reconnect rules (docs/PROTOCOL.md §9) as the widget
does: when its socket ends it waits the jittered backoff, connects again and says ``hello`` with
its cursors; it has resumed when the ``welcome`` came and every chat it names is received up to
its ``last_seq``. A line ``DOWN`` on standard input marks the storm's start (the caller stops the
server right after); once every visitor has resumed (or ``--timeout`` passed) it prints
``RESULT {json}``: each visitor's resume time (``time.monotonic()``, the same clock in every
process of the machine), repeats and gaps seen, and its own CPU. It then holds until another
line arrives and closes everything abortively (RST, no TIME_WAIT).

Raw sockets rather than aiohttp (bench/clients.py): several times cheaper per connection, so
that this process does not set the storm's pace. WebSocket only: no long-poll fallback.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import socket
import struct
import sys
import time

from clients import IPS, UA, apply_seq
from flood import frame, read_frame


class Visitor:
    def __init__(self, i: int, token: str | None, room: int | None):
        self.i, self.token, self.room = i, token, room
        self.cursors: dict[str, int] = {}
        self.expect: dict[str, int] = {}
        self.attempt = 0
        self.up_since = 0.0
        self.welcomes = 0
        self.resumed_at: float | None = None
        self.dups = self.gaps = 0
        self.writer: asyncio.StreamWriter | None = None

    def hello(self) -> dict:
        if self.token is None:
            return {"type": "hello", "rooms": [self.room]}
        return {"type": "hello", "token": self.token, "cursors": dict(self.cursors)}

    def handle(self, ev: dict) -> None:
        if ev.get("type") == "welcome":
            self.welcomes += 1
            self.up_since = time.monotonic()
            self.expect = {str(c["id"]): c["last_seq"] for c in ev.get("chats", ())}
            self.resumed_at = None
        elif "seq" in ev and "chat_id" in ev:
            seen = apply_seq(self.cursors, str(ev["chat_id"]), ev["seq"])
            if seen == "repeat":
                self.dups += 1
                return
            if seen == "gap":
                self.gaps += 1
                if self.writer is not None:  # ask for the rest, as the widget does
                    sync = {"type": "sync", "cursors": dict(self.cursors)}
                    self.writer.write(frame(json.dumps(sync)))
                return
        else:
            return
        if (
            self.resumed_at is None
            and self.welcomes
            and all(self.cursors.get(c, 0) >= s for c, s in self.expect.items())
        ):
            self.resumed_at = time.monotonic()


def rst(writer: asyncio.StreamWriter) -> None:
    sock = writer.get_extra_info("socket")
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    except (OSError, AttributeError):
        pass
    writer.transport.abort()


async def session(v: Visitor, port: int, path: str, ready: asyncio.Future | None) -> bool:
    """One connection, until it ends; True when it was welcomed."""
    ip = IPS[v.i % len(IPS)]
    try:
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection("127.0.0.1", port, local_addr=(ip, 0)), 15
        )
    except (OSError, TimeoutError):
        return False
    v.writer = writer
    welcomed = False
    try:
        writer.write(
            (
                f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
                "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                f"Sec-WebSocket-Version: 13\r\nUser-Agent: {UA}\r\n\r\n"
            ).encode()
        )
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 15)
        if int(head.split(b" ", 2)[1]) != 101:
            return False
        writer.write(frame(json.dumps(v.hello())))
        while True:
            op, data = await read_frame(reader)
            if op == 0x1:
                ev = json.loads(data)
                v.handle(ev)
                if ev.get("type") == "welcome":
                    welcomed = True
                    if ready is not None and not ready.done():
                        ready.set_result(None)
            elif op == 0x9:
                writer.write(frame(data.decode("latin-1"), 0xA))
            elif op == 0x8:
                return welcomed
    except (OSError, TimeoutError, asyncio.IncompleteReadError, ValueError, IndexError):
        return welcomed
    finally:
        v.writer = None
        rst(writer)


async def run(v: Visitor, port: int, path: str, ready: asyncio.Future) -> None:
    """The protocol's reconnect loop (as bench/clients.StreamClient.run, WebSocket only)."""
    first: asyncio.Future | None = ready
    while True:
        welcomed = await session(v, port, path, first)
        first = None if ready.done() else ready
        if welcomed and time.monotonic() - v.up_since >= 10:
            v.attempt = 0
        delay = min(30, 0.5 * 2**v.attempt) * (0.5 + random.random())
        v.attempt += 1
        await asyncio.sleep(delay)


async def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--count", type=int, required=True)
    p.add_argument("--tokens", help="JSON list of visitor tokens (cutelive)")
    p.add_argument("--baseline", action="store_true", help="bench/baseline.py: rooms, /ws")
    p.add_argument("--concurrency", type=int, default=200)
    p.add_argument("--timeout", type=float, default=120)
    a = p.parse_args()
    loop = asyncio.get_running_loop()
    tokens = None if a.baseline else json.load(open(a.tokens))
    path = "/ws" if a.baseline else "/api/visitor/ws"
    vis = [
        Visitor(i, None if tokens is None else tokens[i], i if tokens is None else None)
        for i in range(a.count)
    ]
    tasks = []
    sem = asyncio.Semaphore(a.concurrency)

    async def start(v: Visitor) -> None:
        async with sem:
            ready = loop.create_future()
            tasks.append(asyncio.ensure_future(run(v, a.port, path, ready)))
            await asyncio.wait_for(ready, 60)

    await asyncio.gather(*(start(v) for v in vis))
    # every visitor has its cursors up to date before the storm
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not all(v.resumed_at for v in vis):
        await asyncio.sleep(0.1)
    print("READY", sum(1 for v in vis if v.resumed_at), flush=True)
    await loop.run_in_executor(None, sys.stdin.readline)
    t0, cpu0 = time.monotonic(), time.process_time()
    before = [v.welcomes for v in vis]
    slices: list[float] = []

    def resumed() -> bool:
        return all(v.welcomes > b and v.resumed_at for v, b in zip(vis, before, strict=True))

    while time.monotonic() - t0 < a.timeout and not resumed():
        c, w = time.process_time(), time.monotonic()
        await asyncio.sleep(0.5)
        slices.append(100 * (time.process_time() - c) / (time.monotonic() - w))
    wall = time.monotonic() - t0
    result = {
        "all_resumed": resumed(),
        "resumed_at": [
            v.resumed_at if v.welcomes > b else None for v, b in zip(vis, before, strict=True)
        ],
        "dups": sum(v.dups for v in vis),
        "gaps": sum(v.gaps for v in vis),
        "cpu_pct": round(100 * (time.process_time() - cpu0) / max(wall, 0.001), 1),
        "cpu_slices": [round(x) for x in slices],
    }
    print("RESULT", json.dumps(result), flush=True)
    await loop.run_in_executor(None, sys.stdin.readline)
    for t in tasks:
        t.cancel()
    for v in vis:
        if v.writer is not None:
            rst(v.writer)


if __name__ == "__main__":
    asyncio.run(main())
