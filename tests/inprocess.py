"""The domain in this process: the server's own objects, built by ``make_app`` with a clock
the test advances (``FakeClock``) and a cheap password hasher, driven by parties that talk to
it as a WebSocket would (``InProcessParty``). The ``app`` and ``make_app_in_process`` fixtures
in conftest hand them out."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hashlib
import heapq
import hmac
import itertools
import json
import os
import sys
import uuid
from pathlib import Path

from common import CHROME, PASSWORD, ROOT, with_generous_limits

# The server's own objects, built by make_app in this process, driven by a clock the test
# advances: a queue timeout is ``app.advance(120)``, not a two-minute wait. Only fixtures hand
# these to make_app; nothing in the configuration selects them.


class FakeClock:
    """A clock that moves only when told: ``await clock.advance(seconds)`` fires the timers
    that fall due on the way, in order, letting the tasks they start run to completion."""

    def __init__(self, start_ms: int = 1_800_000_000_000):
        self._wall = start_ms / 1000
        self._mono = 1000.0
        self._timers: list = []
        self._order = itertools.count()
        self._tasks: set = set()

    def now_ms(self) -> int:
        return int(self._wall * 1000)

    def monotonic(self) -> float:
        return self._mono

    def call_later(self, delay: float, fn):
        timer = _FakeTimer(self._mono + max(0.0, delay), next(self._order), fn)
        heapq.heappush(self._timers, timer)
        return timer

    def spawn(self, coro):
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def settle(self) -> None:
        """Run what is due now: timers at the current time, and every task they started."""
        while True:
            await asyncio.sleep(0)
            if self._tasks:
                await asyncio.gather(*list(self._tasks))
                continue
            if self._timers and self._timers[0].due <= self._mono:
                timer = heapq.heappop(self._timers)
                if not timer.cancelled:
                    timer.fn()
                continue
            return

    async def advance(self, seconds: float) -> None:
        target = self._mono + seconds
        await self.settle()
        while self._timers and self._timers[0].due <= target:
            step = self._timers[0].due - self._mono
            self._mono += step
            self._wall += step
            await self.settle()
        self._wall += target - self._mono
        self._mono = target
        await self.settle()


@functools.total_ordering
class _FakeTimer:
    def __init__(self, due: float, order: int, fn):
        self.due, self.order, self.fn = due, order, fn
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True

    def __lt__(self, other) -> bool:
        return (self.due, self.order) < (other.due, other.order)

    def __eq__(self, other) -> bool:
        return self is other


class CheapHasher:
    """A password "hash" for in-process tests: argon2id costs tens of milliseconds a call."""

    def hash(self, password: str) -> str:
        return "test$" + hashlib.sha256(password.encode("utf-8", "surrogatepass")).hexdigest()

    def verify(self, stored: str, password: str) -> bool:
        return hmac.compare_digest(stored, self.hash(password))


class Recorder:
    """A stream as the domain sees one (``deliver``, ``close``), recording what it got."""

    def __init__(self, party=None):
        #: Whose stream it is (the domain reads it, as from a socket).
        self.party = party
        self.events: list[dict] = []
        self.closed: tuple | None = None

    def deliver(self, text: str, event) -> None:
        self.events.append(json.loads(text))

    def close(self, code: int, reason: str = "") -> None:
        self.closed = (code, reason)

    def of_type(self, type_: str) -> list[dict]:
        return [e for e in self.events if e["type"] == type_]

    def last(self, type_: str) -> dict:
        found = self.of_type(type_)
        assert found, f"no {type_!r} event among {[e['type'] for e in self.events]}"
        return found[-1]


class InProcessParty:
    """A visitor or an operator talking to the in-process domain through a Recorder stream."""

    def __init__(self, app: InProcessApp, party, token: str | None = None):
        self.app = app
        self.party = party
        #: The visitor token, or the operator's session cookie value.
        self.token = token
        self.stream: Recorder | None = None

    @property
    def id(self) -> int:
        """The visitor id, or the operator id."""
        return self.party.visitor_id if self.party.role == "visitor" else self.party.operator_id

    def connect(self, cursors: dict | None = None) -> Recorder:
        """What a WebSocket hello does: attach, then the welcome with snapshots and replay."""
        streams = self.app.services.streams
        stream = Recorder(self.party)
        cursors = {int(k): v for k, v in (cursors or {}).items()}

        async def hello():
            await streams.attach(stream, self.party)
            for text, ev in await streams.welcome(self.party, cursors, stream=stream):
                stream.deliver(text, ev)

        self.app.run(hello())
        self.app.settle()
        self.stream = stream
        return stream

    def disconnect(self, stream: Recorder | None = None) -> None:
        """The stream goes away (closed tab, dropped connection)."""
        self.app.services.streams.detach(stream or self.stream, self.party)
        self.app.settle()

    def send(self, cmd: dict) -> dict:
        """One command, answered as over a socket: ack, pong or error."""
        reply = self.app.run(self.app.services.commands.dispatch(self.party, self.stream, cmd))
        self.app.settle()
        return reply

    def at_once(self, commands: list[dict]) -> list[dict]:
        """Commands that arrive together (one read of the socket), answered in that order."""
        dispatch = self.app.services.commands.dispatch

        async def together():
            return await asyncio.gather(*(dispatch(self.party, self.stream, c) for c in commands))

        replies = self.app.run(together())
        self.app.settle()
        return replies

    def ok(self, cmd: dict) -> dict:
        reply = self.send(cmd)
        assert reply["type"] in ("ack", "pong"), reply
        return reply

    def start_chat(self, text="Hello, I need help", name="Ann", **extra) -> dict:
        """A visitor starts a chat; returns the ack (``["chat"]``, ``["message"]``)."""
        return self.ok(
            {"type": "start_chat", "name": name, "text": text, "client_id": _cid(), **extra}
        )

    def say(self, chat_id: int, text: str, client_id: str | None = None) -> dict:
        """A message in a chat; returns the reply (an ack or an error)."""
        cmd = {"type": "message", "chat_id": chat_id, "text": text}
        return self.send(dict(cmd, client_id=client_id or _cid()))

    def alive(self) -> bool:
        """The stream is open and commands are answered."""
        return self.stream.closed is None and self.send({"type": "ping"})["type"] == "pong"

    def transcript(self, chat_id: int) -> dict:
        """What ``GET .../chats/ID`` answers this party."""
        return self.app.run(self.app.services.transcripts.transcript(self.party, chat_id))

    def track(self, url: str, title: str = "", referrer: str = "") -> None:
        """A page-view beacon of this visitor."""
        body = {"token": self.token, "url": url, "title": title, "referrer": referrer}
        self.app.run(self.app.services.track(body, self.party.ip, self.party.user_agent))
        self.app.settle()

    def row(self) -> dict | None:
        """This visitor's row as the monitor shows it now."""
        lv = self.app.services.monitor.live.get(self.id)
        return self.app.services.monitor.row(lv) if lv else None


def _cid() -> str:
    return uuid.uuid4().hex


class InProcessApp:
    """The application built by ``make_app`` in this process, with its own event loop."""

    def __init__(
        self,
        tmp: Path,
        config: dict[str, dict[str, str]] | None = None,
        *,
        start_ms: int | None = None,
        violations: list[str] | None = None,
        family: list[InProcessApp] | None = None,
    ):
        from livesupport.config import load_config
        from livesupport.web.app import make_app

        self.tmp = tmp
        self.config_overrides = config
        overrides = {("server", "data_dir"): str(tmp / "data")}
        for section, values in with_generous_limits(config).items():
            for key, value in values.items():
                overrides[(section, key)] = value
        self.config = load_config(None, overrides)
        self.loop = asyncio.new_event_loop()
        self.clock = FakeClock() if start_ms is None else FakeClock(start_ms)
        self.app = self.run(make_app(self.config, clock=self.clock, hasher=CheapHasher()))
        self.services = self.app.services
        self.storage = self.services.storage
        self.closed = False
        #: Statements from outside the storage layer (see ``_storage_only``).
        self.violations = violations if violations is not None else []
        if not self.storage.networked:  # (SQLite's own hook; it runs on both in the servers)
            self.storage.db.connection().set_trace_callback(_storage_only(self.violations))
        #: This app and the ones its restarts made; the fixture closes them all.
        self.family = family if family is not None else []
        self.family.append(self)

    def run(self, coro):
        return self.loop.run_until_complete(coro)

    def settle(self) -> None:
        self.run(self.clock.settle())

    def advance(self, seconds: float) -> None:
        self.run(self.clock.advance(seconds))

    def visitor(self, ip: str = "127.0.0.1", user_agent: str = CHROME) -> InProcessParty:
        accounts = self.services.accounts
        token, _vid = self.run(accounts.new_visitor(ip, user_agent))
        party = self.run(accounts.visitor_party(token, ip, user_agent))
        return InProcessParty(self, party, token)

    def as_visitor(self, token: str, ip: str = "127.0.0.1", user_agent: str = CHROME):
        """The visitor with this token (after a restart, say)."""
        party = self.run(self.services.accounts.visitor_party(token, ip, user_agent))
        return InProcessParty(self, party, token)

    def operator(
        self,
        username: str,
        admin: bool = False,
        display_name: str | None = None,
        password: str = PASSWORD,
    ) -> InProcessParty:
        """A new operator, logged in once."""
        self.run(
            self.services.accounts.create_operator(
                username, display_name or username.title(), password, admin
            )
        )
        return self.login(username, password)

    def login(self, username: str, password: str = PASSWORD, ip: str = "127.0.0.1"):
        """A new console session of the operator (or the error the login raises)."""
        accounts = self.services.accounts
        token, _op = self.run(accounts.login(username, password, ip, "test"))
        return InProcessParty(self, self.run(accounts.operator_party(token, ip, "test")), token)

    def login_error(self, username: str, password: str, ip: str = "127.0.0.1") -> dict:
        """The error event a failed login answers (fails the test if the login works)."""
        from livesupport.protocol import ApiError

        try:
            self.run(self.services.accounts.login(username, password, ip, "test"))
        except ApiError as e:
            return dict(e.event(None), status=e.status)
        raise AssertionError(f"{username} logged in")

    def session_alive(self, party: InProcessParty) -> bool:
        """Whether the operator's session cookie still names a session."""
        accounts = self.services.accounts
        return self.run(accounts.operator_party(party.token, "127.0.0.1", "test")) is not None

    def error(self, coro) -> dict:
        """Run a domain call that must refuse: its error event, with the HTTP status."""
        from livesupport.protocol import ApiError

        try:
            result = self.run(coro)
        except ApiError as e:
            return dict(e.event(None), status=e.status)
        raise AssertionError(f"no error; got {result!r}")

    def bob_answers_ann(self, text: str = "Hello, I need help"):
        """Ann's chat, started with ``text`` and accepted by Bob, both connected; returns
        (bob, ann, chat id)."""
        bob = self.operator("bob", display_name="Bob")
        bob.connect()
        ann = self.visitor()
        ann.connect()
        chat_id = ann.start_chat(text)["chat"]["id"]
        bob.ok({"type": "accept", "chat_id": chat_id})
        return bob, ann, chat_id

    def inbox(self) -> list[dict]:
        """The offline messages as ``GET /api/console/offline-messages`` lists them."""
        return [m.public() for m in self.run(self.services.offline.inbox())]

    @contextlib.contextmanager
    def statements(self):
        """``with app.statements() as sql:`` the SQL statements SQLite ran inside the block."""
        seen: list[str] = []
        connection = self.storage.db.connection()
        connection.set_trace_callback(_storage_only(self.violations, seen))
        try:
            yield seen
        finally:
            connection.set_trace_callback(_storage_only(self.violations))

    def restart(self) -> InProcessApp:
        """Stop this app as the server stops, and start a new one on the same database, the
        clock carrying on from where it was."""
        self.run(self.services.monitor.shutdown())
        self.close()
        return InProcessApp(
            self.tmp,
            self.config_overrides,
            start_ms=self.clock.now_ms(),
            violations=self.violations,
            family=self.family,
        )

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        self.services.stop_ticking()
        if self.services.lag is not None:
            self.services.lag.stop()
        if not self.storage.networked:
            self.storage.db.connection().set_trace_callback(None)
        self.run(self.services.close())
        self.loop.run_until_complete(self.loop.shutdown_asyncgens())
        # Wait for the threads it started (the user-agent rules loading, hashing, mail).
        self.loop.run_until_complete(self.loop.shutdown_default_executor())
        self.loop.close()


def _storage_only(violations: list, seen: list | None = None):
    """A SQLite trace callback: every statement's nearest caller outside the database
    libraries must be in ``livesupport/storage/``. Each statement is added to ``seen``."""
    storage_dir = str(ROOT / "livesupport" / "storage") + os.sep
    libraries = (os.sep + "peewee.py", os.sep + "playhouse" + os.sep, os.sep + "sqlite3" + os.sep)

    def trace(sql: str) -> None:
        if seen is not None:
            seen.append(sql)
        frame = sys._getframe(1)
        while frame is not None and frame.f_code.co_filename.endswith(libraries):
            frame = frame.f_back
        where = frame.f_code.co_filename if frame else "?"
        if not where.startswith(storage_dir):
            violations.append(f"{where}:{frame.f_lineno if frame else 0}: {sql[:80]}")

    return trace
