"""The databases tests run on: SQLite (a file in each server's data directory) and PostgreSQL.

PostgreSQL comes from ``CUTELIVE_TEST_POSTGRES`` (a URL of a server where the user may create
databases; ``.ci/run`` starts one) or, when that is unset, from a private cluster this module
starts in a temporary folder with Debian's ``postgresql`` binaries and stops at the end. Each
test server gets a database of its own, made empty or as a copy of a seeded template.
Nothing here skips: when PostgreSQL cannot start, the tests that need it fail.
"""

from __future__ import annotations

import asyncio
import glob
import itertools
import os
import random
import re
import shutil
import socket
import subprocess
import tempfile
import threading
import time
import urllib.parse
from pathlib import Path

import pytest

#: Test files whose servers run once on each backend (``pytest_generate_tests``).
BOTH_BACKENDS = (
    "test_chat",
    "test_events",
    "test_resume",
    "test_longpoll",
    "test_durability",
    "test_queue",
    "test_receipts",
    "test_files",
    "test_browser",
)

_names = itertools.count(1)


def _run(make_coro):
    """Run a coroutine to its end in a thread of its own: the caller may be inside an event
    loop already (Playwright's synchronous API runs one)."""
    result: list = []

    def target() -> None:
        try:
            result.append((True, asyncio.run(make_coro())))
        except BaseException as e:
            result.append((False, e))

    t = threading.Thread(target=target)
    t.start()
    t.join()
    ok, value = result[0]
    if not ok:
        raise value
    return value


def fetch(url: str, sql: str, *params) -> list[tuple]:
    """Rows of one query (``?`` placeholders) on the PostgreSQL database at ``url``."""
    import asyncpg

    async def run() -> list[tuple]:
        con = await asyncpg.connect(url)
        try:
            n = itertools.count(1)
            numbered = re.sub(r"\?", lambda _m: f"${next(n)}", sql)
            return [tuple(r) for r in await con.fetch(numbered, *params)]
        finally:
            await con.close()

    return _run(run)


def _free_port() -> int:
    """A free port below Linux's ephemeral range (32768 and up): a private server stopped and
    started again on it must not find it taken by one of the suite's outgoing connections."""
    for _ in range(1000):
        port = random.randrange(20_000, 32_000)
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free port between 20000 and 31999")


def _pg_bin(name: str) -> str:
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    if not found:
        raise RuntimeError(
            f"PostgreSQL's {name} is not installed: apt-get install postgresql "
            "(or set CUTELIVE_TEST_POSTGRES to a server's URL)"
        )
    return found[-1]


class Postgres:
    """A PostgreSQL server for the tests: given by URL, or a private one started here."""

    def __init__(self, private: bool = False) -> None:
        """``private``: always a server of its own (a test that stops and starts it)."""
        self.url = "" if private else os.environ.get("CUTELIVE_TEST_POSTGRES", "")
        self._dir: str | None = None
        self._prefix = f"t{os.getpid()}_"
        if not self.url:
            self._start_private()

    def _start_private(self) -> None:
        self._dir = tempfile.mkdtemp(prefix="cutelive-pg-")
        run_as: list[str] = []
        if os.geteuid() == 0:  # PostgreSQL refuses to run as root
            shutil.chown(self._dir, "postgres")
            run_as = ["runuser", "-u", "postgres", "--"]
        data = os.path.join(self._dir, "data")
        port = _free_port()
        subprocess.run(
            run_as + [_pg_bin("initdb"), "-D", data, "-A", "trust", "-U", "postgres"],
            check=True,
            capture_output=True,
        )
        options = (
            f"-p {port} -k {self._dir} -c listen_addresses=127.0.0.1 -c fsync=off "
            "-c synchronous_commit=off -c full_page_writes=off -c max_connections=200"
        )
        self._run_as = run_as
        self._data = data
        self._options = options
        self.start_server()
        self.url = f"postgresql://postgres@127.0.0.1:{port}/postgres"

    def start_server(self) -> None:
        """Start the private server (again)."""
        self._pg_ctl("-l", os.path.join(self._dir, "log"), "-w", "-o", self._options, "start")

    def stop_server(self) -> None:
        """Stop the private server, as an administrator's restart does (open connections
        are ended)."""
        self._pg_ctl("-m", "fast", "-w", "stop")

    def _pg_ctl(self, *args: str) -> None:
        done = subprocess.run(
            self._run_as + [_pg_bin("pg_ctl"), "-D", self._data, *args],
            capture_output=True,
            text=True,
        )
        if done.returncode != 0:
            log = os.path.join(self._dir, "log")
            tail = open(log).read()[-2000:] if os.path.exists(log) else ""
            raise RuntimeError(f"pg_ctl {args[-1]} failed: {done.stderr}{done.stdout}\n{tail}")

    def _admin(self, *statements: str) -> list:
        import asyncpg

        async def run() -> list:
            con = await asyncpg.connect(self.url)
            try:
                return [await con.fetch(s) for s in statements]
            finally:
                await con.close()

        return _run(run)

    def _drop_databases(self, connections: int = 8) -> None:
        """Drop this test process's databases on the given server, several at once (each
        drop waits mostly on PostgreSQL's files: one at a time, the last test's teardown took
        several seconds)."""
        import asyncpg

        async def run() -> None:
            con = await asyncpg.connect(self.url)
            try:
                rows = await con.fetch(
                    "SELECT datname FROM pg_database WHERE datname LIKE $1", self._prefix + "%"
                )
            finally:
                await con.close()
            names = [r["datname"] for r in rows]

            async def dropper() -> None:
                con = await asyncpg.connect(self.url)
                try:
                    while names:
                        name = names.pop()
                        try:
                            await con.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
                        except asyncpg.PostgresError:
                            pass  # gone already, or still in use: the next run's name differs
                finally:
                    await con.close()

            await asyncio.gather(*(dropper() for _ in range(connections)))

        _run(run)

    def database_url(self, name: str) -> str:
        u = urllib.parse.urlsplit(self.url)
        return urllib.parse.urlunsplit(u._replace(path="/" + name))

    def new_database(self, template: str | None = None) -> str:
        """A new, empty database (or a copy of ``template``); its URL."""
        name = f"{self._prefix}{next(_names)}"
        copy = f" TEMPLATE {template}" if template else ""
        deadline = time.monotonic() + 10
        while True:
            try:
                self._admin(f"CREATE DATABASE {name}{copy}")
                break
            except Exception as e:  # the template's last server may still be disconnecting
                if "being accessed by other users" not in str(e) or time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        return self.database_url(name)

    def fetch(self, url: str, sql: str, *params) -> list[tuple]:
        return fetch(url, sql, *params)

    def stop(self) -> None:
        if self._dir is None:
            self._drop_databases()
            return
        subprocess.run(
            self._run_as + [_pg_bin("pg_ctl"), "-D", self._data, "-m", "immediate", "stop"],
            capture_output=True,
        )
        shutil.rmtree(self._dir, ignore_errors=True)


class Redis:
    """A Redis server for the tests: ``CUTELIVE_TEST_REDIS`` (a URL; ``.ci/run`` starts one),
    or a private ``redis-server`` started here (Debian's ``redis-server``) and stopped at the end.
    Each cluster keeps its keys apart by its database (``cluster.cluster_namespace``)."""

    def __init__(self, private: bool = False) -> None:
        self.url = "" if private else os.environ.get("CUTELIVE_TEST_REDIS", "")
        self._proc: subprocess.Popen | None = None
        self._dir: str | None = None
        if not self.url:
            binary = shutil.which("redis-server")
            if binary is None:
                raise RuntimeError(
                    "redis-server is not installed: apt-get install redis-server "
                    "(or set CUTELIVE_TEST_REDIS to a server's URL)"
                )
            self._binary = binary
            self._dir = tempfile.mkdtemp(prefix="cutelive-redis-")
            self._port = _free_port()
            self.start_server()
            self.url = f"redis://127.0.0.1:{self._port}/0"

    def start_server(self) -> None:
        """Start the private server (again, on the same port)."""
        self._proc = subprocess.Popen(
            [self._binary, "--port", str(self._port), "--bind", "127.0.0.1"]
            + ["--save", "", "--appendonly", "no", "--dir", self._dir],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while True:
            try:
                with socket.create_connection(("127.0.0.1", self._port), timeout=1) as s:
                    s.sendall(b"PING\r\n")
                    if s.recv(16).startswith(b"+PONG"):
                        return
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("redis-server did not start")
            time.sleep(0.02)

    def stop_server(self) -> None:
        if self._proc is not None:
            self._proc.kill()
            self._proc.wait()
            self._proc = None

    def stop(self) -> None:
        self.stop_server()
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)


# -- fixtures (imported into conftest.py) ---------------------------------------------------


@pytest.fixture(scope="session")
def postgres():
    """A PostgreSQL server for this session (started on first use, stopped at the end)."""
    pg = Postgres()
    yield pg
    pg.stop()


@pytest.fixture(scope="session")
def redis():
    """A Redis server for this session (started on first use, stopped at the end)."""
    r = Redis()
    yield r
    r.stop()


def pytest_generate_tests(metafunc):
    """Tests of the files named in ``backends.BOTH_BACKENDS`` run on SQLite in one process and
    again as a cluster: two processes on PostgreSQL and Redis, the visitor on one and the
    operator on the other (the in-process tests: one app on PostgreSQL and Redis). Every other
    test runs on SQLite."""
    if "backend" in metafunc.fixturenames:
        module = metafunc.module.__name__.rpartition(".")[2]
        if module in BOTH_BACKENDS:
            metafunc.parametrize("backend", ["sqlite", "cluster"], indirect=True)


@pytest.fixture
def backend(request) -> str:
    """Where this test's servers and apps keep their data: ``sqlite`` (one process),
    ``postgresql`` (one process) or ``cluster`` (PostgreSQL and Redis, two processes)."""
    return getattr(request, "param", "sqlite")


def database_url_for(request, backend: str, template: str | None = None) -> str:
    if backend == "sqlite":
        return ""
    return request.getfixturevalue("postgres").new_database(template)


def new_server(request, backend: str, d: Path, config, env, template: str | None = None):
    url = database_url_for(request, backend, template)
    if backend == "cluster":
        from cluster import Cluster

        return Cluster(d, config, env, url, request.getfixturevalue("redis").url)
    from conftest import Server

    return Server(d, config, env, database_url=url)
