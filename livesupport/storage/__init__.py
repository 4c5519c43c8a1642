"""Storage: the only gateway to the database.

``Storage`` opens and migrates the database and owns one store per subject: ``accounts``
(operators, sessions, visitors), ``chats`` (chats, events, offline messages), ``traffic``
(visits, page views, invitation rules), ``site`` (secrets and console-edited settings) and
``outbox`` (outgoing e-mail until the SMTP server accepts it); also ``departments`` and
``canned`` (canned replies), ``direct`` (messages between operators) and ``files`` (files
attached to chats, with their bytes).
Every method the domain calls is awaitable, so a networked database runs its queries without
the event loop waiting on the network (``Storage.run``); the bodies are plain peewee code.
(The command-line tools use two synchronous ones: ``backup`` and ``restore``, SQLite only.)
Stores hand out the plain records of ``records.py``.

Two databases: SQLite in the data directory (the default; ``[database] url`` empty) and
PostgreSQL (``[database] url = postgresql://...``), whose queries run through peewee's own
asyncio support (``playhouse.pwasyncio`` over ``asyncpg``): the synchronous store code runs in
a greenlet that gives the loop back at every round trip. The drivers are imported only when a
URL names them. Where their SQL differs is ``schema.DIALECT`` and ``schema.ddl``.

With SQLite a query never suspends the caller, so the domain's check-then-write sequences
(a visitor's one open chat, a message's client id, a visit started once) cannot interleave.
With PostgreSQL they can, and unique indexes and row locks (``DIALECT["lock_row"]``) keep
them whole.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
import sqlite3
import sys
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
from .schema import DIALECT, MIGRATIONS, MODELS, SCHEMA_VERSION, MetaRow, ddl
from .site import SiteStore
from .traffic import TrafficStore

log = logging.getLogger("cutelive")

T = TypeVar("T")


class DatabaseUnusable(ConfigError):
    """The configured database cannot be used at start: out of reach, a wrong password, no
    such database, or written by a newer version. The start is refused (exit status 2)."""


class StorageUnavailable(ApiError):
    """The database cannot take a write just now (``StorageFull``, ``StorageBusy``): nothing
    of it was stored and the same write succeeds later. Timers keep what they hold for their
    next round; clients are told to retry."""

    #: Seconds a client (or a timer) waits before trying again.
    RETRY_AFTER = 10
    #: The warning in the log comes at most once in this many seconds, not once a request.
    LOG_EVERY = 60
    #: The warning logged when it happens: a format string, given its arguments by ``run``.
    WARNING = ""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(code, message, 503, retry_after=self.RETRY_AFTER)


class StorageFull(StorageUnavailable):
    """A write found the disk full. Nothing of it was stored (its transaction rolled back),
    and the same write succeeds once there is space again: a client retries it."""

    #: The warning; its arguments: the data directory and the error.
    WARNING = (
        "the disk of the data directory %s is full (%s): nothing new can be stored, and "
        "clients get storage_full until there is space. Free space on that disk (or move "
        "the data directory to a larger one); the server resumes by itself, no restart needed"
    )

    def __init__(self) -> None:
        super().__init__(
            "storage_full", "the server's disk is full; nothing was stored, try again shortly"
        )


class StorageBusy(StorageUnavailable):
    """Another program (a backup tool, an administrator's ``sqlite3`` shell) has held the
    database's write lock for longer than ``[database] busy_timeout``. Nothing was stored; the
    same write succeeds once the lock is released: a client retries it."""

    RETRY_AFTER = 2
    #: The warning; its arguments: the database file and the seconds waited.
    WARNING = (
        "the database %s stayed locked by another program for %.1f s ([database] "
        "busy_timeout): writes get storage_busy until it lets go"
    )

    def __init__(self, waited: float) -> None:
        super().__init__(
            "storage_busy",
            f"the database is locked by another program (waited {waited:.1f} s, [database] "
            "busy_timeout); nothing was stored, try again shortly",
        )


class StorageDown(StorageUnavailable):
    """The database server (PostgreSQL) cannot be reached just now: restarting, or the
    network to it is down. Nothing of the request was stored; the same write succeeds once it
    is back, usually within seconds."""

    RETRY_AFTER = 2
    #: The warning; its arguments: where the database is and the error.
    WARNING = (
        "the database server %s cannot be reached (%s): clients get storage_unavailable "
        "until it is back; the server resumes by itself"
    )

    def __init__(self) -> None:
        super().__init__(
            "storage_unavailable",
            "the database server cannot be reached; nothing was stored, try again shortly",
        )


def safe_url(url: str) -> str:
    """A database URL for messages and logs: the password left out."""
    return re.sub(r"(//[^/:@]*):[^@/]*@", r"\1@", url)


def _network_failure(e: BaseException | None) -> bool:
    """Whether ``e`` says the database server is out of reach (not that a query was wrong)."""
    seen: set[int] = set()
    todo = [e]
    while todo:
        e = todo.pop()
        if e is None or id(e) in seen:
            continue
        seen.add(id(e))
        if isinstance(e, (OSError, asyncio.TimeoutError, peewee.InterfaceError)):
            return True
        if type(e).__name__ in (
            "ConnectionDoesNotExistError",
            "CannotConnectNowError",
            "AdminShutdownError",
            "ConnectionFailureError",
            "PostgresConnectionError",
        ):
            return True
        text = str(e).lower()
        if isinstance(e, peewee.OperationalError) and (
            "connect" in text or "shutting down" in text or "closed" in text
        ):
            return True
        todo += [e.__cause__, e.__context__]
        todo += [a for a in e.args[:1] if isinstance(a, BaseException)]
    return False


def _pyformat(sql: str) -> str:
    """Portable ``?`` placeholders in the ``%s`` style of peewee's PostgreSQL drivers (our SQL
    has no ``?`` or ``%`` of its own: values are always parameters)."""
    return sql.replace("?", "%s")


def _numbered(sql: str) -> str:
    """``%s`` placeholders as asyncpg's ``$1, $2…``."""
    n = iter(range(1, sql.count("%s") + 1))
    return re.sub("%s", lambda _m: f"${next(n)}", sql)


def _reason(e: BaseException) -> str:
    """The driver's own words for why a database cannot be used, on one line."""
    while isinstance(e, peewee.PeeweeException) and e.args and isinstance(e.args[0], Exception):
        e = e.args[0]
    text = " ".join(str(e).split()) or type(e).__name__
    return text


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
    can take a large fraction of a second on a busy disk, happen here.

    On Linux the thread runs at the lowest priority (nice 19, that thread alone): where the
    loop and it share a core, the loop no longer waits for the copy to use up its time slice
    (the open-chat benchmark's delivery p99 went from 11-13 ms to 5.5-7.5 ms with the server on
    one core). It still gets its share when the core is busy, and its fsync is not CPU."""

    INTERVAL = 1.0

    def __init__(self, path: str, busy_timeout: float):
        self.path, self.busy_timeout = path, busy_timeout
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="checkpoint", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        if sys.platform.startswith("linux"):  # (elsewhere it would lower the whole process)
            with contextlib.suppress(OSError):
                os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 19)
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


async def _keep_connection_state(_connection: Any) -> None:
    """Connections go back to the pool as they are (``Storage.run`` ends every transaction),
    without the driver's reset round trip."""


def _postgresql_database() -> type:
    """peewee's asyncio PostgreSQL database (imported only when configured), with bytes
    passed to ``asyncpg`` as they are, and each statement prepared once per connection (the
    driver's statement cache) instead of before every execution: one round trip a query."""
    from playhouse.pwasyncio import AsyncPostgresqlConnection, AsyncPostgresqlDatabase

    class Connection(AsyncPostgresqlConnection):
        async def _execute(self, sql, params=None):
            if params:
                sql = self._translate_placeholders(sql)
            statement = await self.conn._prepare(sql, use_cache=True)
            records = await statement.fetch(*(params or ()))
            status = (statement.get_statusmsg() or "").rsplit(" ", 1)
            rowcount = int(status[1]) if len(status) == 2 and status[1].isdigit() else None
            return _cursor(records, rowcount)

    class PostgresqlDatabase(AsyncPostgresqlDatabase):
        def get_binary_type(self) -> type:
            return bytes

        async def _pool_acquire(self, pool):
            return Connection((await super()._pool_acquire(pool)).conn)

    return PostgresqlDatabase


def _cursor(records: list, rowcount: int | None) -> Any:
    from playhouse.pwasyncio import CursorAdapter

    description = [(k,) for k in records[0].keys()] if records else []
    return CursorAdapter(
        records,
        rowcount=rowcount if rowcount is not None else len(records),
        description=description,
    )


class Storage:
    """Opening, migrations, and the stores. SQLite in WAL mode by default; PostgreSQL when
    ``url`` names one.

    Each write is one short transaction, committed before the caller publishes anything
    about it. With SQLite the queries run on the loop's thread: a commit is the longest wait.
    With PostgreSQL each ``run`` borrows a pooled connection for its round trips and gives it
    back when it ends.
    """

    #: Connections to PostgreSQL held by one process at most.
    POOL_SIZE = 10

    def __init__(
        self,
        path: str,
        clock: Clock,
        synchronous: str = "normal",
        busy_timeout: float = 5.0,
        url: str = "",
    ):
        self.path = path
        self.url = url
        self.clock = clock
        self.synchronous = synchronous
        self.busy_timeout = busy_timeout
        #: ``sqlite`` or ``postgresql``.
        self.kind = "postgresql" if url else "sqlite"
        self.dialect = DIALECT[self.kind]
        if url:
            #: The database; its connections open in ``open``.
            self.db = _postgresql_database()(
                url,
                pool_size=self.POOL_SIZE,
                acquire_timeout=max(busy_timeout, 1.0),
                reset=_keep_connection_state,
            )
        else:
            self.db = peewee.SqliteDatabase(
                path,
                pragmas={
                    "journal_mode": "wal",
                    "foreign_keys": 1,
                    "busy_timeout": int(busy_timeout * 1000),
                    "synchronous": synchronous.upper(),
                    # Checkpoints (copying the log into the database file, with an fsync) run
                    # in a thread of their own (``Checkpointer``), never inside a commit on the
                    # loop.
                    "wal_autocheckpoint": 0,
                },
            )
        self._checkpointer: Checkpointer | None = None
        #: When a warning about each kind of StorageUnavailable was last logged (monotonic).
        self._warned_at: dict[type[StorageUnavailable], float] = {}
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

    @classmethod
    def for_config(cls, config: Any, clock: Clock) -> Storage:
        """The storage ``[database]`` describes (SQLite in ``[server] data_dir`` by default)."""
        return cls(
            os.path.join(config.server_data_dir, "cutelive.db"),
            clock,
            synchronous=config.database_synchronous,
            busy_timeout=config.database_busy_timeout,
            url=config.database_url,
        )

    @property
    def serving(self) -> bool:
        """Whether ``serve`` was called: a server runs (the command-line tools do not)."""
        return self._serving

    @property
    def networked(self) -> bool:
        """Whether queries wait on a network round trip (PostgreSQL)."""
        return bool(self.url)

    def where(self) -> str:
        """The database, for the log: the SQLite file, or the PostgreSQL URL without password."""
        return safe_url(self.url) if self.url else os.path.abspath(self.path)

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        """Run synchronous database code. SQLite runs it at once on the loop's thread;
        PostgreSQL runs it in a greenlet that gives the loop back while the network answers.

        While serving (``serve``), a write that finds SQLite locked by another program does not
        wait on the loop's thread: it gives the loop back and tries again, with growing pauses,
        for up to ``[database] busy_timeout``, then answers ``storage_busy``. Only code that
        has changed nothing yet is tried again. A PostgreSQL server out of reach answers
        ``storage_unavailable``."""
        if MetaRow._meta.database is not self.db:
            self.db.bind(MODELS)  # another Storage in this process used the models last
        if self.networked:
            return await self._run_networked(fn, args)
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
                    self._warn(StorageFull, os.path.dirname(os.path.abspath(self.path)), full)
                    raise StorageFull() from None
                busy = _sqlite_error(e, sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED)
                if busy is None or not self._serving or self._changes() != before:
                    raise
                if waited >= self.busy_timeout:
                    self._warn(StorageBusy, os.path.abspath(self.path), waited)
                    raise StorageBusy(waited) from None
            await asyncio.sleep(pause)
            waited += pause
            pause = min(pause * 2, 0.1)

    async def _run_networked(self, fn: Callable[..., T], args: tuple) -> T:
        try:
            return await self.db.run(fn, *args)
        except ApiError:
            raise
        except Exception as e:
            if not self._serving or not _network_failure(e):
                raise
            self._warn(StorageDown, self.where(), e)
            raise StorageDown() from None
        finally:
            # The connection goes back to the pool: a socket's task lives for hours.
            if not self.db.in_transaction():
                try:
                    await self.db.aclose()
                except Exception as e:  # a connection that died with its server
                    log.debug("releasing a database connection: %s", e)

    def _changes(self) -> int:
        """Rows this connection has changed since it opened (a failed try changed none)."""
        return self.db.connection().total_changes

    async def serve(self) -> None:
        """From now on the loop must not wait for a lock: SQLite answers "busy" at once and
        ``run`` waits without blocking (start-up and the command-line tools wait in SQLite)."""
        if not self.networked:
            self.execute("PRAGMA busy_timeout = 0")
        self._serving = True

    def _warn(self, error: type[StorageUnavailable], *args: Any) -> None:
        """Log ``error.WARNING`` with ``args``, at most once every ``error.LOG_EVERY`` seconds."""
        now = self.clock.monotonic()
        last = self._warned_at.get(error)
        if last is not None and now - last < error.LOG_EVERY:
            return
        self._warned_at[error] = now
        log.warning(error.WARNING, *args)

    def execute(self, sql: str, params: tuple | list = ()):
        """One statement with ``?`` placeholders; returns the cursor."""
        if self.networked:
            sql = _pyformat(sql)
        return self.db.execute_sql(sql, params)

    async def fetchone(self, sql: str, params: tuple | list = ()) -> tuple | None:
        """One query with ``?`` placeholders, run as ``run`` runs code; its first row, or None."""
        return await self.run(lambda: self.execute(sql, params).fetchone())

    def insert(self, sql: str, params: tuple | list = ()) -> int:
        """One ``INSERT`` with ``?`` placeholders; returns the new row's id."""
        return self.execute(sql + " RETURNING id", params).fetchone()[0]

    def executemany(self, sql: str, rows: list) -> None:
        """One statement for each of ``rows``, in one round trip."""
        if not rows:
            return
        if self.networked:
            from playhouse.pwasyncio import await_

            connection = self.db.connect() if self.db.is_closed() else self.db._state.conn
            numbered = _numbered(_pyformat(sql))
            await_(connection.conn.executemany(numbered, rows))
        else:
            self.db.cursor().executemany(sql, rows)

    def atomic(self):
        """A transaction (nested ones become savepoints). With SQLite it takes the write lock
        when it begins (``BEGIN IMMEDIATE``): a transaction that read first and then wanted
        to write would get "database is locked" at once, without the busy wait, when another
        program held the database."""
        if self.networked:
            return self.db.atomic()
        return self.db.atomic(lock_type="IMMEDIATE")

    # -- lifecycle ----------------------------------------------------------------------------

    async def open(self, key: str = "[database] url") -> None:
        """Connect, and create or migrate the schema. A database that cannot be used (out of
        reach, a wrong password, written by a newer version) is ``DatabaseUnusable``, its
        message naming ``key``: where the URL came from."""
        if not self.networked:
            os.makedirs(os.path.dirname(os.path.abspath(self.path)), exist_ok=True)
            self.db.bind(MODELS)
            self.db.connect(reuse_if_open=True)
            self.migrate()
            if self._checkpointer is None:
                self._checkpointer = Checkpointer(self.path, self.busy_timeout)
            return
        self.db.bind(MODELS)
        try:
            await self.db.run(self.migrate)
        except ConfigError as e:
            raise DatabaseUnusable(f"{key}: {e}") from None
        except Exception as e:
            raise DatabaseUnusable(
                f"{key}: cannot use the database {safe_url(self.url)}: {_reason(e)}"
            ) from None
        finally:
            if not self.db.in_transaction():
                await self.db.aclose()

    async def close(self) -> None:
        await self.chats.group.flush()  # (nothing waits unless serving on SQLite)
        if self._checkpointer is not None:
            self._checkpointer.stop()
            self._checkpointer = None
        if self.networked:
            try:
                await self.db.close_pool()
            except Exception as e:
                log.debug("closing the database's connections: %s", e)
        elif not self.db.is_closed():
            self.db.close()

    def migrate(self) -> None:
        with self.db.atomic():
            # The lock first: processes starting together on an empty database would otherwise
            # race to create the version table (PostgreSQL's IF NOT EXISTS is not atomic).
            if self.dialect["migration_lock"]:
                self.execute(self.dialect["migration_lock"])
            for sql in self.dialect["version_table"]:
                self.execute(sql)
            version = self.execute(self.dialect["get_version"]).fetchone()[0]
        if version > SCHEMA_VERSION:
            raise DatabaseUnusable(
                f"the database {self.where()} has schema version {version}, newer than this "
                f"program's {SCHEMA_VERSION}; use a newer cutelive"
            )
        with self.db.atomic():
            if self.dialect["migration_lock"]:
                self.execute(self.dialect["migration_lock"])
                # Another process may have migrated while this one waited for the lock.
                version = self.execute(self.dialect["get_version"]).fetchone()[0]
            for step in range(version, SCHEMA_VERSION):
                for sql in MIGRATIONS[step]:
                    self.execute(ddl(sql, self.kind))
                self.execute(self.dialect["set_version"].format(version=step + 1))
        if version == 0:
            log.info("database created at schema version %d", SCHEMA_VERSION)
        elif version < SCHEMA_VERSION:
            log.info("database migrated from schema version %d to %d", version, SCHEMA_VERSION)

    #: What ``holdings`` counts.
    COUNTED = ("operator", "chat", "event", "file")

    async def holdings(self) -> dict[str, int]:
        """How many operators, chats, events and files the database holds."""

        def count() -> dict[str, int]:
            return {
                table: self.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0]
                for table in self.COUNTED
            }

        return await self.run(count)

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
