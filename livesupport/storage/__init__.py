"""Storage: the only gateway to the database.

``Storage`` opens and migrates the database and owns one store per subject: ``accounts``
(operators, sessions, visitors), ``chats`` (chats, events, offline messages), ``traffic``
(visits, page views, invitation rules), ``site`` (secrets and console-edited settings) and
``outbox`` (outgoing e-mail until the SMTP server accepts it); also ``departments`` and
``canned`` (canned replies), ``direct`` (messages between operators) and ``files`` (files
attached to chats, with their bytes).
Every method the domain calls while serving is awaitable, so a networked database can run its
queries off the event loop (``Storage.run``) without the callers' signatures changing; the
bodies are plain peewee code. (Start-up and tools use a few synchronous ones: ``open``,
``site.secret``, ``backup``.) Stores hand out the plain records of ``records.py``.

With SQLite a query never suspends the caller, so the domain's check-then-write sequences
(a visitor's one open chat, a message's client id, a visit started once) cannot interleave.
A networked database that really suspends needs them serialised per visitor and per chat.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sqlite3
import threading
from collections.abc import Callable
from typing import Any, TypeVar

import peewee

from ..clock import Clock
from ..config import ConfigError
from ..protocol import ApiError
from .accounts import AccountStore
from .canned import CannedStore
from .chats import ChatStore
from .departments import DepartmentStore
from .direct import DirectStore
from .files import FileStore
from .outbox import OutboxStore
from .schema import DIALECT, MIGRATIONS, MODELS, SCHEMA_VERSION, MetaRow
from .site import SiteStore
from .traffic import TrafficStore

log = logging.getLogger("cutelive")

T = TypeVar("T")


class StorageUnavailable(ApiError):
    """The database cannot take a write just now (``StorageFull``, ``StorageBusy``): nothing
    of it was stored and the same write succeeds later. Timers keep what they hold for their
    next round; clients are told to retry."""

    #: Seconds a client (or a timer) waits before trying again.
    RETRY_AFTER = 10


class StorageFull(StorageUnavailable):
    """A write found the disk full. Nothing of it was stored (its transaction rolled back),
    and the same write succeeds once there is space again: a client retries it."""

    #: Seconds a client is told to wait before trying again.
    RETRY_AFTER = 10
    #: The warning in the log comes at most once in this many seconds, not once a request.
    LOG_EVERY = 60

    def __init__(self) -> None:
        super().__init__(
            "storage_full",
            "the server's disk is full; nothing was stored, try again shortly",
            503,
            retry_after=self.RETRY_AFTER,
        )


class StorageBusy(StorageUnavailable):
    """Another program (a backup tool, an administrator's ``sqlite3`` shell) has held the
    database's write lock for longer than ``[database] busy_timeout``. Nothing was stored; the
    same write succeeds once the lock is released: a client retries it."""

    RETRY_AFTER = 2
    LOG_EVERY = 60

    def __init__(self, waited: float) -> None:
        super().__init__(
            "storage_busy",
            f"the database is locked by another program (waited {waited:.1f} s, [database] "
            "busy_timeout); nothing was stored, try again shortly",
            503,
            retry_after=self.RETRY_AFTER,
        )


def _sqlite_error(e: BaseException | None, *codes: int) -> BaseException | None:
    """SQLite's error with one of ``codes`` if ``e`` comes from it, else None.

    peewee wraps the driver's error and keeps it as its first argument (``executemany``
    reaches the driver unwrapped). SQLite rolls the whole transaction back itself on a full
    disk, so peewee's own ROLLBACK then fails ("no transaction is active"): the cause is
    found in the chain of contexts."""
    while e is not None:
        for err in (e, *e.args[:1]):
            if getattr(err, "sqlite_errorcode", None) in codes:
                return err
        e = e.__context__
    return None


def _disk_full(e: BaseException | None) -> BaseException | None:
    """SQLite's "database or disk is full" (SQLITE_FULL) if ``e`` comes from it, else None."""
    return _sqlite_error(e, sqlite3.SQLITE_FULL)


class Checkpointer:
    """Keeps SQLite's write-ahead log short from a thread of its own: every second, a passive
    checkpoint (it never blocks the writer and waits for no reader). The commit on the event
    loop then only appends to the log; the copy into the database file and its fsync, which
    can take a large fraction of a second on a busy disk, happen here."""

    INTERVAL = 1.0

    def __init__(self, path: str, busy_timeout: float):
        self.path, self.busy_timeout = path, busy_timeout
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="checkpoint", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        con = sqlite3.connect(self.path, timeout=self.busy_timeout, check_same_thread=False)
        try:
            while not self._stop.wait(self.INTERVAL):
                try:
                    con.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
                except sqlite3.Error as e:  # busy or gone: the next round tries again
                    log.debug("checkpoint skipped: %s", e)
        finally:
            con.close()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)


class Storage:
    """Opening, migrations, and the stores. SQLite in WAL mode by default.

    Each write is one short transaction, committed before the caller publishes anything
    about it. With SQLite the queries run on the loop's thread: a commit is the longest wait.
    """

    def __init__(
        self, path: str, clock: Clock, synchronous: str = "normal", busy_timeout: float = 5.0
    ):
        self.path = path
        self.clock = clock
        self.synchronous = synchronous
        self.busy_timeout = busy_timeout
        self.dialect = DIALECT["sqlite"]
        #: The database; its connection opens in ``open``.
        self.db = peewee.SqliteDatabase(
            path,
            pragmas={
                "journal_mode": "wal",
                "foreign_keys": 1,
                "busy_timeout": int(busy_timeout * 1000),
                "synchronous": synchronous.upper(),
                # Checkpoints (copying the log into the database file, with an fsync) run in
                # a thread of their own (``Checkpointer``), never inside a commit on the loop.
                "wal_autocheckpoint": 0,
            },
        )
        self._checkpointer: Checkpointer | None = None
        self._full_logged_at: float | None = None
        self._busy_logged_at: float | None = None
        self._serving = False
        self.accounts = AccountStore(self)
        self.chats = ChatStore(self)
        self.traffic = TrafficStore(self)
        self.site = SiteStore(self)
        self.outbox = OutboxStore(self)
        self.departments = DepartmentStore(self)
        self.direct = DirectStore(self)
        self.canned = CannedStore(self)
        self.files = FileStore(self)

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        """Run synchronous database code. SQLite runs it at once on the loop's thread; a
        networked database runs it where waiting on the network does not block the loop.

        While serving (``serve``), a write that finds the database locked by another program
        does not wait on the loop's thread: it gives the loop back and tries again, with
        growing pauses, for up to ``[database] busy_timeout``, then answers ``storage_busy``.
        Only code that has changed nothing yet is tried again."""
        if MetaRow._meta.database is not self.db:
            self.db.bind(MODELS)  # another Storage in this process used the models last
        waited, pause = 0.0, 0.005
        while True:
            before = self._changes()
            try:
                return fn(*args)
            except (peewee.OperationalError, sqlite3.OperationalError) as e:
                # Here, the one door every query goes through, after the transaction has
                # rolled back: a full disk or a lock held by another program becomes a
                # retryable error for the client instead of a bug.
                full = _disk_full(e)
                if full is not None:
                    self._warn_full(full)
                    raise StorageFull() from None
                busy = _sqlite_error(e, sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED)
                if busy is None or not self._serving or self._changes() != before:
                    raise
                if waited >= self.busy_timeout:
                    self._warn_busy(waited)
                    raise StorageBusy(waited) from None
            await asyncio.sleep(pause)
            waited += pause
            pause = min(pause * 2, 0.1)

    def _changes(self) -> int:
        """Rows this connection has changed since it opened (a failed try changed none)."""
        return self.db.connection().total_changes

    def serve(self) -> None:
        """From now on the loop must not wait for a lock: SQLite answers "busy" at once and
        ``run`` waits without blocking (start-up and the command-line tools wait in SQLite)."""
        self.execute("PRAGMA busy_timeout = 0")
        self._serving = True

    def _warn_busy(self, waited: float) -> None:
        now = self.clock.monotonic()
        if self._busy_logged_at is not None and now - self._busy_logged_at < StorageBusy.LOG_EVERY:
            return
        self._busy_logged_at = now
        log.warning(
            "the database %s stayed locked by another program for %.1f s ([database] "
            "busy_timeout): writes get storage_busy until it lets go",
            os.path.abspath(self.path),
            waited,
        )

    def _warn_full(self, e: BaseException) -> None:
        now = self.clock.monotonic()
        if self._full_logged_at is not None and now - self._full_logged_at < StorageFull.LOG_EVERY:
            return
        self._full_logged_at = now
        log.warning(
            "the disk of the data directory %s is full (%s): nothing new can be stored, and "
            "clients get storage_full until there is space. Free space on that disk (or move "
            "the data directory to a larger one); the server resumes by itself, no restart needed",
            os.path.dirname(os.path.abspath(self.path)),
            e,
        )

    def execute(self, sql: str, params: tuple | list = ()):
        """One statement with ``?`` placeholders; returns the cursor."""
        return self.db.execute_sql(sql, params)

    def executemany(self, sql: str, rows: list) -> None:
        if rows:
            self.db.cursor().executemany(sql, rows)

    def atomic(self):
        """A transaction (nested ones become savepoints). It takes the write lock when it
        begins (``BEGIN IMMEDIATE``): a transaction that read first and then wanted to write
        would get "database is locked" at once, without the busy wait, when another program
        held the database."""
        return self.db.atomic(lock_type="IMMEDIATE")

    # -- lifecycle ----------------------------------------------------------------------------

    def open(self) -> None:
        os.makedirs(os.path.dirname(os.path.abspath(self.path)), exist_ok=True)
        self.db.bind(MODELS)
        self.db.connect(reuse_if_open=True)
        self.migrate()
        if self._checkpointer is None:
            self._checkpointer = Checkpointer(self.path, self.busy_timeout)

    def close(self) -> None:
        if self._checkpointer is not None:
            self._checkpointer.stop()
            self._checkpointer = None
        if not self.db.is_closed():
            self.db.close()

    def migrate(self) -> None:
        version = self.execute(self.dialect["get_version"]).fetchone()[0]
        if version > SCHEMA_VERSION:
            raise ConfigError(
                f"the database {self.path} has schema version {version}, newer than this "
                f"program's {SCHEMA_VERSION}; use a newer cutelive"
            )
        for step in range(version, SCHEMA_VERSION):
            with self.db.atomic():
                for sql in MIGRATIONS[step]:
                    self.execute(sql)
                self.execute(self.dialect["set_version"].format(version=step + 1))
        if version == 0:
            log.info("database created at schema version %d", SCHEMA_VERSION)
        elif version < SCHEMA_VERSION:
            log.info("database migrated from schema version %d to %d", version, SCHEMA_VERSION)

    @staticmethod
    def restore(src: str, dest: str) -> dict[str, int]:
        """Copy the backup ``src`` into a new database file ``dest`` (which must not exist),
        after checking that it is one of ours and whole; returns what it holds (chats,
        events, files). Newer schemas are refused; older ones migrate at the next start."""
        try:
            con = sqlite3.connect(f"file:{src}?mode=ro", uri=True)
        except sqlite3.Error as e:
            raise ConfigError(f"cannot open {src}: {e}") from None
        try:
            try:
                version = con.execute("PRAGMA user_version").fetchone()[0]
                names = {r[0] for r in con.execute("SELECT name FROM sqlite_master")}
                verdict = con.execute("PRAGMA integrity_check").fetchone()[0]
            except sqlite3.DatabaseError as e:
                raise ConfigError(f"{src} is not a Cute Live Support backup: {e}") from None
            if not version or "chat" not in names:
                raise ConfigError(f"{src} is not a Cute Live Support backup")
            if version > SCHEMA_VERSION:
                raise ConfigError(
                    f"{src} has schema version {version}, newer than this program's "
                    f"{SCHEMA_VERSION}; use a newer cutelive"
                )
            if verdict != "ok":
                raise ConfigError(f"{src} failed its integrity check: {verdict}")
            counts = {
                table: con.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0]
                for table in ("chat", "event", "file")
                if table in names
            }
            out = sqlite3.connect(dest)
            try:
                con.backup(out)
            finally:
                out.close()
            return counts
        finally:
            con.close()

    def backup(self, dest: str) -> str:
        """Copy the database into ``dest`` in one read transaction; returns the copy's
        integrity-check verdict (``"ok"``). In WAL mode it does not block the server's writers."""
        src = sqlite3.connect(self.path, timeout=self.busy_timeout)
        try:
            dst = sqlite3.connect(dest)
            try:
                src.backup(dst)
                return dst.execute("PRAGMA integrity_check").fetchone()[0]
            finally:
                dst.close()
        finally:
            src.close()
