"""The command line: ``serve`` (the default), ``backup``, ``restore``, ``create-operator``,
``passwd``."""

from __future__ import annotations

import argparse
import asyncio
import errno
import gc
import getpass
import logging
import os
import signal
import socket
import sqlite3
import ssl
import sys
import time

import peewee
import tornado.netutil

from . import __version__
from .clock import Clock
from .config import Config, ConfigError, load_config, parse_database_url
from .protocol import ApiError, invalid_field, not_found
from .services import Services
from .storage import DatabaseUnusable, Storage, pgtools, safe_url
from .storage.copy import copy_sqlite_to_postgresql
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


async def serve(config: Config) -> int:
    """Run the server until SIGTERM or SIGINT; returns the exit status."""
    # Listen first: when the port is taken, say so and create nothing.
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
    # the full ones.
    gc.freeze()
    gc.set_threshold(10_000, 20, 20)
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
    await services.storage.close()
    log.info("stopped")
    # Everything is written and closed. Tearing down the interpreter (collecting every
    # connection's objects) would hold the port for another second at 10,000 visitors, while
    # they wait to reconnect to the next process.
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


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
    setup_logging(config.log_level)
    for w in config.warnings:
        log.warning("%s", w)
    command = args.command or "serve"
    try:
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
    except DatabaseUnusable as e:
        print(f"cutelive: {e}", file=sys.stderr)
        return 2
    except (ConfigError, OSError, sqlite3.Error, peewee.DatabaseError) as e:
        print(f"cutelive: {e}", file=sys.stderr)
        return 1
