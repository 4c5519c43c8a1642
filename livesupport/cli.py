"""The command line: ``serve`` (the default), ``backup``, ``restore``, ``create-operator``,
``passwd``."""

from __future__ import annotations

import argparse
import asyncio
import errno
import gc
import logging
import os
import select
import signal
import socket
import sqlite3
import ssl
import sys
import time
from collections.abc import Callable

import peewee
import tornado.netutil

from . import __version__
from .clock import Clock
from .cluster import ClusterUnusable
from .config import Config, ConfigError, load_config, parse_database_url
from .protocol import ApiError, invalid_field, not_found
from .services import Services
from .storage import DatabaseUnusable, Storage, safe_url
from .web.app import GuardedHTTPServer, make_app

log = logging.getLogger("cutelive")


def setup_logging(level: str) -> None:
    logging.basicConfig(
        level=getattr(logging, level.upper()),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    if level != "debug":
        logging.getLogger("tornado.access").setLevel(logging.WARNING)


def _listen(config: Config) -> list[socket.socket]:
    """The listening sockets, or a ConfigError that names the address and what to do."""
    where = f"{config.server_host}:{config.server_port}"
    try:
        # A listen backlog of socket.SOMAXCONN rather than Tornado's 128: after a restart every
        # visitor reconnects within seconds, and a full accept queue drops SYNs, which clients
        # retry only after 1, 3, 7 s.
        return tornado.netutil.bind_sockets(
            config.server_port, config.server_host, backlog=socket.SOMAXCONN
        )
    except OSError as e:
        if e.errno == errno.EADDRINUSE:
            raise ConfigError(
                f"{where} is already in use by another program; "
                "choose another port with --port or [server] port"
            ) from None
        raise ConfigError(f"cannot listen on {where}: {e.strerror or e}") from None


async def serve(
    config: Config,
    sockets: list[socket.socket] | None = None,
    started: Callable[[], None] | None = None,
) -> int:
    """Run the server until SIGTERM or SIGINT; returns the exit status. A worker of
    ``--workers`` is handed the sockets its parent listens on, and ``started`` to call once it
    serves them."""
    # Listen first: when the port is taken, say so and create nothing.
    if sockets is None:
        sockets = _listen(config)
    try:
        app = await make_app(config)
    except BaseException:
        for sock in sockets:
            sock.close()
        raise
    services: Services = app.services
    # Garbage collection for thousands of held connections (measured by bench/): a full
    # collection walks the whole heap, up to a second of stalled event loop at 15,000 visitors.
    # What start-up loaded is never garbage, so it is frozen out of all collections; young
    # collections run less often, so short-lived objects die before they are promoted towards
    # the full ones. cutelive.py keeps the collector off until here.
    gc.freeze()
    gc.set_threshold(10_000, 20, 20)
    gc.enable()
    ssl_ctx = None
    if config.server_certfile:
        ssl_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ssl_ctx.load_cert_chain(config.server_certfile, config.server_keyfile or None)
    server = GuardedHTTPServer(
        app,
        fd_guard=services.fd_guard,
        # A Content-Length over [limits] max_body is refused from the headers; a chunked body
        # is read up to this, so that the handler's JSON 413 reaches the client. What arrives
        # slower than body_timeout is cut off.
        body_limit=config.limits_max_body,
        file_limit=config.files_max_size,
        ssl_options=ssl_ctx,
        max_body_size=max(config.limits_max_body * 4, 1024 * 1024),
        body_timeout=config.limits_body_timeout,
        idle_connection_timeout=120,
    )
    server.add_sockets(sockets)
    port = sockets[0].getsockname()[1]
    if not config.server_public_url:
        services.site.base_url = config.base_url(port)
    base = services.site.base_url
    log.info("Cute Live Support %s listening on %s", __version__, config.base_url(port))
    log.info("operator console: %s/console/", base)
    log.info('widget snippet:   <script async src="%s/widget.js"></script>', base)
    log.info("demo web site:    %s/demo/", base)
    log.info("database: %s", services.storage.where())
    if services.accounts.setup_token:
        log.warning(
            "no operators yet: open %s/console/ and create the first administrator with "
            "setup token %s",
            base,
            services.accounts.setup_token,
        )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    if started is not None:
        started()
    await stop.wait()
    # Not ready first: a proxy checking /api/ready sends new visitors elsewhere during the
    # drain, while the connections here are still served; a second signal ends the drain.
    app.readiness.stop_accepting()
    if config.server_drain_time > 0:
        log.info(
            "stopping: /api/ready answers 503; still serving for %g s ([server] drain_time)",
            config.server_drain_time,
        )
        stop.clear()
        try:
            await asyncio.wait_for(stop.wait(), config.server_drain_time)
        except TimeoutError:
            pass
    log.info("shutting down")
    server.stop()
    services.stop_ticking()
    await services.outbox.finish(5)
    await services.monitor.shutdown()
    for stream in services.hub.all_subscribers():
        stream.close(1001, "server shutting down")
    await asyncio.sleep(0)  # let the close frames and poll answers go out
    try:
        await asyncio.wait_for(server.close_all_connections(), 2)
    except TimeoutError:
        pass
    await services.close()
    log.info("stopped")
    # Everything is written and closed. Tearing down the interpreter (collecting every
    # connection's objects) would hold the port for another second at 10,000 visitors, while
    # they wait to reconnect to the next process.
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


def workers_refusal(config: Config, workers: int) -> str | None:
    """Why ``serve --workers N`` cannot run with this configuration, or None."""
    if not config.database_url:
        return (
            f"--workers {workers} needs PostgreSQL: several processes on one SQLite file would "
            "break its guarantees; set [database] url"
        )
    if not config.cluster_redis_url:
        return (
            f"--workers {workers} needs Redis to carry events between the processes; "
            "set [cluster] redis_url"
        )
    return None


def _noted(signum: int, frame: object) -> None:
    """The supervisor's signal handler: the signal's number reaches its wake-up pipe."""


#: Serving: the sockets a worker serves, and what it calls once it serves them.
Forked = tuple[list[socket.socket], Callable[[], None]]


class Workers:
    """``serve --workers N``: this process listens, forks N workers that serve its sockets,
    and supervises them.

    The first worker starts alone (it creates or migrates the database; a start that cannot
    work is refused once, with its one line and exit status), then the others; the start has
    failed if any of them ends before it serves. Later a worker that ends while the server is not
    stopping is replaced: at once if it had been serving, else after a pause that doubles from
    0.5 s up to 30 s. SIGTERM or SIGINT is passed on to every worker (a second one too: it ends
    their drain), and this process exits when they all have: 0 when they all stopped cleanly.
    Should this process be killed outright, the workers stop by themselves.
    """

    SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGCHLD)
    FIRST_PAUSE = 0.5
    MAX_PAUSE = 30.0

    def __init__(self, n: int, sockets: list[socket.socket]):
        self.n = n
        self.sockets = sockets
        #: Worker pid -> whether it has said it serves.
        self.children: dict[int, bool] = {}
        #: When the next workers are to be started (monotonic seconds).
        self.due: list[float] = []
        self.launched = 0
        self.starting = True
        self.stopping = False
        self.failures = 0
        self.status = 0
        self._buffer = b""

    def run(self) -> int | Forked:
        """Supervise until stopped; the exit status. Like ``os.fork`` this also returns in
        each worker, with what ``serve`` needs there."""
        for handler in logging.getLogger().handlers:
            handler.setFormatter(
                logging.Formatter("%(asctime)s %(levelname)s %(name)s[%(process)d]: %(message)s")
            )
        self._wake_r, self._wake_w = os.pipe()
        self._ready_r, self._ready_w = os.pipe()
        # Held open by this process only: a worker sees its end of it close when this process
        # is gone (even by kill -9), and stops rather than serve on unsupervised.
        self._life_r, self._life_w = os.pipe()
        for fd in (self._wake_r, self._wake_w, self._ready_r):
            os.set_blocking(fd, False)
        self._old = {sig: signal.signal(sig, _noted) for sig in self.SIGNALS}
        signal.set_wakeup_fd(self._wake_w, warn_on_full_buffer=False)
        self.due.append(time.monotonic())
        parent = os.getpid()
        try:
            while self.children or (self.due and not self.stopping):
                if self._start_due() == 0:
                    return self._worker()
                wait = max(0.0, min(self.due) - time.monotonic()) if self.due else None
                select.select([self._ready_r, self._wake_r], [], [], wait)
                self._read_ready()  # before the deaths: a worker may serve and die at once
                self._read_signals()
        except BaseException:
            if os.getpid() == parent:  # cannot supervise them any more (a fork failed)
                self._forward(signal.SIGTERM)
                self._close()
            raise
        self._close()
        return self.status

    # -- the parent -------------------------------------------------------------------------

    def _start_due(self) -> int | None:
        now = time.monotonic()
        for when in sorted(self.due):
            if when > now or self.stopping:
                break
            self.due.remove(when)
            # No signal between the fork and the worker's own handlers: it would reach the
            # parent's wake-up pipe.
            blocked = signal.pthread_sigmask(signal.SIG_BLOCK, self.SIGNALS)
            try:
                pid = os.fork()
            except BaseException:
                signal.pthread_sigmask(signal.SIG_SETMASK, blocked)
                raise
            if pid == 0:
                signal.set_wakeup_fd(-1)
                for sig, handler in self._old.items():
                    signal.signal(sig, handler)
                signal.pthread_sigmask(signal.SIG_SETMASK, blocked)
                return 0
            signal.pthread_sigmask(signal.SIG_SETMASK, blocked)
            self.children[pid] = False
            self.launched += 1
            log.info("worker %d started", pid)
        return None

    def _read_ready(self) -> None:
        try:
            self._buffer += os.read(self._ready_r, 4096)
        except BlockingIOError:
            return
        *lines, self._buffer = self._buffer.split(b"\n")
        for line in lines:
            pid = int(line)
            if pid not in self.children:
                continue
            self.children[pid] = True
            self.failures = 0
            serving = sum(self.children.values())
            if self.starting and self.launched == 1 and not self.stopping:
                self.due += [time.monotonic()] * (self.n - 1)
            if self.starting and serving == self.n:
                self.starting = False
                log.info("%d workers serving", self.n)

    def _read_signals(self) -> None:
        try:
            received = os.read(self._wake_r, 4096)
        except BlockingIOError:
            return
        for signum in received:
            if signum == signal.SIGCHLD:
                self._reap()
            elif signum in (signal.SIGTERM, signal.SIGINT):
                self._stop(signum)

    def _stop(self, signum: int) -> None:
        if not self.stopping and self.children:
            log.info("stopping %d workers", len(self.children))
        self.stopping = True
        self.due.clear()
        self._forward(signum)

    def _forward(self, signum: int) -> None:
        for pid in self.children:
            try:
                os.kill(pid, signum)
            except ProcessLookupError:
                pass

    def _reap(self) -> None:
        while self.children:
            try:
                pid, wait_status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            if pid not in self.children:
                continue
            served = self.children.pop(pid)
            code = os.waitstatus_to_exitcode(wait_status)
            how = f"exited with status {code}" if code >= 0 else f"was killed by signal {-code}"
            if self.stopping:
                # Killed by the signal passed on, it had not yet begun to serve: a clean stop.
                if code not in (0, -signal.SIGTERM, -signal.SIGINT):
                    log.warning("worker %d %s while stopping", pid, how)
                    self.status = self.status or 1
                continue
            if self.starting and not served:
                # It said why on standard error; the start is refused with its status.
                self.status = code if code > 0 else 1
                self._stop(signal.SIGTERM)
                continue
            pause = 0.0
            if not served:
                self.failures += 1
                pause = min(self.MAX_PAUSE, self.FIRST_PAUSE * 2 ** (self.failures - 1))
            log.warning("worker %d %s; starting another in %g s", pid, how, pause)
            self.due.append(time.monotonic() + pause)

    def _close(self) -> None:
        signal.set_wakeup_fd(-1)
        for sig, handler in self._old.items():
            signal.signal(sig, handler)
        for fd in (self._wake_r, self._wake_w, self._ready_r, self._ready_w):
            os.close(fd)
        os.close(self._life_r)
        os.close(self._life_w)
        for sock in self.sockets:
            sock.close()

    # -- a worker ---------------------------------------------------------------------------

    def _worker(self) -> Forked:
        for fd in (self._wake_r, self._wake_w, self._ready_r, self._life_w):
            os.close(fd)
        ready, life = self._ready_w, self._life_r

        def started() -> None:
            os.write(ready, f"{os.getpid()}\n".encode())
            os.close(ready)
            loop = asyncio.get_running_loop()

            def orphaned() -> None:
                loop.remove_reader(life)
                log.warning("the main process is gone; stopping")
                os.kill(os.getpid(), signal.SIGTERM)

            loop.add_reader(life, orphaned)

        return self.sockets, started


async def _cli_services(config: Config) -> Services:
    storage = Storage.for_config(config, Clock())
    await storage.open()
    return Services(config, storage, clock=storage.clock)


def backup_cmd(config: Config, args) -> int:
    """Write a consistent copy of the database, also while the server runs: SQLite's backup
    API, or ``pg_dump`` for PostgreSQL."""
    dest = args.file
    if os.path.exists(dest) and not args.force:
        raise ConfigError(f"{dest} exists; use --force to overwrite it")
    if config.database_url:
        from .storage import pgtools  # only here and in restore: not imported by serve

        pgtools.dump(config.database_url, dest)
        print(f"backed up {safe_url(config.database_url)} to {dest} (pg_dump, custom format)")
        return 0
    src_path = os.path.join(config.server_data_dir, "cutelive.db")
    if not os.path.exists(src_path):
        raise ConfigError(f"no database at {src_path}")
    tmp = dest + ".partial"
    # One step: a single read transaction, a consistent snapshot (the storage layer's backup).
    ok = Storage(src_path, Clock(), busy_timeout=config.database_busy_timeout).backup(tmp)
    if ok != "ok":
        os.unlink(tmp)
        raise ConfigError(f"the copy failed its integrity check: {ok}")
    os.replace(tmp, dest)
    print(f"backed up {src_path} to {dest} (integrity ok)")
    return 0


def _held(counts: dict[str, int]) -> str:
    return ", ".join(f"{n} {table}s" for table, n in counts.items())


async def _postgresql_restore(config: Config, args) -> int:
    """A ``backup`` of a PostgreSQL installation back into the configured database (every
    server using it stopped). A database with operators or chats is replaced only with
    ``--force``."""
    if not os.path.isfile(args.file):
        raise ConfigError(f"no backup at {args.file}")
    storage = Storage.for_config(config, Clock())
    await storage.open()
    try:
        held = await storage.holdings()
    finally:
        await storage.close()
    if (held["operator"] or held["chat"]) and not args.force:
        raise ConfigError(
            f"the database {storage.where()} holds {_held(held)}; stop every server using it "
            "and use --force to replace them with the backup"
        )
    from .storage import pgtools

    pgtools.restore(args.file, config.database_url)
    storage = Storage.for_config(config, Clock())
    await storage.open()  # a backup of an older version is migrated now
    try:
        held = await storage.holdings()
    finally:
        await storage.close()
    del held["operator"]
    print(f"restored {args.file} to {storage.where()} ({_held(held)})")
    return 0


def restore_cmd(config: Config, args) -> int:
    """Bring a backup back as the data directory's database (the server must be stopped).
    A database already there is refused, or with ``--force`` kept aside, never deleted."""
    if config.database_url:
        return asyncio.run(_postgresql_restore(config, args))
    data_dir = config.server_data_dir
    dest = os.path.join(data_dir, "cutelive.db")
    if not os.path.isfile(args.file):
        raise ConfigError(f"no backup at {args.file}")
    os.makedirs(data_dir, exist_ok=True)
    tmp = dest + ".restoring"
    if os.path.exists(tmp):
        os.unlink(tmp)
    counts = Storage.restore(args.file, tmp)
    if os.path.exists(dest):
        if not args.force:
            os.unlink(tmp)
            raise ConfigError(
                f"{dest} exists; stop the server and use --force to put it aside and restore"
            )
        aside = f"{dest}.before-restore-{time.strftime('%Y%m%d-%H%M%S')}"
        for suffix in ("", "-wal", "-shm"):
            if os.path.exists(dest + suffix):
                os.replace(dest + suffix, aside + suffix)
        print(f"the database that was there is kept as {aside}")
    os.replace(tmp, dest)
    print(f"restored {args.file} to {dest} (integrity ok; {_held(counts)})")
    return 0


async def migrate_db_cmd(config: Config, args) -> int:
    """Copy the SQLite installation of the data directory into an empty PostgreSQL database,
    and check that both hold the same rows."""
    src_path = os.path.join(config.server_data_dir, "cutelive.db")
    if not os.path.exists(src_path):
        raise ConfigError(f"no database at {src_path}")
    try:
        url = parse_database_url(args.to)
    except ValueError:
        url = ""
    if not url:
        raise ConfigError(
            "--to: expected the URL of an empty PostgreSQL database, such as "
            "postgresql://user:password@localhost:5432/cutelive"
        )
    from .storage.copy import copy_sqlite_to_postgresql

    source = Storage(src_path, Clock(), busy_timeout=config.database_busy_timeout)
    dest = Storage(src_path, Clock(), url=url)
    await source.open()
    try:
        await dest.open(key="--to")
        try:
            counts = await copy_sqlite_to_postgresql(source, dest)
        except RuntimeError as e:
            raise ConfigError(f"nothing was copied: {e}") from None
        finally:
            await dest.close()
    finally:
        await source.close()
    rows = sum(counts.values())
    print(f"copied {src_path} to {dest.where()}: {rows} rows in {len(counts)} tables, the same")
    print("counts on both sides:")
    for table, n in counts.items():
        print(f"  {table:20} {n}")
    print(f"now set [database] url = {dest.where()} (with its password) and start cutelive")
    return 0


def _read_password(args) -> str:
    if args.password_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    import getpass

    first = getpass.getpass("Password: ")
    if getpass.getpass("Repeat password: ") != first:
        raise invalid_field("password", "the passwords do not match")
    return first


async def create_operator_cmd(config: Config, args) -> int:
    services = await _cli_services(config)
    try:
        op = await services.accounts.create_operator(
            args.username, args.display_name or args.username, _read_password(args), args.admin
        )
    finally:
        await services.storage.close()
    kind = "administrator" if op.is_admin else "operator"
    print(f"created {kind} {op.username!r} (id {op.id})")
    return 0


async def passwd_cmd(config: Config, args) -> int:
    services = await _cli_services(config)
    try:
        if await services.storage.accounts.operator_by_username(args.username) is None:
            raise not_found(f"no operator {args.username!r}")
        op = await services.accounts.set_password(args.username, _read_password(args))
    finally:
        await services.storage.close()
    print(f"password changed for {op.username!r}; its sessions are ended")
    return 0


def _workers_arg(text: str) -> int:
    n = int(text) if text.isascii() and text.isdigit() else 0
    if n < 1:
        raise argparse.ArgumentTypeError(f"expected a number of processes, 1 or more: {text!r}")
    return n


def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "-c",
        "--config",
        metavar="FILE",
        default=argparse.SUPPRESS,
        help="ini file (see config.example.ini)",
    )
    common.add_argument(
        "--data-dir",
        metavar="DIR",
        default=argparse.SUPPRESS,
        help="folder for the database ([server] data_dir)",
    )
    net = argparse.ArgumentParser(add_help=False)
    net.add_argument("--host", default=argparse.SUPPRESS, help="[server] host")
    net.add_argument("--port", default=argparse.SUPPRESS, help="[server] port (0: any free)")
    net.add_argument("--public-url", default=argparse.SUPPRESS, help="[server] public_url")
    net.add_argument(
        "--workers",
        metavar="N",
        type=_workers_arg,
        default=argparse.SUPPRESS,
        help="N processes serving the one port, restarted when one dies (default 1); more "
        "than 1 needs PostgreSQL ([database] url) and Redis ([cluster] redis_url)",
    )
    p = argparse.ArgumentParser(
        prog="cutelive",
        allow_abbrev=False,
        description="Cute Live Support: live-support chat for your web site.",
        parents=[common, net],
    )
    p.add_argument("--version", action="version", version=f"cutelive {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    sub.add_parser("serve", parents=[common, net], help="run the server (the default)")
    bp = sub.add_parser("backup", parents=[common], help="copy the database, also while running")
    bp.add_argument("file", help="where to write the copy")
    bp.add_argument("--force", action="store_true", help="overwrite an existing file")
    rp = sub.add_parser("restore", parents=[common], help="put a backup back (server stopped)")
    rp.add_argument("file", help="the backup to restore")
    rp.add_argument(
        "--force", action="store_true", help="keep the database that is there aside, then restore"
    )
    mp = sub.add_parser(
        "migrate-db",
        parents=[common],
        help="copy the SQLite database to an empty PostgreSQL one (server stopped)",
    )
    mp.add_argument(
        "--to", required=True, metavar="URL", help="postgresql://user:password@host:5432/db"
    )
    for name, helptext in (
        ("create-operator", "add an operator"),
        ("passwd", "set an operator's password"),
    ):
        sp = sub.add_parser(name, parents=[common], help=helptext, allow_abbrev=False)
        sp.add_argument("username")
        sp.add_argument(
            "--password-stdin",
            action="store_true",
            help="read the password from standard input instead of prompting",
        )
        if name == "create-operator":
            sp.add_argument("--admin", action="store_true", help="make it an administrator")
            sp.add_argument("--display-name", help="the name visitors see (default: username)")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    overrides = {}
    for attr, key in (
        ("host", ("server", "host")),
        ("port", ("server", "port")),
        ("public_url", ("server", "public_url")),
        ("data_dir", ("server", "data_dir")),
    ):
        if hasattr(args, attr):
            overrides[key] = getattr(args, attr)
    try:
        config = load_config(getattr(args, "config", None), overrides)
    except ConfigError as e:
        print(f"cutelive: configuration error: {e}", file=sys.stderr)
        return 2
    workers = getattr(args, "workers", 1)
    refusal = workers_refusal(config, workers) if workers > 1 else None
    if refusal:
        print(f"cutelive: {refusal}", file=sys.stderr)
        return 2
    setup_logging(config.log_level)
    for w in config.warnings:
        log.warning("%s", w)
    command = args.command or "serve"
    if command != "serve" or workers > 1:
        # cutelive.py started with the collector off; serve turns it on once started, the
        # other commands (and the parent of --workers, before it forks) now.
        gc.freeze()
        gc.enable()
    try:
        if command == "serve" and workers > 1:
            forked = Workers(workers, _listen(config)).run()
            if isinstance(forked, int):
                return forked  # the parent, once its workers have stopped
            return asyncio.run(serve(config, *forked))
        if command == "serve":
            return asyncio.run(serve(config))
        if command == "backup":
            return backup_cmd(config, args)
        if command == "restore":
            return restore_cmd(config, args)
        if command == "migrate-db":
            return asyncio.run(migrate_db_cmd(config, args))
        if command == "create-operator":
            return asyncio.run(create_operator_cmd(config, args))
        return asyncio.run(passwd_cmd(config, args))
    except ApiError as e:
        print(f"cutelive: {e.message}", file=sys.stderr)
        return 1
    except (DatabaseUnusable, ClusterUnusable) as e:
        print(f"cutelive: {e}", file=sys.stderr)
        return 2
    except (ConfigError, OSError, sqlite3.Error, peewee.DatabaseError) as e:
        print(f"cutelive: {e}", file=sys.stderr)
        return 1
