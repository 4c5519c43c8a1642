"""Test harness: the real server in a subprocess on an ephemeral port with real clients, and
the domain in-process with a fake clock.

``server`` starts ``cutelive.py serve`` with a fresh data directory and returns a ``Server``;
``Server.visitor()`` and ``Server.console(...)`` give protocol clients that speak real HTTP and
WebSocket; those tests see the server only as its users do. ``app`` builds the application
with ``make_app`` in the test's own process, with ``FakeClock`` and ``CheapHasher``, for the
domain's logic in milliseconds.
"""

from __future__ import annotations

import email
import email.policy
import itertools
import json
import os
import queue
import re
import shutil
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
import uuid
import zlib
from pathlib import Path

import backends
import pytest
import requests
import websocket
from backends import (  # noqa: F401 (fixtures and a hook, registered by being here)
    backend,
    database_url_for,
    new_server,
    postgres,
    pytest_generate_tests,
    redis,
)
from common import CHROME, PASSWORD, ROOT, TIMEOUT, wait_for, with_generous_limits  # noqa: F401
from inprocess import InProcessApp

#: Set CUTELIVE_BIN to run the same tests against a built executable.
SERVER_CMD = (
    [os.environ["CUTELIVE_BIN"]]
    if os.environ.get("CUTELIVE_BIN")
    else [sys.executable, str(ROOT / "cutelive.py")]
)
_ids = itertools.count(1)

# The suite starts several hundred server and CLI processes. Where the environment forbids
# writing bytecode beside the sources, each would compile the package and its libraries again:
# they share compiled files in a cache of their own instead, outside the tree.
if os.environ.pop("PYTHONDONTWRITEBYTECODE", None):
    os.environ["PYTHONPYCACHEPREFIX"] = os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "cutelive-tests-pyc"
    )


class Server:
    """One server process with its own data directory and ini file."""

    def __init__(
        self,
        tmp: Path,
        config: dict[str, dict[str, str]] | None = None,
        env: dict[str, str] | None = None,
        database_url: str = "",
    ):
        self.tmp = Path(tmp)
        self.tmp.mkdir(parents=True, exist_ok=True)
        #: The PostgreSQL database's URL; empty: SQLite in the data directory.
        self.database_url = database_url
        if database_url:
            config = {**(config or {}), "database": {"url": database_url}}
        #: Extra environment variables for the server process.
        self.env = env
        self.data_dir = self.tmp / "data"
        self.ini = self.tmp / "test.ini"
        base = with_generous_limits(config)
        self.config = base
        lines = []
        for section, values in base.items():
            lines.append(f"[{section}]")
            lines += [f"{k} = {v}" for k, v in values.items()]
        self.ini.write_text("\n".join(lines) + "\n")
        self.proc: subprocess.Popen | None = None
        self.port: int | None = None
        self.log_lines: list[str] = []
        self.setup_token: str | None = None
        #: The first administrator's (username, password), once created.
        self.admin: tuple[str, str] | None = None
        self._clients: list = []

    # -- process ----------------------------------------------------------------------------

    def start(self, port: int | None = None) -> Server:
        """Start (or restart, on the same port if given) and wait until it listens."""
        cmd = SERVER_CMD + [
            "serve",
            "-c",
            str(self.ini),
            "--data-dir",
            str(self.data_dir),
            "--port",
            str(port if port is not None else 0),
        ]
        self.proc = subprocess.Popen(
            cmd,
            stderr=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            text=True,
            cwd=self.tmp,
            env={**os.environ, **self.env} if self.env else None,
        )
        lines: queue.Queue = queue.Queue()

        def pump(proc=self.proc):
            for line in proc.stderr:
                self.log_lines.append(line)
                lines.put(line)

        threading.Thread(target=pump, daemon=True).start()
        deadline = time.monotonic() + 60  # a first start on a loaded machine loads the drivers
        while True:
            try:
                line = lines.get(timeout=max(0.01, deadline - time.monotonic()))
            except queue.Empty:
                self.kill()
                raise AssertionError("server did not start:\n" + "".join(self.log_lines))
            m = re.search(r"listening on http://[^:]+:(\d+)", line)
            if m:
                self.port = int(m.group(1))
                break
        return self

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    @property
    def console_url(self) -> str:
        """Where operators sign in (in a ``Cluster``, another process than visitors')."""
        return self.url

    def rows(self, sql: str, *params) -> list[tuple]:
        """The rows of one query on the server's database (SQLite or PostgreSQL), read
        directly as an administrator would."""
        if self.database_url:
            return backends.fetch(self.database_url, sql, *params)
        import sqlite3

        con = sqlite3.connect(self.data_dir / "cutelive.db")
        try:
            return [tuple(r) for r in con.execute(sql, params).fetchall()]
        finally:
            con.close()

    def metrics(self) -> dict:
        """The server's load figures (GET /api/metrics, loopback only)."""
        return requests.get(self.url + "/api/metrics", timeout=TIMEOUT).json()

    def _setup_pending(self) -> bool:
        r = requests.get(self.url + "/api/console/session", timeout=TIMEOUT)
        return r.json()["setup_required"]

    def setup_token_from_log(self) -> str:
        def find():
            for line in self.log_lines:
                m = re.search(r"setup token (\S+)", line)
                if m:
                    return m.group(1)
            return None

        return wait_for(find, what="setup token in the log")

    def stop(self, sig=signal.SIGTERM) -> int | None:
        """Signal the server, wait for it to exit, then close the test's clients."""
        rc = None
        if self.proc is not None:
            if self.proc.poll() is None:
                self.proc.send_signal(sig)
                try:
                    self.proc.wait(15)
                except subprocess.TimeoutExpired:
                    self.proc.kill()
                    self.proc.wait()
            rc = self.proc.returncode
            self.proc = None
        for c in self._clients:
            c.close()
        self._clients.clear()
        return rc

    def kill(self) -> None:
        """SIGKILL: the crash case."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.proc = None

    def restart(self) -> Server:
        port = self.port
        self.stop()
        return self.start(port)

    @property
    def console_server(self) -> Server:
        """The process consoles talk to (this one, or a ``Cluster``'s other)."""
        return self

    def online(self, username: str = "bob") -> tuple[ConsoleClient, WS]:
        """An operator online through the protocol client (when the console is not the
        subject): (client, its WebSocket)."""
        client = self.console(username)
        ws = client.connect()
        assert ws.request({"type": "status", "status": "online"})["type"] == "ack"
        return client, ws

    def bob_answers_ann(self, text: str = "Hello, I need help") -> tuple[WS, VisitorClient, int]:
        """Bob online (``online``) and accepting Ann's new chat, started with ``text``: (Bob's
        WebSocket, Ann, the chat's id)."""
        _bob, bob_ws = self.online("bob")
        ann = self.visitor()
        ann.connect()
        chat_id = ann.start_chat(text)["chat"]["id"]
        assert bob_ws.request({"type": "accept", "chat_id": chat_id})["type"] == "ack"
        return bob_ws, ann, chat_id

    def run_cli(self, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
        return subprocess.run(
            SERVER_CMD + list(args) + ["-c", str(self.ini), "--data-dir", str(self.data_dir)],
            input=stdin,
            capture_output=True,
            text=True,
            timeout=60,
            cwd=self.tmp,
        )

    # -- clients ----------------------------------------------------------------------------

    def create_operator(
        self,
        username: str,
        password: str = PASSWORD,
        admin=False,
        display_name: str | None = None,
    ) -> None:
        """Add an operator over the console API, as an administrator would: the first
        administrator with the setup token from the log, the others by that administrator.
        (The command line's create-operator has tests of its own.)"""
        body = {"username": username, "display_name": display_name or username}
        body["password"] = password
        if self.admin is None and (not admin or not self._setup_pending()):
            args = ["create-operator", username, "--password-stdin"]
            if admin:
                args.append("--admin")
            if display_name:
                args += ["--display-name", display_name]
            r = self.run_cli(*args, stdin=password + "\n")
            assert r.returncode == 0, r.stderr
            return
        http = requests.Session()
        xsrf = http.get(self.url + "/api/console/session", timeout=TIMEOUT).json()["xsrf"]
        http.headers["X-XSRFToken"] = xsrf
        if self.admin is None:
            body["setup_token"] = self.setup_token_from_log()
            r = http.post(self.url + "/api/console/setup", json=body, timeout=TIMEOUT)
            assert r.status_code == 201, r.text
            self.admin = (username, password)
            return
        name, secret = self.admin
        r = http.post(
            self.url + "/api/console/login",
            json={"username": name, "password": secret},
            timeout=TIMEOUT,
        )
        assert r.status_code == 200, r.text
        r = http.post(
            self.url + "/api/console/operators", json=dict(body, is_admin=admin), timeout=TIMEOUT
        )
        assert r.status_code == 201, r.text

    def visitor(self, token: str | None = None) -> VisitorClient:
        c = VisitorClient(self, token)
        self._clients.append(c)
        return c

    def console(self, username: str, password: str = PASSWORD) -> ConsoleClient:
        c = ConsoleClient(self.console_server)
        c.login(username, password)
        self._clients.append(c)
        return c


class WS:
    """A WebSocket with a background reader, so tests can wait for events by condition."""

    def __init__(self, url: str, **kwargs):
        self.sock = websocket.create_connection(url, timeout=TIMEOUT, **kwargs)
        self.events: list[dict] = []
        self.closed: tuple | None = None
        self._cond = threading.Condition()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        while True:
            try:
                op, data = self.sock.recv_data(control_frame=False)
            except Exception as e:  # closed, reset, timeout
                with self._cond:
                    if self.closed is None:
                        self.closed = ("error", str(e))
                    self._cond.notify_all()
                return
            if op == websocket.ABNF.OPCODE_CLOSE:
                code = int.from_bytes(data[:2], "big") if len(data) >= 2 else None
                with self._cond:
                    self.closed = (code, data[2:].decode("utf-8", "replace"))
                    self._cond.notify_all()
                return
            if op == websocket.ABNF.OPCODE_TEXT:
                ev = json.loads(data.decode("utf-8"))
                with self._cond:
                    self.events.append(ev)
                    self._cond.notify_all()

    def send(self, obj) -> None:
        self.sock.send(obj if isinstance(obj, str) else json.dumps(obj))

    def wait(self, pred, timeout=TIMEOUT, what="event", start: int = 0) -> dict:
        """The first event (from index ``start``) matching ``pred``."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for ev in self.events[start:]:
                    if pred(ev):
                        return ev
                remaining = deadline - time.monotonic()
                if remaining <= 0 or self.closed:
                    if self.closed and remaining > 0:
                        # a last look after close
                        for ev in self.events[start:]:
                            if pred(ev):
                                return ev
                    raise AssertionError(
                        f"timed out waiting for {what}; closed={self.closed}; "
                        f"got {self.events[start:][-8:]}"
                    )
                self._cond.wait(min(remaining, 0.5))

    def wait_closed(self, timeout=TIMEOUT) -> tuple:
        deadline = time.monotonic() + timeout
        with self._cond:
            while self.closed is None:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise AssertionError("socket did not close")
                self._cond.wait(remaining)
            return self.closed

    def request(self, cmd: dict, timeout=TIMEOUT) -> dict:
        """Send a command with a fresh id and return its ack/pong/error."""
        ref = f"r{next(_ids)}"
        cmd = dict(cmd, id=ref)
        self.send(cmd)
        return self.wait(
            lambda e: e.get("ref") == ref and e["type"] in ("ack", "error", "pong"),
            timeout,
            what=f"reply to {cmd['type']}",
        )

    def chat_events(self, chat_id: int) -> list[dict]:
        with self._cond:
            return [e for e in self.events if e.get("chat_id") == chat_id and "seq" in e]

    def close(self) -> None:
        try:
            self.sock.close()
        except Exception:
            pass


class _Client:
    """What the visitor's and the operator's clients share: an HTTP session on ``server``, the
    sockets opened, and the role's ``/api/ROLE/poll``."""

    role = ""

    def __init__(self, server: Server):
        self.server = server
        self.http = requests.Session()
        self.ws: WS | None = None
        self._sockets: list[WS] = []

    def poller(self) -> Poller:
        return Poller(self.http, f"{self.server.url}/api/{self.role}/poll")

    def close(self) -> None:
        for ws in self._sockets:
            ws.close()


class VisitorClient(_Client):
    """A visitor: token over HTTP, stream over WebSocket (or long-poll via ``poller()``)."""

    role = "visitor"

    def __init__(self, server: Server, token: str | None = None):
        super().__init__(server)
        if token is None:
            r = self.http.post(server.url + "/api/visitor/token", json={}, timeout=TIMEOUT)
            assert r.status_code == 201, r.text
            token = r.json()["token"]
            self.visitor_id = r.json()["visitor_id"]
        self.token = token
        self.http.headers["Authorization"] = f"Bearer {token}"
        self.welcome: dict | None = None

    def connect(self, cursors: dict | None = None, **kwargs) -> WS:
        ws = WS(self.server.ws_url + "/api/visitor/ws", **kwargs)
        self._sockets.append(ws)
        ws.send({"type": "hello", "token": self.token, "cursors": cursors or {}})
        self.welcome = ws.wait(lambda e: e["type"] in ("welcome", "error"), what="welcome")
        self.ws = ws
        return ws

    def start_chat(self, text="Hello, I need help", name="Ann", **extra) -> dict:
        ack = self.ws.request(
            {
                "type": "start_chat",
                "name": name,
                "text": text,
                "client_id": uuid.uuid4().hex,
                **extra,
            }
        )
        assert ack["type"] == "ack", ack
        return ack

    def say(self, chat_id: int, text: str, client_id: str | None = None) -> dict:
        return self.ws.request(
            {
                "type": "message",
                "chat_id": chat_id,
                "text": text,
                "client_id": client_id or uuid.uuid4().hex,
            }
        )

    def send(self, cmd: dict) -> requests.Response:
        return self.http.post(self.server.url + "/api/visitor/send", json=cmd, timeout=TIMEOUT)


class ConsoleClient(_Client):
    """An operator: cookie session with CSRF over HTTP, stream over the console WebSocket."""

    role = "console"

    def __init__(self, server: Server):
        super().__init__(server)
        r = self.http.get(server.url + "/api/console/session", timeout=TIMEOUT)
        self.xsrf = r.json()["xsrf"]
        self.http.headers["X-XSRFToken"] = self.xsrf
        self.operator: dict | None = None

    def login(self, username: str, password: str) -> dict:
        r = self.http.post(
            self.server.url + "/api/console/login",
            json={"username": username, "password": password},
            timeout=TIMEOUT,
        )
        assert r.status_code == 200, r.text
        self.operator = r.json()["operator"]
        return self.operator

    def cookie_header(self) -> str:
        return "; ".join(f"{c.name}={c.value}" for c in self.http.cookies)

    def connect(self, cursors: dict | None = None, origin: str | None = None) -> WS:
        ws = WS(
            self.server.ws_url + "/api/console/ws",
            cookie=self.cookie_header(),
            origin=origin or self.server.url,
        )
        self._sockets.append(ws)
        ws.send({"type": "hello", "cursors": cursors or {}})
        ws.wait(lambda e: e["type"] in ("welcome", "error"), what="welcome")
        self.ws = ws
        return ws

    def get(self, path: str, **kw) -> requests.Response:
        return self.http.get(self.server.url + path, timeout=TIMEOUT, **kw)

    def post(self, path: str, body=None, **kw) -> requests.Response:
        return self.http.post(self.server.url + path, json=body, timeout=TIMEOUT, **kw)

    def patch(self, path: str, body=None, **kw) -> requests.Response:
        return self.http.patch(self.server.url + path, json=body, timeout=TIMEOUT, **kw)

    def send(self, cmd: dict) -> requests.Response:
        return self.post("/api/console/send", cmd)


class Poller:
    """A long-poll client that keeps its cursors the way docs/PROTOCOL.md §4 says."""

    def __init__(self, http: requests.Session, url: str):
        self.http = http
        self.url = url
        self.conn: str | None = None
        self.cursors: dict[str, int] = {}
        self.events: list[dict] = []

    def poll(self, timeout=40) -> list[dict]:
        r = self.http.post(
            self.url, json={"conn": self.conn, "cursors": self.cursors}, timeout=timeout
        )
        assert r.status_code == 200, r.text
        body = r.json()
        self.conn = body["conn"]
        for ev in body["events"]:
            if "seq" in ev:
                key = str(ev["chat_id"])
                assert ev["seq"] == self.cursors.get(key, 0) + 1, (ev, self.cursors)
                self.cursors[key] = ev["seq"]
            self.events.append(ev)
        return body["events"]

    def poll_until(self, pred, timeout=TIMEOUT, what="event") -> dict:
        deadline = time.monotonic() + timeout
        while True:
            for ev in self.events:
                if pred(ev):
                    return ev
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for {what}; got {self.events[-8:]}")
            self.poll()


@pytest.fixture
def make_server(tmp_path, backend, request):
    """Factory: ``make_server(config={...})`` starts a server (``database=path`` on a copy of
    that database: the seeded one, on either backend); all are stopped at teardown."""
    servers: list[Server] = []

    def make(config=None, subdir=None, database: Path | None = None, env=None) -> Server:
        d = tmp_path / (subdir or f"s{len(servers)}")
        d.mkdir(exist_ok=True)
        template = None
        if database is not None and backend != "sqlite":
            assert database == request.getfixturevalue("seeded_database"), database
            template = request.getfixturevalue("seeded_postgres")
        s = new_server(request, backend, d, config, env, template)
        if database is not None and backend == "sqlite":  # a copy of this database file
            s.data_dir.mkdir()
            shutil.copyfile(database, s.data_dir / "cutelive.db")
        servers.append(s)
        return s.start()

    yield make
    for s in servers:
        s.stop()


def _seed(server: Server) -> Server:
    """An administrator ``admin`` and an operator ``bob``, made by a real server through the
    console API; then their password hashes are made cheap to verify (see ``_cheap_hash``)."""
    try:
        server.start()
        server.create_operator("admin", admin=True, display_name="Alice Admin")
        server.create_operator("bob", display_name="Bob")
    finally:
        server.stop()
    sql = "UPDATE operator SET password_hash = ? RETURNING id"
    if server.database_url:
        assert len(backends.fetch(server.database_url, sql, _cheap_hash(PASSWORD))) == 2
    else:
        import sqlite3

        con = sqlite3.connect(server.data_dir / "cutelive.db")
        try:
            with con:
                assert len(con.execute(sql, (_cheap_hash(PASSWORD),)).fetchall()) == 2
        finally:
            con.close()
    return server


def _cheap_hash(password: str) -> str:
    """An argon2id hash of ``password`` at the lowest cost argon2 allows.

    A server verifies a hash at the cost written in it: its own hashes take about 0.2 CPU-s
    each, and the suite signs ``admin`` and ``bob`` in several hundred times. What a server
    hashes itself (a new operator, a changed password) it hashes at full cost, which
    ``test_cli.py`` checks."""
    import argon2

    return argon2.PasswordHasher(time_cost=1, memory_cost=8, parallelism=1).hash(password)


@pytest.fixture(scope="session")
def seeded_database(tmp_path_factory) -> Path:
    """A database with an administrator ``admin`` and an operator ``bob``, made once per run."""
    return _seed(Server(tmp_path_factory.mktemp("seed"))).data_dir / "cutelive.db"


@pytest.fixture(scope="session")
def seeded_postgres(tmp_path_factory, postgres) -> str:
    """The seeded database of ``seeded_database`` on PostgreSQL: the name of a template."""
    url = postgres.new_database()
    _seed(Server(tmp_path_factory.mktemp("seedpg"), database_url=url))
    return url.rpartition("/")[2]


@pytest.fixture
def server(make_server, seeded_database) -> Server:
    """A running server with an administrator ``admin`` and an operator ``bob`` (on a copy of
    the seeded database)."""
    s = make_server(database=seeded_database)
    s.admin = ("admin", PASSWORD)
    return s


# -- helpers for the subprocess tests ------------------------------------------------------------


def png(width: int, height: int) -> bytes:
    """A real PNG: a diagonal gradient, so a preview is visibly a picture."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    rows = b"".join(
        b"\x00"
        + b"".join(
            bytes((40 + 180 * x // width, 90 + 120 * y // height, 200 - 100 * x // width))
            for x in range(width)
        )
        for y in range(height)
    )
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)  # 8-bit RGB
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )


def track(server, token, url, title="", referrer="", ua=CHROME) -> requests.Response:
    """A page-view beacon as the widget sends it: text/plain, a simple request with no CORS
    preflight."""
    return requests.post(
        server.url + "/api/visitor/track",
        data=json.dumps({"token": token, "url": url, "title": title, "referrer": referrer}),
        headers={"Content-Type": "text/plain", "User-Agent": ua, "Origin": "http://localhost:9"},
        timeout=TIMEOUT,
    )


def row_of(events: list[dict], vid: int) -> dict | None:
    """The latest monitor row for a visitor, from the snapshots and deltas among ``events``."""
    row = None
    for e in events:
        if e["type"] in ("visitors", "visitors_changed"):
            for r in e["visitors"]:
                if r["id"] == vid:
                    row = r
            if e["type"] == "visitors_changed" and vid in e.get("gone", []):
                row = None
    return row


def login(server, username: str, password: str) -> tuple[ConsoleClient, requests.Response]:
    """A fresh console client (with its CSRF token) and the raw answer to its login."""
    c = ConsoleClient(server)
    r = c.post("/api/console/login", {"username": username, "password": password})
    return c, r


def seqs(events: list[dict], chat_id: int) -> list[int]:
    """The sequence numbers of one chat's events, in the order they came."""
    return [e["seq"] for e in events if e.get("chat_id") == chat_id and "seq" in e]


def queue_lists(events: list[dict], chat_id: int) -> list[bool]:
    """For each ``queue`` event in order: whether it lists the chat."""
    return [any(c["id"] == chat_id for c in e["chats"]) for e in events if e["type"] == "queue"]


class Inbox:
    """A real SMTP server (aiosmtpd) on a fixed port, and what it received:
    ``(mail_from, rcpt_tos, message)`` each. ``stop()`` and ``start()`` make an outage;
    ``refuse_rcpt = "550 ..."`` refuses every recipient."""

    def __init__(self, port: int):
        self.messages = []
        self.lock = threading.Lock()
        self.port = port
        self.refuse_rcpt: str | None = None
        self._controller = None

    def start(self) -> None:
        from aiosmtpd.controller import Controller

        self._controller = Controller(self, hostname="127.0.0.1", port=self.port)
        self._controller.start()

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    async def handle_RCPT(self, server, session, envelope, address, options):  # noqa: N802
        if self.refuse_rcpt:
            return self.refuse_rcpt
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 (aiosmtpd's name)
        msg = email.message_from_bytes(envelope.content, policy=email.policy.default)
        with self.lock:
            self.messages.append((envelope.mail_from, envelope.rcpt_tos, msg))
        return "250 OK"


@pytest.fixture
def smtp():
    """A real SMTP server (aiosmtpd) on a free port; ``smtp.messages`` is what it got."""
    with socket.socket() as probe:  # aiosmtpd needs a concrete port
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    inbox = Inbox(port)
    inbox.start()
    yield inbox
    inbox.stop()


def mail_config(smtp: Inbox, **extra: str) -> dict:
    """The ``[mail]`` section that sends to the test's SMTP server."""
    return {
        "mail": {
            "smtp_host": "127.0.0.1",
            "smtp_port": str(smtp.port),
            "smtp_security": "none",
            "to_address": "support@shop.example",
            **extra,
        }
    }


def pytest_sessionfinish(session, exitstatus):
    """A run that skipped a test, or ran none, fails: a skipped browser test proves nothing."""
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    stats = reporter.stats if reporter else {}
    skipped = len(stats.get("skipped", [])) + len(stats.get("xfailed", []))
    if session.testscollected == 0:
        session.exitstatus = 1
    elif skipped and session.exitstatus == 0:
        print(f"\nFAILED: {skipped} test(s) skipped; every test must run", file=sys.stderr)
        session.exitstatus = 1


# -- browser fixtures (test_browser*.py) ----------------------------------------------------------


class _Chromium:
    """Debian's Chromium under Playwright, shared by the browser tests that follow each other
    in a test process (the browser modules come first, see ``pytest_collection_modifyitems``).

    A test of another kind closes it first: Playwright's synchronous API keeps its event loop
    running in this thread, in the way of the in-process tests' own loops. Each test closes
    the contexts it opened (``_browser_contexts_closed``), so the next starts from a browser
    with none."""

    def __init__(self) -> None:
        self._playwright = None
        self.browser = None

    def get(self):
        if self.browser is not None and not self.browser.is_connected():
            self.close()  # it went away during an earlier test: a new one for this test
        if self.browser is None:
            from browser_helpers import launch
            from playwright.sync_api import sync_playwright

            self._playwright = sync_playwright().start()
            self.browser = launch(self._playwright)
        return self.browser

    def close(self) -> None:
        if self._playwright is not None:
            try:
                if self.browser is not None:
                    self.browser.close()
            finally:
                self._playwright.stop()
                self._playwright = self.browser = None


_chromium = _Chromium()


@pytest.fixture
def browser():
    """Debian's Chromium under Playwright (see ``_Chromium``)."""
    from browser_helpers import require_chromium

    require_chromium()  # fails (never skips) with "apt-get install chromium"
    return _chromium.get()


def pytest_runtest_setup(item):
    """A test that drives no browser starts with the shared Chromium closed."""
    if "browser" not in item.fixturenames:
        _chromium.close()


def pytest_unconfigure(config):
    """The shared Chromium is closed when the test process ends."""
    _chromium.close()


@pytest.fixture(autouse=True)
def _browser_contexts_closed(request):
    """After each browser test, every context it opened is closed (those of ``contexts`` and
    of ``watched_page`` alike): otherwise their pages and renderer processes would live on
    in the shared Chromium, each later test slower than the last."""
    yield
    if "browser" in request.fixturenames and _chromium.browser is not None:
        for ctx in list(_chromium.browser.contexts):
            ctx.close()


@pytest.fixture
def host(server, tmp_path):
    """The customer's web site, served from a second origin."""
    from browser_helpers import HostSite

    site = HostSite(tmp_path / "host", server.url)
    yield site
    site.close()


@pytest.fixture
def host_for(tmp_path):
    """``host_for(server)``: the customer's site on a second origin, for a server of the
    test's own."""
    from browser_helpers import HostSite

    sites = []

    def make(server):
        sites.append(HostSite(tmp_path / "host", server.url))
        return sites[-1]

    yield make
    for site in sites:
        site.close()


@pytest.fixture
def dialogs():
    """Every JavaScript dialog any page opened (there must be none)."""
    return []


@pytest.fixture
def contexts(browser):
    """``contexts()``: a new browser context (a person's own window); all closed at teardown."""
    from browser_helpers import new_context

    made = []

    def new():
        made.append(new_context(browser))
        return made[-1]

    yield new
    for ctx in made:
        ctx.close()


# -- in-process: the domain with a fake clock and a cheap hasher ---------------------------------
#


@pytest.fixture
def make_app_in_process(tmp_path, backend, request):
    """Factory for the in-process app (fake clock, cheap hasher) with a configuration:
    ``make_app_in_process({"chat": {"queue_timeout": "1s"}})``. Every database statement the
    apps run is checked to come from the storage layer."""
    apps: list[InProcessApp] = []
    violations: list[str] = []

    def make(config=None) -> InProcessApp:
        url = database_url_for(request, backend)
        if url:
            config = {**(config or {}), "database": {"url": url}}
        if backend == "cluster":
            redis_url = request.getfixturevalue("redis").url
            config = {**config, "cluster": {"redis_url": redis_url}}
        return InProcessApp(tmp_path / f"a{len(apps)}", config, violations=violations, family=apps)

    yield make
    for a in apps:
        a.close()
    assert not violations, "database touched outside livesupport/storage:\n" + "\n".join(violations)


@pytest.fixture
def app(make_app_in_process) -> InProcessApp:
    """The domain in this process at the default configuration."""
    return make_app_in_process()


def pytest_collection_modifyitems(config, items):
    """With ``--dist loadgroup``, each browser test module runs whole in one worker, while
    the other tests spread over the workers. The browser modules come first, so that in each
    worker they follow each other and share one Chromium (see ``_Chromium``). The kill -9
    bursts (on SQLite and on a cluster of two processes) are the heaviest tests: they run in
    the same worker as the browser chat tests, after them, so the two never load both cores
    at once."""
    for item in items:
        name = item.module.__name__
        if name.startswith("test_browser"):
            item.add_marker(pytest.mark.xdist_group(name))
        elif name == "test_durability":
            item.add_marker(pytest.mark.xdist_group("test_browser"))
    items.sort(key=lambda item: not item.module.__name__.startswith("test_browser"))
