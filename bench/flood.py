#!/usr/bin/env python3
"""A second generator process for bench/run.py: many visitor WebSockets over raw asyncio streams.

``--mode flood``: make ``--count`` WebSocket attempts (``--concurrency`` in flight), say
``hello`` on each that opens, keep the accepted ones (answering the server's pings), and
classify every attempt: ``accepted`` (welcome), ``http_503_server_full``, ``ws_close_1013``,
``closed_immediately`` (closed before any answer: the hard cap), or anything else (unclean).
Prints one ``RESULT {json}`` line, then holds until a line arrives on standard input and
closes everything abortively (RST, no TIME_WAIT).

``--mode hold``: connect ``--count`` visitors, print ``READY``, and keep them alive until
killed. bench/run.py stops this process (SIGSTOP) to make its clients half-open.

Raw sockets rather than aiohttp: cheaper per connection, and every refusal is visible as sent.
"""

import argparse
import asyncio
import collections
import json
import os
import socket
import struct
import sys
import time

from clients import IPS, UA

WS_PATH = os.environ.get("BENCH_WS_PATH", "/api/visitor/ws")


def frame(text: str, opcode: int = 0x1) -> bytes:
    payload = text.encode()
    mask = os.urandom(4)
    n = len(payload)
    head = bytes([0x80 | opcode])
    if n < 126:
        head += bytes([0x80 | n])
    else:
        head += bytes([0x80 | 126]) + struct.pack(">H", n)
    masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    return head + mask + masked


async def read_frame(reader) -> tuple[int, bytes]:
    b0, b1 = await reader.readexactly(2)
    n = b1 & 0x7F
    if n == 126:
        n = struct.unpack(">H", await reader.readexactly(2))[0]
    elif n == 127:
        n = struct.unpack(">Q", await reader.readexactly(8))[0]
    return b0 & 0x0F, await reader.readexactly(n)


class Conn:
    def __init__(self, reader, writer):
        self.reader, self.writer = reader, writer

    async def serve_pings(self) -> None:
        try:
            while True:
                op, data = await read_frame(self.reader)
                if op == 0x9:
                    self.writer.write(frame(data.decode("latin-1"), 0xA))
                elif op == 0x8:
                    return
        except (OSError, asyncio.IncompleteReadError):
            return

    def rst(self) -> None:
        sock = self.writer.get_extra_info("socket")
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        except OSError:
            pass
        self.writer.transport.abort()


async def attempt(host: str, port: int, ip: str, token: str) -> tuple[str, Conn | None]:
    try:
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection(host, port, local_addr=(ip, 0)), 15
        )
    except TimeoutError:
        return "connect_timeout", None
    except OSError as e:
        return f"connect_error_{e.errno}", None
    conn = Conn(reader, writer)
    key = "dGhlIHNhbXBsZSBub25jZQ=="
    writer.write(
        (
            f"GET {WS_PATH} HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
            f"User-Agent: {UA}\r\n\r\n"
        ).encode()
    )
    try:
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 15)
        status = int(head.split(b" ", 2)[1])
        if status != 101:
            length = 0
            for line in head.split(b"\r\n"):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":")[1])
            body = await asyncio.wait_for(reader.readexactly(length), 15) if length else b""
            conn.rst()
            try:
                code = json.loads(body).get("error", "")
            except ValueError:
                code = ""
            return f"http_{status}_{code}", None
        writer.write(frame(json.dumps({"type": "hello", "token": token, "cursors": {}})))
        while True:
            op, data = await asyncio.wait_for(read_frame(reader), 15)
            if op == 0x1 and json.loads(data).get("type") == "welcome":
                return "accepted", conn
            if op == 0x1 and json.loads(data).get("type") == "error":
                conn.rst()
                return "hello_error", None
            if op == 0x8:
                code = struct.unpack(">H", data[:2])[0] if len(data) >= 2 else None
                conn.rst()
                return f"ws_close_{code}", None
            if op == 0x9:
                writer.write(frame(data.decode("latin-1"), 0xA))
    except (asyncio.IncompleteReadError, ConnectionResetError, BrokenPipeError):
        conn.rst()
        return "closed_immediately", None
    except TimeoutError:
        conn.rst()
        return "timeout", None
    except OSError as e:
        conn.rst()
        return f"os_error_{e.errno}", None


async def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--mode", choices=("flood", "hold"), required=True)
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--tokens", required=True, help="JSON list of visitor tokens")
    p.add_argument("--count", type=int, required=True)
    p.add_argument("--concurrency", type=int, default=50)
    p.add_argument("--offset", type=int, default=0)
    a = p.parse_args()
    tokens = json.load(open(a.tokens))
    outcomes: collections.Counter = collections.Counter()
    held: list[Conn] = []
    tasks = []
    sem = asyncio.Semaphore(a.concurrency)
    t0 = time.monotonic()
    cpu0 = time.process_time()

    async def one(i: int) -> None:
        async with sem:
            ip = IPS[(i + a.offset) % len(IPS)]
            what, conn = await attempt("127.0.0.1", a.port, ip, tokens[i % len(tokens)])
        outcomes[what] += 1
        if conn is not None:
            held.append(conn)
            tasks.append(asyncio.ensure_future(conn.serve_pings()))

    await asyncio.gather(*(one(i) for i in range(a.count)))
    wall = time.monotonic() - t0
    if a.mode == "hold":
        print("READY", json.dumps(dict(outcomes)), flush=True)
        await asyncio.Event().wait()
    result = {
        "attempts": a.count,
        "outcomes": dict(outcomes),
        "wall_s": round(wall, 2),
        "cpu_s": round(time.process_time() - cpu0, 2),
    }
    print("RESULT", json.dumps(result), flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
    for c in held:
        c.rst()


if __name__ == "__main__":
    asyncio.run(main())
