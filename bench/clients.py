"""Simulated visitors and operators for bench/, written from docs/PROTOCOL.md alone.

A ``StreamClient`` does what the widget (or the console) does: it connects its stream over
the WebSocket (§3.1), says ``hello`` with its cursors (§4), applies chat events by ``seq``
(ignoring repeats, asking ``sync`` on a gap, one at a time as the widget does), sends ``ping``
every ``heartbeat`` seconds and treats 10 s of silence after one as a dead connection (§9),
reconnects with the documented jittered backoff, and falls back to long-poll (§3.2) after 3
WebSocket attempts that fail before ``welcome``. The same class talks to bench/baseline.py
(``baseline=True``): there the hello names rooms instead of a token, and events carry no
``seq``.

Connections are spread over the source addresses 127.0.0.1-127.0.0.8: one aiohttp session per
address (``Net``).
"""

from __future__ import annotations

import asyncio
import itertools
import json
import random
import re
import socket
import struct
import time

import aiohttp

#: A real Chrome user agent, sent on every request.
UA = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/124.0.0.0 Safari/537.36"
)
IPS = [f"127.0.0.{i}" for i in range(1, 9)]
_ids = itertools.count(1)
now = time.monotonic


def page(i: int) -> dict:
    """A realistic page view: a 100-character URL, a 60-character title, a referrer."""
    url = f"https://www.example-shop.com/catalogue/garden/tools/item-{i:08d}?utm_source=news"
    url += "&ref=" + "x" * (100 - len(url) - 5)
    title = f"Stainless steel garden spade, ash handle - item {i:08d} | Shop"
    return {
        "url": url[:100],
        "title": (title + " " * 60)[:60],
        "referrer": "https://www.google.com/",
    }


def rst_close(ws_or_resp) -> None:
    """Close abortively (RST): no TIME_WAIT left behind by bench teardown."""
    try:
        conn = getattr(ws_or_resp, "_response", ws_or_resp).connection
        tr = conn.transport if conn is not None else None
        if tr is None:
            tr = ws_or_resp._writer.transport  # noqa: SLF001 - aiohttp keeps it here
        sock = tr.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        tr.abort()
    except Exception:  # already closed
        pass


def rst_socket(addr_info) -> socket.socket:
    """Sockets for aiohttp that close with RST: bench teardown leaves no TIME_WAIT behind."""
    family, kind, proto, _, _ = addr_info
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    return sock


def session(ip: str, cookies: bool = False) -> aiohttp.ClientSession:
    """An aiohttp session whose connections come from source address ``ip``."""
    conn = aiohttp.TCPConnector(limit=0, local_addr=(ip, 0), socket_factory=rst_socket)
    jar = aiohttp.CookieJar(unsafe=True) if cookies else aiohttp.DummyCookieJar()
    return aiohttp.ClientSession(
        connector=conn,
        cookie_jar=jar,
        headers={"User-Agent": UA},
        timeout=aiohttp.ClientTimeout(total=None, sock_connect=15),
    )


class Net:
    """aiohttp sessions bound to the 8 loopback source addresses; ``pick(i)`` spreads clients."""

    def __init__(self, base: str):
        self.base = base
        self.sessions = [session(ip) for ip in IPS]

    def pick(self, i: int) -> aiohttp.ClientSession:
        return self.sessions[i % len(self.sessions)]

    async def close(self) -> None:
        for s in self.sessions:
            await s.close()


async def new_token(session: aiohttp.ClientSession, base: str) -> str:
    async with session.post(base + "/api/visitor/token", data=b"") as r:
        j = await r.json(content_type=None)
        if r.status != 201:
            raise RuntimeError(f"token: {r.status} {j}")
        return j["token"]


async def track(session: aiohttp.ClientSession, base: str, token: str, i: int) -> int:
    """A page-view beacon as the widget sends it (§7.4): text/plain, token in the body."""
    body = json.dumps(dict(page(i), token=token))
    hdr = {"Content-Type": "text/plain;charset=UTF-8"}
    async with session.post(base + "/api/visitor/track", data=body, headers=hdr) as r:
        await r.read()
        return r.status


async def gather_limited(n: int, factory, limit: int = 64) -> list:
    """Run ``factory(i)`` for i in range(n) with at most ``limit`` in flight."""
    sem = asyncio.Semaphore(limit)

    async def one(i):
        async with sem:
            return await factory(i)

    return await asyncio.gather(*(one(i) for i in range(n)))


def apply_seq(cursors: dict, chat_id, seq: int) -> str:
    """One numbered event against a client's cursors (PROTOCOL §9): ``"new"`` (the cursor
    moves to it), ``"repeat"`` (seq at or below the cursor) or ``"gap"`` (events missing)."""
    cur = cursors.get(chat_id, 0)
    if seq <= cur:
        return "repeat"
    if seq > cur + 1:
        return "gap"
    cursors[chat_id] = seq
    return "new"


class StreamClient:
    """One party's event stream with the protocol's reconnect, resume and fallback rules."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        base: str,
        role: str = "visitor",
        token: str | None = None,
        on_event=None,
        baseline: bool = False,
        rooms: list[int] | None = None,
    ):
        self.session, self.base, self.role, self.token = session, base, role, token
        self.on_event = on_event
        self.baseline, self.rooms = baseline, rooms or []
        self.cursors: dict[int, int] = {}
        self.expect: dict[int, int] = {}
        self.mode = "ws"
        self.attempt = 0
        self.ws_fail = 0
        self.ws = None
        self.stop = False
        self.task: asyncio.Task | None = None
        self.ready = asyncio.get_running_loop().create_future()  # first welcome
        self.heartbeat = 25.0
        self.last_rx = 0.0
        self.up_since = 0.0
        self.resumed_at: float | None = None
        self.welcomes = 0
        self.dups = self.gaps = self.resets = self.syncs = 0
        self.syncing = False
        self.close_codes: list[int | None] = []
        self.pending: dict[str, asyncio.Future] = {}
        self.poll_since = 0.0
        self.transport_used: set[str] = set()

    # -- life cycle ---------------------------------------------------------------------------

    def start(self) -> StreamClient:
        self.task = asyncio.ensure_future(self.run())
        return self

    async def run(self) -> None:
        while not self.stop:
            if self.mode == "ws":
                welcomed = await self._ws_once()
            else:
                welcomed = await self._poll_once()
            if self.stop:
                return
            if self.close_codes and self.close_codes[-1] == 4001:
                return  # session ended: log in again, do not reconnect
            if self.mode == "ws":
                self.ws_fail = 0 if welcomed else self.ws_fail + 1
                if self.ws_fail >= 3 and not self.baseline:
                    self.mode, self.poll_since = "poll", now()
            if welcomed and now() - self.up_since >= 10:
                self.attempt = 0
            delay = min(30, 0.5 * 2**self.attempt) * (0.5 + random.random())
            self.attempt += 1
            await asyncio.sleep(delay)

    def abort(self) -> None:
        """Stop for good, closing abortively (bench teardown)."""
        self.stop = True
        if self.ws is not None:
            rst_close(self.ws)
        if self.task is not None:
            self.task.cancel()

    # -- events -------------------------------------------------------------------------------

    def _check_resumed(self) -> None:
        if self.resumed_at is None and all(
            self.cursors.get(c, 0) >= s for c, s in self.expect.items()
        ):
            self.resumed_at = now()

    def _handle(self, ev: dict) -> None:
        t = ev.get("type")
        self.last_rx = now()
        if t == "welcome":
            self.welcomes += 1
            self.heartbeat = float(ev.get("heartbeat") or 25)
            self.expect = {c["id"]: c["last_seq"] for c in ev.get("chats", ())}
            self.up_since = now()
            self.resumed_at = None  # each welcome starts a new resume
            if not self.ready.done():
                self.ready.set_result(ev)
            self._check_resumed()
        elif "seq" in ev and "chat_id" in ev:
            seen = apply_seq(self.cursors, ev["chat_id"], ev["seq"])
            if seen == "repeat":
                self.dups += 1
                return
            if seen == "gap":
                self.gaps += 1
                # one sync in flight at a time, as the widget does (on long-poll the widget
                # starts a new conn instead; this client leaves it to the next poll)
                if not self.syncing and self.mode == "ws":
                    self.syncing = True
                    asyncio.ensure_future(self._sync())
                return
            self._check_resumed()
        elif t == "reset":
            self.resets += 1
            self.cursors.pop(ev.get("chat_id"), None)
        elif t in ("ack", "error", "pong"):
            fut = self.pending.pop(ev.get("ref") or "", None)
            if fut is not None and not fut.done():
                fut.set_result(ev)
        if self.on_event is not None:
            self.on_event(self, ev)

    async def _sync(self) -> None:
        """Ask for a replay after a gap; the next gap asks again once this one is answered."""
        self.syncs += 1
        try:
            await self.request({"type": "sync", "cursors": self._cursors()})
        except Exception:
            pass
        finally:
            self.syncing = False

    def _cursors(self) -> dict:
        return {str(k): v for k, v in self.cursors.items()}

    # -- commands -----------------------------------------------------------------------------

    def send_nowait(self, cmd: dict) -> bool:
        """Send a command on the WebSocket without waiting; False when not connected."""
        ws = self.ws
        if ws is None or ws.closed:
            return False
        asyncio.ensure_future(self._send(ws, json.dumps(cmd)))
        return True

    @staticmethod
    async def _send(ws, text: str) -> None:
        try:
            await ws.send_str(text)
        except Exception:
            pass

    async def request(self, cmd: dict, timeout: float = 30) -> dict:
        """Send a command and wait for its ack/error (WebSocket, or ``send`` on long-poll)."""
        cmd = dict(cmd, id=f"r{next(_ids)}")
        if self.mode == "poll":
            url = f"{self.base}/api/{'visitor' if self.role == 'visitor' else 'console'}/send"
            async with self.session.post(url, json=cmd, headers=self._auth()) as r:
                return await r.json(content_type=None)
        fut = asyncio.get_running_loop().create_future()
        self.pending[cmd["id"]] = fut
        if not self.send_nowait(cmd):
            self.pending.pop(cmd["id"], None)
            return {"type": "error", "error": "not_connected"}
        return await asyncio.wait_for(fut, timeout)

    def _auth(self) -> dict:
        return {"Authorization": "Bearer " + self.token} if self.role == "visitor" else {}

    # -- WebSocket ----------------------------------------------------------------------------

    async def _ws_once(self) -> bool:
        if self.baseline:
            url = self.base.replace("http", "ws", 1) + "/ws"
        else:
            part = "visitor" if self.role == "visitor" else "console"
            url = self.base.replace("http", "ws", 1) + f"/api/{part}/ws"
        try:
            ws = await asyncio.wait_for(
                self.session.ws_connect(
                    url,
                    autoping=True,
                    max_msg_size=0,
                    # The console's socket takes only its own origin, as a browser sends it.
                    origin=self.base if self.role == "operator" and not self.baseline else None,
                ),
                15,
            )
        except Exception:
            self.close_codes.append(None)
            return False
        self.ws = ws
        self.transport_used.add("ws")
        if self.baseline:
            hello = {"type": "hello", "rooms": self.rooms}
        else:
            hello = {"type": "hello", "cursors": self._cursors()}
            if self.role == "visitor":
                hello["token"] = self.token
        welcomed = False
        hb = None
        try:
            await ws.send_str(json.dumps(hello))
            async for msg in ws:
                if msg.type != aiohttp.WSMsgType.TEXT:
                    break
                ev = json.loads(msg.data)
                if ev.get("type") == "welcome":
                    welcomed = True
                    if hb is None:
                        hb = asyncio.ensure_future(self._heartbeat(ws))
                self._handle(ev)
        except Exception:
            pass
        finally:
            if hb is not None:
                hb.cancel()
            self.ws = None
            self.close_codes.append(ws.close_code)
            for fut in self.pending.values():
                if not fut.done():
                    fut.set_result({"type": "error", "error": "disconnected"})
            self.pending.clear()
        return welcomed

    async def _heartbeat(self, ws) -> None:
        while not ws.closed:
            await asyncio.sleep(self.heartbeat)
            sent = now()
            try:
                await ws.send_str(json.dumps({"type": "ping", "id": f"p{next(_ids)}"}))
            except Exception:
                return
            await asyncio.sleep(10)
            if self.last_rx < sent and not ws.closed:
                rst_close(ws)  # no answer within 10 s: dead, reconnect
                return

    # -- long-poll ----------------------------------------------------------------------------

    async def _poll_once(self) -> bool:
        self.transport_used.add("poll")
        part = "visitor" if self.role == "visitor" else "console"
        url = f"{self.base}/api/{part}/poll"
        conn = None
        welcomed = False
        while not self.stop:
            if now() - self.poll_since > 300:
                self.mode, self.ws_fail = "ws", 0  # §9: try the WebSocket again
                return welcomed
            body = json.dumps({"conn": conn, "cursors": self._cursors()})
            try:
                async with self.session.post(url, data=body, headers=self._auth()) as r:
                    if r.status != 200:
                        return welcomed
                    j = await r.json(content_type=None)
            except Exception:
                return welcomed
            conn = j["conn"]
            for ev in j["events"]:
                if ev.get("type") == "welcome":
                    welcomed = True
                self._handle(ev)
        return welcomed


async def baseline_poll(session, base: str, room: int, on_event, stop: list) -> None:
    """A held GET loop against bench/baseline.py (the long-poll baseline)."""
    while not stop:
        try:
            async with session.get(f"{base}/poll?room={room}") as r:
                j = await r.json(content_type=None)
        except Exception:
            await asyncio.sleep(0.5)
            continue
        for ev in j["events"]:
            on_event(None, ev)


# -- the monitor fan-out: beacons of many visitors, consoles watching -------------------------

#: A fan-out beacon's URL names the visitor and its round: ``.../v00012/p3/...``.
FANOUT_URL = re.compile(r"/v(\d+)/p(\d+)/")


def fanout_beacon(token: str, vi: int, rnd: int) -> bytes:
    """Visitor ``vi``'s ``rnd``-th page view (a 100-character URL that names both)."""
    url = f"https://www.example-shop.com/catalogue/v{vi:05d}/p{rnd}/garden-spade?utm_source=news"
    url += "&ref=" + "x" * max(0, 100 - len(url) - 5)
    title = f"Stainless steel garden spade - visitor {vi:05d}, page {rnd} | Shop"
    body = {"token": token, "url": url[:100], "title": title[:60]}
    return json.dumps(dict(body, referrer="https://www.google.com/")).encode()


class BeaconPool:
    """Page-view beacons (§7.4) over ``n`` keep-alive HTTP/1.1 connections, spread over the
    source addresses: raw asyncio streams, much lighter per request than aiohttp, so that
    hundreds of beacons a second leave the generator's core to the consoles it also runs.
    ``send`` never waits: a beacon waits in the queue for the next free connection, and
    ``done(status)`` is called with its HTTP status (None: the connection failed)."""

    def __init__(self, host: str, port: int, path: str, n: int = 32):
        self.host, self.port, self.path, self.n = host, port, path, n
        self.head = (
            f"POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\nUser-Agent: {UA}\r\n"
            "Content-Type: text/plain;charset=UTF-8\r\nContent-Length: "
        ).encode()
        self.queue: asyncio.Queue = asyncio.Queue()
        self.workers: list[asyncio.Task] = []
        self.writers: list = []
        self.answered = 0
        self.statuses: dict = {}

    def start(self) -> BeaconPool:
        self.workers = [asyncio.ensure_future(self._worker(i)) for i in range(self.n)]
        return self

    def send(self, body: bytes, done=None) -> None:
        self.queue.put_nowait((body, done))

    async def _connect(self, i: int):
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.bind((IPS[i % len(IPS)], 0))
        sock.setblocking(False)
        await asyncio.get_running_loop().sock_connect(sock, (self.host, self.port))
        reader, writer = await asyncio.open_connection(sock=sock, limit=1 << 20)
        self.writers.append(writer)
        return reader, writer

    async def _answer(self, reader) -> tuple[int, bool]:
        hdr = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1").lower()
        status = int(hdr[9:12])
        m = re.search(r"\r\ncontent-length:\s*(\d+)", hdr)
        if m:
            await reader.readexactly(int(m.group(1)))
        elif "transfer-encoding: chunked" in hdr:
            while size := int((await reader.readuntil(b"\r\n")).split(b";")[0], 16):
                await reader.readexactly(size + 2)
            await reader.readuntil(b"\r\n")
        return status, "\r\nconnection: close" in hdr

    async def _worker(self, i: int) -> None:
        reader = writer = None
        while True:
            body, done = await self.queue.get()
            status = None
            try:
                if writer is None:
                    reader, writer = await self._connect(i)
                writer.write(self.head + str(len(body)).encode() + b"\r\n\r\n" + body)
                status, close = await self._answer(reader)
            except (OSError, ValueError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
                close = True
            if close and writer is not None:
                writer.transport.abort()
                reader = writer = None
            self.answered += 1
            self.statuses[status] = self.statuses.get(status, 0) + 1
            if done is not None:
                done(status)

    async def close(self) -> None:
        """Stop, closing every connection abortively (RST: no TIME_WAIT left behind)."""
        for t in self.workers:
            t.cancel()
        await asyncio.gather(*self.workers, return_exceptions=True)
        for w in self.writers:
            w.transport.abort()


class MonitorWatch:
    """What each console watching the monitor has seen of the fan-out beacons.

    ``sent(vi, rnd, due, recorded)`` registers visitor ``vi``'s ``rnd``-th beacon (rounds of
    a visitor are seconds apart, so its rows arrive in order). ``on_event`` is every console's
    event handler: each ``visitors`` / ``visitors_changed`` row names its visitor and round by
    its URL; the first row of round ``r`` on a console completes every round up to ``r`` there
    (a later page also shows the earlier change), with the latency from each one's due time.
    ``gone`` ids leave the console's list. ``converged`` is true once every console lists every
    visitor at the last round the server accepted (``final``)."""

    def __init__(self, visitors: int):
        self.nv = visitors
        self.due: list[list[float]] = [[] for _ in range(visitors)]
        self.rec: list[list[bool]] = [[] for _ in range(visitors)]
        self.final = [-1] * visitors  # the last round answered 204 (or 200)
        self.consoles: dict[int, dict] = {}
        self.lat: list[float] = []
        self.window = (float("inf"), float("inf"))

    def sent(self, vi: int, rnd: int, due: float, recorded: bool) -> None:
        self.due[vi].append(due)
        self.rec[vi].append(recorded)

    def answered(self, vi: int, rnd: int, status: int | None) -> None:
        if status in (200, 204) and rnd > self.final[vi]:
            self.final[vi] = rnd

    def console(self, c) -> dict:
        st = self.consoles.get(id(c))
        if st is None:
            st = self.consoles[id(c)] = dict(
                seen=[-1] * self.nv, listed=set(), ids={}, events=0, rows=0, times=[]
            )
        return st

    def on_event(self, c, ev: dict) -> None:
        t = ev.get("type")
        if t not in ("visitors", "visitors_changed"):
            return
        tnow = now()
        st = self.console(c)
        rows = ev.get("visitors") or ()
        if t == "visitors_changed" and self.window[0] <= tnow <= self.window[1]:
            st["events"] += 1
            st["rows"] += len(rows)
            st["times"].append(tnow)
        seen, listed, ids, lat = st["seen"], st["listed"], st["ids"], self.lat
        for row in rows:
            m = FANOUT_URL.search(row.get("url") or "")
            if m is None:
                continue
            vi, rnd = int(m.group(1)), int(m.group(2))
            if vi >= self.nv:
                continue
            ids[row.get("id")] = vi
            listed.add(vi)
            due, rec = self.due[vi], self.rec[vi]
            for r in range(seen[vi] + 1, min(rnd, len(due) - 1) + 1):
                if rec[r]:
                    lat.append((tnow - due[r]) * 1000)
            if rnd > seen[vi]:
                seen[vi] = rnd
        for gid in ev.get("gone") or ():
            vi = ids.get(gid)
            if vi is not None:
                listed.discard(vi)

    def missing(self, consoles: int) -> int:
        """(console, visitor) pairs where the console does not list the visitor's last page."""
        want = [(vi, f) for vi, f in enumerate(self.final) if f >= 0]
        miss = consoles * len(want) - sum(
            1
            for st in self.consoles.values()
            for vi, f in want
            if vi in st["listed"] and st["seen"][vi] >= f
        )
        return miss

    def converged(self, consoles: int) -> bool:
        return len(self.consoles) >= consoles and self.missing(consoles) == 0
