#!/usr/bin/env python3
"""Cute Live Support: a self-hosted live-support chat appliance in one file.

One Tornado process and one SQLite file. Visitors chat from a widget on the customer's site;
operators answer in the built-in console. Events travel over WebSocket or long-poll with
persisted per-chat sequence numbers, so nothing is lost across reconnects and restarts.

Sections (``grep -n '^# .*####' cutelive.py``):

1. imports, constants, paths
2. configuration
3. storage
4. hub
5. services
6. HTTP and WebSocket handlers
7. application factory
8. command-line interface
"""

###############################################################################
# 1. Imports, constants, paths ################################################
###############################################################################

from __future__ import annotations

import argparse
import asyncio
import collections
import configparser
import email.errors
import email.headerregistry
import email.message
import email.policy
import email.utils
import gc
import getpass
import hashlib
import hmac
import ipaddress
import json
import logging
import os
import re
import secrets
import signal
import smtplib
import socket
import sqlite3
import ssl
import sys
import time
import urllib.parse
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

__version__ = "0.1.0"

log = logging.getLogger("cutelive")

#: True when running from a PyInstaller bundle; assets then come from the bundle.
FROZEN = bool(getattr(sys, "frozen", False))
#: Where the read-only files live: the bundle when frozen, this file's folder otherwise.
BUNDLE_DIR = getattr(sys, "_MEIPASS", os.path.dirname(os.path.abspath(__file__)))
#: Browser files (widget, console, demo, images, sounds).
ASSETS_DIR = os.path.join(BUNDLE_DIR, "assets")

#: Chat statuses; open chats are the first two.
WAITING, ACTIVE, CLOSED, MISSED = "waiting", "active", "closed", "missed"
OPEN_STATUSES = (WAITING, ACTIVE)
#: Operator statuses.
ONLINE, AWAY, OFFLINE = "online", "away", "offline"

#: Fixed field limits (the configurable ones live in the defaults table).
MAX_URL_CHARS = 2048
MAX_TITLE_CHARS = 512
MAX_UA_CHARS = 512
MAX_CLIENT_ID_CHARS = 64
MAX_REQUEST_ID_CHARS = 64
MAX_PASSWORD_CHARS = 1024
MIN_PASSWORD_CHARS = 8
#: How long a ``typing`` event stays true at the receiver unless refreshed.
TYPING_EXPIRES = 6
#: A WebSocket must say hello within this many seconds.
HELLO_TIMEOUT = 10
#: Events kept for a long-poll connection between polls before falling back to a replay.
POLL_BUFFER_MAX = 500

#: Close codes beyond RFC 6455's.
CLOSE_SESSION_ENDED = 4001
CLOSE_NO_HELLO = 4002
CLOSE_BAD_TOKEN = 4003


def split_url(text: str) -> urllib.parse.SplitResult | None:
    """``urlsplit`` that answers None for what it cannot parse (``http://[x`` raises)."""
    try:
        return urllib.parse.urlsplit(text)
    except ValueError:
        return None


def now_ms() -> int:
    """Milliseconds since the epoch: every timestamp in the protocol and the database."""
    return int(time.time() * 1000)


###############################################################################
# 2. Configuration ############################################################
###############################################################################


class ConfigError(Exception):
    """A configuration value that cannot be used; the message names ``[section] key``."""


def parse_duration(text: str) -> float:
    """Parse ``500ms``, ``30s``, ``15m``, ``2h``, ``7d`` or a bare number of seconds."""
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*", text)
    if not m:
        raise ValueError("a duration such as 30s, 15m, 2h or 7d")
    scale = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, None: 1}[m.group(2)]
    return float(m.group(1)) * scale


def parse_size(text: str) -> int:
    """Parse ``64KiB``, ``1MiB`` or a bare number of bytes."""
    m = re.fullmatch(r"\s*(\d+)\s*(B|KiB|MiB|KB|MB)?\s*", text)
    if not m:
        raise ValueError("a size such as 64KiB or 1MiB")
    scale = {None: 1, "B": 1, "KiB": 1024, "KB": 1000, "MiB": 1024**2, "MB": 1000**2}
    return int(m.group(1)) * scale[m.group(2)]


def parse_rate(text: str) -> tuple[int, float]:
    """Parse ``20/10s`` (20 events per 10 seconds) into ``(count, seconds)``."""
    m = re.fullmatch(r"\s*(\d+)\s*/\s*(\S+)\s*", text)
    if not m:
        raise ValueError("a rate such as 20/10s or 300/1m")
    return int(m.group(1)), parse_duration(m.group(2))


def parse_bool(text: str) -> bool:
    low = text.strip().lower()
    if low in ("1", "yes", "true", "on"):
        return True
    if low in ("0", "no", "false", "off"):
        return False
    raise ValueError("yes or no")


def parse_list(text: str) -> list[str]:
    return [p for p in re.split(r"[\s,]+", text.strip()) if p]


def parse_port(text: str) -> int:
    try:
        port = int(text)
    except ValueError:
        raise ValueError("a port number from 0 to 65535") from None
    if not 0 <= port <= 65535:
        raise ValueError("a port number from 0 to 65535")
    return port


def parse_int(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise ValueError("a whole number") from None


def parse_positive_int(text: str) -> int:
    n = parse_int(text)
    if n < 1:
        raise ValueError("a whole number of at least 1")
    return n


def parse_synchronous(text: str) -> str:
    low = text.strip().lower()
    if low not in ("normal", "full"):
        raise ValueError("normal or full")
    return low


def parse_origins(text: str) -> list[str]:
    origins = parse_list(text)
    for o in origins:
        u = split_url(o)
        if (
            u is None
            or u.scheme not in ("http", "https")
            or not u.netloc
            or u.path not in ("", "/")
        ):
            raise ValueError("origins such as https://www.example.com, separated by spaces")
    return [o.rstrip("/").lower() for o in origins]


def parse_public_url(text: str) -> str:
    if not text:
        return ""
    u = split_url(text)
    if u is None or u.scheme not in ("http", "https") or not u.netloc:
        raise ValueError("an http:// or https:// URL such as https://chat.example.com")
    return text.rstrip("/")


def parse_str(text: str) -> str:
    return text.strip()


@dataclass(frozen=True)
class Setting:
    """One configuration key: its default (as written in the ini), parser and help text."""

    section: str
    key: str
    default: str
    parse: Callable[[str], Any]
    help: str


#: Every configuration key, in the order of ``config.example.ini``. The ini overlays these
#: defaults and command-line flags overlay the ini. A test checks the example file against it.
SETTINGS: list[Setting] = [
    Setting("server", "host", "127.0.0.1", parse_str, "Address to listen on."),
    Setting("server", "port", "8080", parse_port, "Port to listen on; 0 picks a free one."),
    Setting(
        "server",
        "public_url",
        "",
        parse_public_url,
        "The URL visitors and operators reach the server by; used in snippets, links and "
        "e-mails. Empty: http://HOST:PORT.",
    ),
    Setting("server", "data_dir", "cutelive-data", parse_str, "Folder for the database."),
    Setting(
        "server",
        "trusted_proxies",
        "",
        parse_list,
        "Addresses of reverse proxies whose X-Forwarded-For is believed.",
    ),
    Setting("server", "certfile", "", parse_str, "TLS certificate chain (PEM); empty: no TLS."),
    Setting("server", "keyfile", "", parse_str, "TLS private key (PEM)."),
    Setting("database", "synchronous", "normal", parse_synchronous, "normal or full."),
    Setting("database", "busy_timeout", "5s", parse_duration, "How long to wait for a lock."),
    Setting("realtime", "heartbeat", "25s", parse_duration, "Ping interval for streams."),
    Setting("realtime", "poll_timeout", "25s", parse_duration, "How long a long-poll is held."),
    Setting("chat", "queue_timeout", "2m", parse_duration, "Unanswered chats become missed."),
    Setting("operators", "offline_grace", "30s", parse_duration, "Offline after disconnect."),
    Setting("operators", "session_lifetime", "30d", parse_duration, "Console sessions expire."),
    Setting("operators", "login_failures", "10/15m", parse_rate, "Failures per account."),
    Setting("operators", "login_lockout", "15m", parse_duration, "Lock after too many."),
    Setting("operators", "login_failures_per_ip", "50/15m", parse_rate, "Failures per IP."),
    Setting("widget", "allowed_origins", "", parse_origins, "Sites allowed to embed."),
    Setting("monitor", "leave_grace", "30s", parse_duration, "Gone after the last tab."),
    Setting("monitor", "idle_after", "5m", parse_duration, "Idle without a page view."),
    Setting("monitor", "invitation_ttl", "2m", parse_duration, "Invitations expire."),
    Setting("monitor", "retention", "90d", parse_duration, "Page views are kept this long."),
    Setting("monitor", "geoip_db", "", parse_str, "GeoLite2-style .mmdb file for countries."),
    Setting("monitor", "beacons_per_visitor", "120/1m", parse_rate, "Page views per visitor."),
    Setting("monitor", "invitations_per_operator", "30/1m", parse_rate, "Invitations sent."),
    Setting("limits", "message_chars", "5000", parse_positive_int, "Longest message."),
    Setting("limits", "name_chars", "100", parse_positive_int, "Longest name."),
    Setting("limits", "email_chars", "254", parse_positive_int, "Longest e-mail address."),
    Setting("limits", "max_body", "64KiB", parse_size, "Largest HTTP request body."),
    Setting("limits", "max_frame", "64KiB", parse_size, "Largest WebSocket frame."),
    Setting("limits", "visitor_messages", "20/10s", parse_rate, "Messages per visitor."),
    Setting("limits", "chats_per_ip", "10/1m", parse_rate, "New chats per IP address."),
    Setting("limits", "requests_per_ip", "300/1m", parse_rate, "HTTP requests per IP."),
    Setting("limits", "sockets_per_ip", "50", parse_positive_int, "Open WebSockets per IP."),
    Setting("limits", "commands_per_socket", "100/10s", parse_rate, "Frames per WebSocket."),
    Setting("mail", "smtp_host", "", parse_str, "SMTP server; empty: no e-mail."),
    Setting("mail", "smtp_port", "587", parse_port, "SMTP port."),
    Setting("mail", "smtp_security", "starttls", parse_str, "none, starttls or tls."),
    Setting("mail", "smtp_username", "", parse_str, "SMTP login, if any."),
    Setting("mail", "smtp_password", "", parse_str, "SMTP password, if any."),
    Setting("mail", "from_address", "", parse_str, "Sender of notification e-mails."),
    Setting("mail", "to_address", "", parse_str, "Where offline messages are sent."),
    Setting("log", "level", "info", parse_str, "debug, info, warning or error."),
]

#: Settings by (section, key).
SETTINGS_BY_KEY = {(s.section, s.key): s for s in SETTINGS}


class Config:
    """Parsed settings: ``config.chat_queue_timeout``."""

    def __init__(self, values: dict[tuple[str, str], Any], warnings: list[str]):
        self._values = values
        self.warnings = warnings

    def get(self, section: str, key: str) -> Any:
        return self._values[(section, key)]

    def __getattr__(self, name: str) -> Any:
        section, _, key = name.partition("_")
        try:
            return self._values[(section, key)]
        except KeyError:
            raise AttributeError(name) from None

    def base_url(self, port: int | None = None) -> str:
        """``public_url``, or the listening address when none is configured."""
        if self.server_public_url:
            return self.server_public_url
        host = self.server_host
        if host in ("0.0.0.0", "::", ""):
            host = "127.0.0.1"
        if ":" in host:
            host = f"[{host}]"
        scheme = "https" if self.server_certfile else "http"
        return f"{scheme}://{host}:{port if port is not None else self.server_port}"


def load_config(
    path: str | None = None, overrides: dict[tuple[str, str], str] | None = None
) -> Config:
    """Build a Config from the defaults, an optional ini file and raw string overrides.

    Raises ConfigError naming ``[section] key`` for a value that does not parse. Unknown keys
    and sections do not stop the start; they are returned as warnings naming them.
    """
    raw = {(s.section, s.key): s.default for s in SETTINGS}
    warnings = []
    if path:
        parser = configparser.ConfigParser(interpolation=None, inline_comment_prefixes=None)
        try:
            with open(path, encoding="utf-8") as f:
                parser.read_file(f)
        except (OSError, UnicodeDecodeError, configparser.Error) as e:
            raise ConfigError(f"cannot read {path}: {e}") from None
        for section in parser.sections():
            for key, value in parser.items(section):
                if (section, key) not in raw:
                    warnings.append(f"unknown configuration key [{section}] {key} in {path}")
                    continue
                raw[(section, key)] = value
    for k, v in (overrides or {}).items():
        raw[k] = v
    values = {}
    for (section, key), text in raw.items():
        setting = SETTINGS_BY_KEY[(section, key)]
        try:
            values[(section, key)] = setting.parse(text)
        except ValueError as e:
            raise ConfigError(f"[{section}] {key} = {text!r}: expected {e}") from None
    if values[("mail", "smtp_security")] not in ("none", "starttls", "tls"):
        raise ConfigError("[mail] smtp_security: expected none, starttls or tls")
    if values[("log", "level")] not in ("debug", "info", "warning", "error"):
        raise ConfigError("[log] level: expected debug, info, warning or error")
    return Config(values, warnings)


###############################################################################
# 3. Storage ##################################################################
###############################################################################

# peewee is imported here rather than at the top so that the sections read in order; it is
# still imported once, at module load, with no side effects.
import peewee  # noqa: E402

#: The one database; ``Storage.open`` initialises it with its file and pragmas.
db = peewee.SqliteDatabase(None)


class BaseModel(peewee.Model):
    class Meta:
        database = db
        legacy_table_names = False


class Meta(BaseModel):
    """Key/value rows for generated secrets and the like."""

    key = peewee.TextField(primary_key=True)
    value = peewee.TextField()


class Operator(BaseModel):
    username = peewee.TextField(unique=True)
    display_name = peewee.TextField()
    password_hash = peewee.TextField()
    is_admin = peewee.BooleanField(default=False)
    disabled = peewee.BooleanField(default=False)
    status = peewee.TextField(default=ONLINE)
    created_at = peewee.IntegerField()

    def public(self, presence: str | None = None) -> dict:
        return {
            "id": self.id,
            "username": self.username,
            "display_name": self.display_name,
            "is_admin": bool(self.is_admin),
            "disabled": bool(self.disabled),
            "status": presence if presence is not None else self.status,
        }


class Session(BaseModel):
    token_hash = peewee.TextField(unique=True)
    operator = peewee.ForeignKeyField(Operator, on_delete="CASCADE")
    created_at = peewee.IntegerField()
    expires_at = peewee.IntegerField()
    ip = peewee.TextField(default="")
    user_agent = peewee.TextField(default="")


class Visitor(BaseModel):
    token_hash = peewee.TextField(unique=True)
    created_at = peewee.IntegerField()
    ip = peewee.TextField(default="")
    user_agent = peewee.TextField(default="")


class Chat(BaseModel):
    visitor = peewee.ForeignKeyField(Visitor)
    operator = peewee.ForeignKeyField(Operator, null=True)
    status = peewee.TextField()
    name = peewee.TextField()
    email = peewee.TextField(default="")
    page_url = peewee.TextField(default="")
    page_title = peewee.TextField(default="")
    ip = peewee.TextField(default="")
    user_agent = peewee.TextField(default="")
    created_at = peewee.IntegerField()
    queued_at = peewee.IntegerField()
    accepted_at = peewee.IntegerField(null=True)
    closed_at = peewee.IntegerField(null=True)
    last_seq = peewee.IntegerField(default=0)
    first_message = peewee.TextField(default="")


class Event(BaseModel):
    """A persisted chat event; ``data`` is the event exactly as sent to clients (JSON)."""

    chat = peewee.ForeignKeyField(Chat)
    seq = peewee.IntegerField()
    type = peewee.TextField()
    ts = peewee.IntegerField()
    client_id = peewee.TextField(null=True)
    data = peewee.TextField()


class OfflineMessage(BaseModel):
    visitor = peewee.ForeignKeyField(Visitor, null=True)
    chat = peewee.ForeignKeyField(Chat, null=True)
    name = peewee.TextField()
    email = peewee.TextField()
    text = peewee.TextField()
    page_url = peewee.TextField(default="")
    page_title = peewee.TextField(default="")
    ip = peewee.TextField(default="")
    created_at = peewee.IntegerField()
    read = peewee.BooleanField(default=False)
    client_id = peewee.TextField(null=True)

    def public(self) -> dict:
        return {
            "id": self.id,
            "name": self.name,
            "email": self.email,
            "text": self.text,
            "page_url": self.page_url,
            "page_title": self.page_title,
            "chat_id": self.chat_id,
            "created_at": self.created_at,
            "read": bool(self.read),
        }


class InviteRule(BaseModel):
    """An automatic invitation: conditions on the visit, and the message to show."""

    name = peewee.TextField()
    enabled = peewee.BooleanField(default=True)
    message = peewee.TextField()
    conditions = peewee.TextField(default="{}")  # JSON, see RULE_CONDITIONS
    created_at = peewee.IntegerField()

    def public(self) -> dict:
        return {
            "id": self.id,
            "name": self.name,
            "enabled": bool(self.enabled),
            "message": self.message,
            "conditions": json.loads(self.conditions),
        }

    def matches(self, lv: Any, t: int) -> bool:
        c = getattr(self, "_parsed", None)
        if c is None:
            c = self._parsed = json.loads(self.conditions)
        if "url_contains" in c and c["url_contains"].lower() not in lv.url.lower():
            return False
        if "referrer_contains" in c and c["referrer_contains"].lower() not in lv.referrer.lower():
            return False
        if "min_pages" in c and lv.pages < c["min_pages"]:
            return False
        if "min_time_on_page" in c and t - lv.page_since < c["min_time_on_page"] * 1000:
            return False
        if "min_time_on_site" in c and t - lv.started_at < c["min_time_on_site"] * 1000:
            return False
        if "returning" in c and (lv.visit_number > 1) != c["returning"]:
            return False
        return True


#: Conditions an invitation rule may have: name -> kind.
RULE_CONDITIONS = {
    "url_contains": "str",
    "referrer_contains": "str",
    "min_pages": "count",
    "min_time_on_page": "count",
    "min_time_on_site": "count",
    "returning": "bool",
}


#: Chat columns for the raw query behind ``Storage.chat``.
_CHAT_FIELDS = tuple(f.column_name for f in Chat._meta.sorted_fields)
_CHAT_SQL = ", ".join(_CHAT_FIELDS)


#: Migrations: entry N takes the schema from version N to N+1, in one transaction. Never edit
#: a released step; append a new one.
MIGRATIONS: list[list[str]] = [
    [
        "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
        """CREATE TABLE operator (
            id INTEGER PRIMARY KEY, username TEXT NOT NULL UNIQUE, display_name TEXT NOT NULL,
            password_hash TEXT NOT NULL, is_admin INTEGER NOT NULL DEFAULT 0,
            disabled INTEGER NOT NULL DEFAULT 0, status TEXT NOT NULL DEFAULT 'online',
            created_at INTEGER NOT NULL)""",
        """CREATE TABLE session (
            id INTEGER PRIMARY KEY, token_hash TEXT NOT NULL UNIQUE,
            operator_id INTEGER NOT NULL REFERENCES operator(id) ON DELETE CASCADE,
            created_at INTEGER NOT NULL, expires_at INTEGER NOT NULL,
            ip TEXT NOT NULL DEFAULT '', user_agent TEXT NOT NULL DEFAULT '')""",
        "CREATE INDEX session_operator ON session(operator_id)",
        """CREATE TABLE visitor (
            id INTEGER PRIMARY KEY, token_hash TEXT NOT NULL UNIQUE, created_at INTEGER NOT NULL,
            ip TEXT NOT NULL DEFAULT '', user_agent TEXT NOT NULL DEFAULT '')""",
        """CREATE TABLE chat (
            id INTEGER PRIMARY KEY, visitor_id INTEGER NOT NULL REFERENCES visitor(id),
            operator_id INTEGER REFERENCES operator(id), status TEXT NOT NULL,
            name TEXT NOT NULL, email TEXT NOT NULL DEFAULT '',
            page_url TEXT NOT NULL DEFAULT '', page_title TEXT NOT NULL DEFAULT '',
            ip TEXT NOT NULL DEFAULT '', user_agent TEXT NOT NULL DEFAULT '',
            created_at INTEGER NOT NULL, queued_at INTEGER NOT NULL,
            accepted_at INTEGER, closed_at INTEGER, last_seq INTEGER NOT NULL DEFAULT 0,
            first_message TEXT NOT NULL DEFAULT '')""",
        "CREATE INDEX chat_status ON chat(status)",
        "CREATE INDEX chat_visitor ON chat(visitor_id)",
        "CREATE INDEX chat_operator ON chat(operator_id)",
        """CREATE TABLE event (
            id INTEGER PRIMARY KEY, chat_id INTEGER NOT NULL REFERENCES chat(id),
            seq INTEGER NOT NULL, type TEXT NOT NULL, ts INTEGER NOT NULL, client_id TEXT,
            data TEXT NOT NULL, UNIQUE (chat_id, seq), UNIQUE (chat_id, client_id))""",
        """CREATE TABLE offline_message (
            id INTEGER PRIMARY KEY, visitor_id INTEGER REFERENCES visitor(id),
            chat_id INTEGER REFERENCES chat(id), name TEXT NOT NULL, email TEXT NOT NULL,
            text TEXT NOT NULL, page_url TEXT NOT NULL DEFAULT '',
            page_title TEXT NOT NULL DEFAULT '', ip TEXT NOT NULL DEFAULT '',
            created_at INTEGER NOT NULL, read INTEGER NOT NULL DEFAULT 0)""",
    ],
    [
        """CREATE TABLE visit (
            id INTEGER PRIMARY KEY, visitor_id INTEGER NOT NULL REFERENCES visitor(id),
            number INTEGER NOT NULL, started_at INTEGER NOT NULL, last_seen INTEGER NOT NULL,
            landing_url TEXT NOT NULL DEFAULT '', referrer TEXT NOT NULL DEFAULT '',
            search_terms TEXT NOT NULL DEFAULT '', ip TEXT NOT NULL DEFAULT '',
            user_agent TEXT NOT NULL DEFAULT '', browser TEXT NOT NULL DEFAULT '',
            os TEXT NOT NULL DEFAULT '', device TEXT NOT NULL DEFAULT '',
            country TEXT NOT NULL DEFAULT '', pages INTEGER NOT NULL DEFAULT 0)""",
        "CREATE INDEX visit_visitor ON visit(visitor_id, id)",
        """CREATE TABLE page_view (
            id INTEGER PRIMARY KEY, visit_id INTEGER NOT NULL REFERENCES visit(id),
            visitor_id INTEGER NOT NULL, url TEXT NOT NULL, title TEXT NOT NULL,
            referrer TEXT NOT NULL, ts INTEGER NOT NULL)""",
        "CREATE INDEX page_view_visit ON page_view(visit_id, id)",
        "CREATE INDEX page_view_ts ON page_view(ts)",
        """CREATE TABLE invite_rule (
            id INTEGER PRIMARY KEY, name TEXT NOT NULL, enabled INTEGER NOT NULL DEFAULT 1,
            message TEXT NOT NULL, conditions TEXT NOT NULL DEFAULT '{}',
            created_at INTEGER NOT NULL)""",
    ],
    [
        "ALTER TABLE offline_message ADD COLUMN client_id TEXT",
        "ALTER TABLE visit ADD COLUMN ended_at INTEGER",
        "CREATE UNIQUE INDEX offline_message_client ON offline_message(visitor_id, client_id)",
    ],
]
SCHEMA_VERSION = len(MIGRATIONS)


def token_hash(token: str) -> str:
    """Tokens are stored hashed, so a copy of the database does not hand out live tokens."""
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


class Storage:
    """The database: opening, migrations and every query the services need.

    All calls run on the event-loop thread. Each write is one short transaction, committed
    before the caller publishes anything about it.
    """

    def __init__(self, path: str, synchronous: str = "normal", busy_timeout: float = 5.0):
        self._chats: dict[int, Chat] = {}
        self._operators: dict[int, Operator] = {}
        self.path = path
        self.synchronous = synchronous
        self.busy_timeout = busy_timeout

    def open(self) -> None:
        os.makedirs(os.path.dirname(os.path.abspath(self.path)), exist_ok=True)
        db.init(
            self.path,
            pragmas={
                "journal_mode": "wal",
                "foreign_keys": 1,
                "busy_timeout": int(self.busy_timeout * 1000),
                "synchronous": self.synchronous.upper(),
            },
        )
        db.connect(reuse_if_open=True)
        self.migrate()

    def close(self) -> None:
        if not db.is_closed():
            db.close()

    def migrate(self) -> None:
        version = db.execute_sql("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            raise ConfigError(
                f"the database {self.path} has schema version {version}, newer than this "
                f"program's {SCHEMA_VERSION}; use a newer cutelive"
            )
        for step in range(version, SCHEMA_VERSION):
            with db.atomic():
                for sql in MIGRATIONS[step]:
                    db.execute_sql(sql)
                db.execute_sql(f"PRAGMA user_version = {step + 1}")
            log.info("database migrated to schema version %d", step + 1)

    # -- secrets ------------------------------------------------------------------------------

    def secret(self, key: str, nbytes: int = 32) -> str:
        """A secret generated into the database on first use."""
        row = Meta.get_or_none(Meta.key == key)
        if row is None:
            value = secrets.token_urlsafe(nbytes)
            Meta.insert(key=key, value=value).on_conflict_ignore().execute()
            row = Meta.get(Meta.key == key)
        return row.value

    # -- visitors -----------------------------------------------------------------------------

    def create_visitor(self, token: str, ip: str, user_agent: str) -> Visitor:
        return Visitor.create(
            token_hash=token_hash(token), created_at=now_ms(), ip=ip, user_agent=user_agent
        )

    def visitor_by_token(self, token: str) -> Visitor | None:
        return Visitor.get_or_none(Visitor.token_hash == token_hash(token))

    def visitor_by_id(self, visitor_id: int) -> Visitor | None:
        return Visitor.get_or_none(Visitor.id == visitor_id)

    # -- chats and events ---------------------------------------------------------------------

    def chat(self, chat_id: int) -> Chat | None:
        """A chat by id, from a cache in front of the table (the hot path reads it per message).

        Every write to a chat goes through this class, which keeps the cached object current.
        """
        c = self._chats.get(chat_id)
        if c is None:
            sql = f"SELECT {_CHAT_SQL} FROM chat WHERE id = ?"
            row = db.execute_sql(sql, (chat_id,)).fetchone()
            if row is None:
                return None
            c = Chat(**dict(zip(_CHAT_FIELDS, row, strict=True)))
            if len(self._chats) >= 20_000:
                del self._chats[next(iter(self._chats))]
            self._chats[chat_id] = c
        return c

    def open_chats(self) -> list[Chat]:
        return list(Chat.select().where(Chat.status.in_(OPEN_STATUSES)).order_by(Chat.id))

    def visitor_chats(self, visitor_id: int, open_only: bool = False) -> list[Chat]:
        # Raw SQL: every visitor hello asks this twice (monitor, replay), and after a restart
        # 10,000 hellos come at once; building the query with peewee cost more than running it.
        if open_only:
            sql = "SELECT * FROM chat WHERE visitor_id = ? AND status IN (?, ?) ORDER BY id DESC"
            return list(Chat.raw(sql, visitor_id, *OPEN_STATUSES))
        sql = "SELECT * FROM chat WHERE visitor_id = ? ORDER BY id DESC"
        return list(Chat.raw(sql, visitor_id))

    def operator_chats(self, operator_id: int, open_only: bool = True) -> list[Chat]:
        q = Chat.select().where(Chat.operator == operator_id)
        if open_only:
            q = q.where(Chat.status.in_(OPEN_STATUSES))
        return list(q.order_by(Chat.id))

    def list_chats(self, status: str | None, operator_id: int | None, limit: int, before: int):
        q = Chat.select()
        if status:
            q = q.where(Chat.status == status)
        if operator_id is not None:
            q = q.where(Chat.operator == operator_id)
        if before:
            q = q.where(Chat.id < before)
        return list(q.order_by(Chat.id.desc()).limit(limit))

    def events_after(self, chat_id: int, after: int) -> list[str]:
        """The stored JSON of the chat's events with ``seq > after``, in order."""
        cur = db.execute_sql(
            "SELECT data FROM event WHERE chat_id = ? AND seq > ? ORDER BY seq", (chat_id, after)
        )
        return [row[0] for row in cur.fetchall()]

    def event_by_client_id(self, chat_id: int, client_id: str) -> str | None:
        row = db.execute_sql(
            "SELECT data FROM event WHERE chat_id = ? AND client_id = ?", (chat_id, client_id)
        ).fetchone()
        return row[0] if row else None

    def append_events(
        self, chat: Chat, events: list[dict], chat_changes: dict | None = None
    ) -> list[tuple[dict, str]]:
        """Store events (and optional chat column changes) in one transaction.

        Each event gets the chat's next ``seq``; returns ``(event, json)`` pairs in order. The
        caller publishes them only after this returns, i.e. after the commit.
        """
        out = []
        with db.atomic():
            seq = db.execute_sql("SELECT last_seq FROM chat WHERE id = ?", (chat.id,)).fetchone()[0]
            for ev in events:
                seq += 1
                ev["chat_id"] = chat.id
                ev["seq"] = seq
                ev.setdefault("ts", now_ms())
                text = json.dumps(ev, ensure_ascii=False, separators=(", ", ": "))
                db.execute_sql(
                    "INSERT INTO event (chat_id, seq, type, ts, client_id, data) "
                    "VALUES (?, ?, ?, ?, ?, ?)",
                    (chat.id, seq, ev["type"], ev["ts"], ev.get("client_id"), text),
                )
                out.append((ev, text))
            changes = {
                ("operator_id" if k == "operator" else k): v
                for k, v in (chat_changes or {}).items()
            }
            changes["last_seq"] = seq
            db.execute_sql(
                "UPDATE chat SET " + ", ".join(f"{k} = ?" for k in changes) + " WHERE id = ?",
                (*changes.values(), chat.id),
            )
        cached = self._chats.get(chat.id)
        # (Models compare equal by id, so no set here: both objects must change.)
        for obj in (chat, cached) if cached is not None and cached is not chat else (chat,):
            for k, v in changes.items():
                setattr(obj, k, v)
        return out

    def create_chat(self, **fields) -> Chat:
        return Chat.create(**fields)

    def claim_chat(self, chat_id: int, operator_id: int, at: int) -> bool:
        """Atomically assign a waiting chat; False when it is no longer waiting."""
        n = (
            Chat.update(operator=operator_id, status=ACTIVE, accepted_at=at)
            .where((Chat.id == chat_id) & (Chat.status == WAITING))
            .execute()
        )
        self._chats.pop(chat_id, None)
        return n == 1

    # -- operators and sessions ---------------------------------------------------------------

    def operator_count(self) -> int:
        return Operator.select().count()

    def operator(self, operator_id: int) -> Operator | None:
        """An operator by id, cached; change operators only through ``update_operator``."""
        op = self._operators.get(operator_id)
        if op is None:
            op = Operator.get_or_none(Operator.id == operator_id)
            if op is not None:
                self._operators[operator_id] = op
        return op

    def update_operator(self, operator_id: int, **changes: Any) -> None:
        Operator.update(**changes).where(Operator.id == operator_id).execute()
        self._operators.pop(operator_id, None)

    def operator_by_username(self, username: str) -> Operator | None:
        return Operator.get_or_none(Operator.username == username)

    def operators(self) -> list[Operator]:
        return list(Operator.select().order_by(Operator.id))

    def create_session(self, token: str, operator_id: int, lifetime: float, ip: str, ua: str):
        t = now_ms()
        return Session.create(
            token_hash=token_hash(token),
            operator=operator_id,
            created_at=t,
            expires_at=t + int(lifetime * 1000),
            ip=ip,
            user_agent=ua,
        )

    def session_by_token(self, token: str) -> Session | None:
        s = Session.get_or_none(Session.token_hash == token_hash(token))
        if s is not None and s.expires_at < now_ms():
            s.delete_instance()
            return None
        return s

    def delete_sessions(self, operator_id: int, keep_session_id: int | None = None) -> list[int]:
        q = Session.select(Session.id).where(Session.operator == operator_id)
        if keep_session_id is not None:
            q = q.where(Session.id != keep_session_id)
        ids = [s.id for s in q]
        if ids:
            Session.delete().where(Session.id.in_(ids)).execute()
        return ids


###############################################################################
# 4. Hub ######################################################################
###############################################################################


class Hub:
    """In-process publish/subscribe from topics to subscribers.

    A subscriber is anything with ``deliver(text, event)``. Each event is encoded once and the
    same text goes to every subscriber. Topics used: ``v:ID`` (a visitor's streams), ``visitors``
    (all visitor streams), ``op:ID`` (an operator's streams), ``ops`` (all operator streams).
    To scale out, a Redis-backed hub with the same three methods forwards ``publish`` to the
    other processes.
    """

    def __init__(self) -> None:
        self._subs: dict[str, set] = {}
        self._topics: dict[Any, set[str]] = {}

    def subscribe(self, sub: Any, *topics: str) -> None:
        mine = self._topics.setdefault(sub, set())
        for t in topics:
            self._subs.setdefault(t, set()).add(sub)
            mine.add(t)

    def unsubscribe(self, sub: Any) -> None:
        for t in self._topics.pop(sub, ()):
            subs = self._subs.get(t)
            if subs is not None:
                subs.discard(sub)
                if not subs:
                    del self._subs[t]

    def all_subscribers(self) -> list:
        return list(self._topics)

    def count(self, topic: str) -> int:
        return len(self._subs.get(topic, ()))

    def publish(self, topics: Iterable[str], event: dict, text: str | None = None) -> None:
        """Send one event to the subscribers of any of the topics, once each."""
        if text is None:
            text = encode(event)
        seen = set()
        for t in topics:
            for sub in list(self._subs.get(t, ())):
                if sub not in seen:
                    seen.add(sub)
                    sub.deliver(text, event)


class LagMonitor:
    """Measures the event loop's own lateness: a timer every ``interval`` notes how late it ran.

    Garbage-collection pauses and blocking calls show up here. ``snapshot(reset=True)`` returns
    the figures since the last reset.
    """

    def __init__(self, call_later, interval: float = 0.05):
        self.call_later = call_later
        self.interval = interval
        self._due = 0.0
        self.samples: list[float] = []
        self.max_ms = 0.0
        self._handle = None

    def start(self) -> None:
        self._due = time.monotonic() + self.interval
        self._handle = self.call_later(self.interval, self._tick)

    def stop(self) -> None:
        if self._handle is not None:
            self._handle.cancel()

    def _tick(self) -> None:
        now = time.monotonic()
        lag = max(0.0, (now - self._due) * 1000)
        if len(self.samples) < 100_000:
            self.samples.append(lag)
        self.max_ms = max(self.max_ms, lag)
        self._due = now + self.interval
        self._handle = self.call_later(self.interval, self._tick)

    def snapshot(self, reset: bool = False) -> dict:
        xs = sorted(self.samples)

        def pct(p: float) -> float:
            return round(xs[min(len(xs) - 1, int(p * len(xs)))], 2) if xs else 0.0

        out = {
            "samples": len(xs),
            "p50_ms": pct(0.5),
            "p99_ms": pct(0.99),
            "max_ms": round(self.max_ms, 2),
        }
        if reset:
            self.samples = []
            self.max_ms = 0.0
        return out


def encode(event: dict) -> str:
    return json.dumps(event, ensure_ascii=False, separators=(", ", ": "))


class RateLimiter:
    """Token buckets per key: ``count`` events per ``period`` seconds, bursts up to ``count``."""

    def __init__(self, count: int, period: float):
        self.count = count
        self.rate = count / period if period > 0 else float("inf")
        self._buckets: dict[Any, list[float]] = {}

    def hit(self, key: Any, now: float | None = None) -> float:
        """Take one token; returns 0 when allowed, else the seconds until one is free."""
        now = time.monotonic() if now is None else now
        b = self._buckets.get(key)
        if b is None:
            b = self._buckets[key] = [float(self.count), now]
        tokens = min(self.count, b[0] + (now - b[1]) * self.rate)
        b[1] = now
        if tokens >= 1:
            b[0] = tokens - 1
            return 0.0
        b[0] = tokens
        return (1 - tokens) / self.rate

    def forget_idle(self, now: float | None = None) -> None:
        """Drop full buckets so that memory stays bounded by the active keys."""
        now = time.monotonic() if now is None else now
        full = [
            k for k, b in self._buckets.items() if b[0] + (now - b[1]) * self.rate >= self.count
        ]
        for k in full:
            del self._buckets[k]


###############################################################################
# 5. Services #################################################################
###############################################################################


class ApiError(Exception):
    """A client error with a code from docs/PROTOCOL.md §8; never logged as a server fault."""

    def __init__(self, code: str, message: str, status: int = 400, **extra: Any):
        # Messages and fields may quote what the client sent (a field name, say); a lone
        # surrogate in it could not be encoded as UTF-8, so it is shown escaped.
        message = _echoable_text(message)
        super().__init__(message)
        self.code = code
        self.message = message
        self.status = status
        self.extra = {k: _echoable_text(v) for k, v in extra.items()}

    def event(self, ref: Any = None) -> dict:
        return {
            "type": "error",
            "ref": ref,
            "error": self.code,
            "message": self.message,
            **self.extra,
        }


def _echoable_text(value: Any) -> Any:
    """A string the server can send back: lone surrogates become ``\\udXXX`` escapes."""
    if isinstance(value, str):
        return value.encode("utf-8", "backslashreplace").decode("utf-8")
    return value


def _request_id_ok(ref: Any) -> bool:
    """A request ``id`` the server echoes in ``ref``: a string of up to 64 characters."""
    if not isinstance(ref, str) or len(ref) > MAX_REQUEST_ID_CHARS:
        return False
    return _echoable_text(ref) == ref


@dataclass(eq=False)
class Party:
    """Who is talking: a visitor (by token) or an operator (by console session)."""

    role: str  # "visitor" or "operator"
    visitor_id: int | None = None
    operator_id: int | None = None
    session_id: int | None = None
    ip: str = ""
    user_agent: str = ""

    @property
    def topic(self) -> str:
        return f"v:{self.visitor_id}" if self.role == "visitor" else f"op:{self.operator_id}"


_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")
_CONTROL_TEXT = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")
_EMAIL = re.compile(r"[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)+")
_USERNAME = re.compile(r"[a-z0-9._-]{1,64}")

#: Fields the server owns; a client sending them gets ``forbidden_field``.
FORBIDDEN_FIELDS = {"seq", "status", "operator_id", "visitor_id"}


def _check_string(name: str, value: Any, limit: int, *, text: bool = False, empty=False) -> str:
    if not isinstance(value, str):
        raise ApiError("invalid_field", f"'{name}' must be a string", field=name)
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ApiError("invalid_field", f"'{name}' is not valid Unicode", field=name) from None
    if text:
        value = value.replace("\r\n", "\n").replace("\r", "\n")
        if _CONTROL_TEXT.search(value):
            raise ApiError("invalid_field", f"'{name}' contains control characters", field=name)
    elif _CONTROL.search(value):
        raise ApiError("invalid_field", f"'{name}' contains control characters", field=name)
    if not text:
        value = value.strip()
    if not empty and not value.strip():
        raise ApiError("invalid_field", f"'{name}' must not be empty", field=name)
    if len(value) > limit:
        raise ApiError(
            "too_long",
            f"'{name}' is {len(value)} characters; the limit is {limit}",
            field=name,
            limit=limit,
        )
    return value


def _check_int(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 < value < 2**62:
        raise ApiError("invalid_field", f"'{name}' must be a positive whole number", field=name)
    return value


def _check_cursors(name: str, value: Any, limit: int = 1000) -> dict[int, int]:
    if not isinstance(value, dict):
        raise ApiError("invalid_field", "'cursors' must be an object of chat id to seq", field=name)
    if len(value) > limit:
        raise ApiError(
            "too_long", f"'cursors' names more than {limit} chats", field=name, limit=limit
        )
    out = {}
    for k, v in value.items():
        if not (isinstance(k, str) and k.isascii() and k.isdigit() and 0 < int(k) < 2**62):
            raise ApiError("invalid_field", f"cursor key {k!r} is not a chat id", field=name)
        if isinstance(v, bool) or not isinstance(v, int) or not 0 <= v < 2**62:
            raise ApiError("invalid_field", f"cursor for chat {k} must be a seq ≥ 0", field=name)
        out[int(k)] = v
    return out


def _check_bool(name: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise ApiError("invalid_field", f"'{name}' must be true or false", field=name)
    return value


class Validator:
    """Field checks for commands and API bodies, with the configured limits."""

    def __init__(self, config: Config):
        self.message_chars = config.limits_message_chars
        self.name_chars = config.limits_name_chars
        self.email_chars = config.limits_email_chars

    def kind(self, kind: str, name: str, value: Any) -> Any:
        if kind == "text":
            return _check_string(name, value, self.message_chars, text=True)
        if kind == "name":
            return _check_string(name, value, self.name_chars)
        if kind == "conditions":
            return self.conditions(name, value)
        if kind == "invitation":
            return _check_string(name, value, 500, text=True, empty=True)
        if kind == "email":
            return self.email(name, value)
        if kind == "email?":
            return self.email(name, value) if value not in ("", None) else ""
        if kind == "url":
            return _check_string(name, value, MAX_URL_CHARS, empty=True)
        if kind == "title":
            return _check_string(name, value, MAX_TITLE_CHARS, empty=True)
        if kind == "client_id":
            return _check_string(name, value, MAX_CLIENT_ID_CHARS)
        if kind == "token":
            return _check_string(name, value, 256)
        if kind == "int":
            return _check_int(name, value)
        if kind == "bool":
            return _check_bool(name, value)
        if kind == "cursors":
            return _check_cursors(name, value)
        if kind == "visitor_cursors":  # a visitor has few chats; each costs a lookup
            return _check_cursors(name, value, 100)
        if kind == "status":
            if value not in (ONLINE, AWAY, OFFLINE):
                raise ApiError(
                    "invalid_field", "'status' must be online, away or offline", field=name
                )
            return value
        if kind in ("password", "secret"):
            # Taken exactly as typed: no stripping, any printable characters.
            if not isinstance(value, str):
                raise ApiError("invalid_field", f"'{name}' must be a string", field=name)
            if kind == "password" and len(value) < MIN_PASSWORD_CHARS:
                raise ApiError(
                    "invalid_field",
                    f"'{name}' must have at least {MIN_PASSWORD_CHARS} characters",
                    field=name,
                )
            if len(value) > MAX_PASSWORD_CHARS:
                raise ApiError(
                    "too_long",
                    f"'{name}' is {len(value)} characters; the limit is {MAX_PASSWORD_CHARS}",
                    field=name,
                    limit=MAX_PASSWORD_CHARS,
                )
            if "\x00" in value or _echoable_text(value) != value:
                raise ApiError("invalid_field", f"'{name}' is not valid text", field=name)
            return value
        if kind == "username":
            v = _check_string(name, value, 64)
            if not _USERNAME.fullmatch(v):
                raise ApiError(
                    "invalid_field",
                    "'username' may only contain a-z, 0-9, '.', '_' and '-'",
                    field=name,
                )
            return v
        raise AssertionError(kind)

    def conditions(self, name: str, value: Any) -> dict:
        if not isinstance(value, dict):
            raise ApiError("invalid_field", "'conditions' must be an object", field=name)
        out: dict[str, Any] = {}
        for k, v in value.items():
            kind = RULE_CONDITIONS.get(k)
            if kind is None:
                raise ApiError(
                    "unknown_field",
                    f"'{k}' is not a rule condition; use " + ", ".join(RULE_CONDITIONS),
                    field=f"conditions.{k}",
                )
            if kind == "str":
                out[k] = _check_string(f"conditions.{k}", v, 500)
            elif kind == "bool":
                out[k] = _check_bool(f"conditions.{k}", v)
            elif isinstance(v, bool) or not isinstance(v, int) or not 0 <= v <= 10**6:
                raise ApiError(
                    "invalid_field", f"'{k}' must be a whole number ≥ 0", field=f"conditions.{k}"
                )
            else:
                out[k] = v
        return out

    def email(self, name: str, value: Any) -> str:
        v = _check_string(name, value, self.email_chars)
        if not _EMAIL.fullmatch(v):
            raise ApiError("invalid_field", f"'{name}' is not a valid e-mail address", field=name)
        return v

    def fields(self, obj: Any, schema: dict[str, tuple[str, bool]], what: str) -> dict:
        """Check a JSON object against ``{field: (kind, required)}``; unknown fields refused."""
        if not isinstance(obj, dict):
            raise ApiError("bad_json", "expected a JSON object")
        for k in obj:
            if k in schema or k in ("type", "id"):
                continue
            if k in FORBIDDEN_FIELDS:
                raise ApiError("forbidden_field", f"'{k}' is set by the server", field=k)
            raise ApiError("unknown_field", f"'{k}' is not a field of {what}", field=k)
        out = {}
        for k, (kind, required) in schema.items():
            if k not in obj or obj[k] is None and not required:
                if required:
                    raise ApiError("invalid_field", f"'{k}' is required", field=k)
                continue
            out[k] = self.kind(kind, k, obj[k])
        return out


#: The commands each party may send, with their fields: ``{field: (kind, required)}``.
COMMANDS: dict[str, dict[str, dict[str, tuple[str, bool]]]] = {
    "visitor": {
        "hello": {"token": ("token", True), "cursors": ("visitor_cursors", False)},
        "sync": {"cursors": ("visitor_cursors", True)},
        "ping": {},
        "start_chat": {
            "name": ("name", True),
            "email": ("email?", False),
            "text": ("text", True),
            "client_id": ("client_id", True),
            "page_url": ("url", False),
            "page_title": ("title", False),
        },
        "message": {
            "chat_id": ("int", True),
            "text": ("text", True),
            "client_id": ("client_id", True),
        },
        "typing": {"chat_id": ("int", True), "typing": ("bool", True)},
        "close": {"chat_id": ("int", True)},
        "accept_invitation": {
            "invitation_id": ("token", True),
            "name": ("name", False),
            "email": ("email?", False),
            "text": ("text", False),
            "client_id": ("client_id", False),
            "page_url": ("url", False),
            "page_title": ("title", False),
        },
        "decline_invitation": {"invitation_id": ("token", True)},
        "leave_message": {
            "name": ("name", True),
            "email": ("email", True),
            "text": ("text", True),
            "page_url": ("url", False),
            "page_title": ("title", False),
            "chat_id": ("int", False),
            "client_id": ("client_id", False),
        },
    },
    "operator": {
        "hello": {"cursors": ("cursors", False)},
        "sync": {"cursors": ("cursors", True)},
        "ping": {},
        "message": {
            "chat_id": ("int", True),
            "text": ("text", True),
            "client_id": ("client_id", True),
        },
        "typing": {"chat_id": ("int", True), "typing": ("bool", True)},
        "close": {"chat_id": ("int", True)},
        "accept": {"chat_id": ("int", True)},
        "invite": {"visitor_id": ("int", True), "message": ("invitation", False)},
        "status": {"status": ("status", True)},
    },
}


#: Widget appearance an administrator may set in the console: key -> (kind, limit). Only these
#: keys are stored and served to the widget (``GET /api/widget/config``).
APPEARANCE: dict[str, tuple[str, int]] = {
    "color": ("color", 32),
    "color_text": ("color", 32),
    "position": ("position", 32),
    "image_online": ("image", MAX_URL_CHARS),
    "image_offline": ("image", MAX_URL_CHARS),
    "title": ("line", 100),
    "button_online": ("line", 100),
    "button_offline": ("line", 100),
    "button_start": ("line", 40),
    "button_send": ("line", 40),
    "greeting": ("para", 500),
    "waiting": ("para", 500),
    "offline_prompt": ("para", 500),
    "thanks": ("para", 500),
}


def _check_appearance(key: str, value: Any) -> str:
    kind, limit = APPEARANCE[key]
    field_name = f"appearance.{key}"
    v = _check_string(field_name, value, limit, text=kind == "para", empty=True).strip()
    if not v:
        return ""
    if kind == "color" and not re.fullmatch(r"#[0-9a-fA-F]{3}|#[0-9a-fA-F]{6}", v):
        raise ApiError("invalid_field", f"'{key}' must be a colour like #4f46e5", field=field_name)
    if kind == "position" and v not in ("left", "right"):
        raise ApiError("invalid_field", f"'{key}' must be left or right", field=field_name)
    if kind == "image":
        u = split_url(v)
        if not (u is not None and u.scheme in ("http", "https") and u.netloc) and not (
            v.startswith("/") and not v.startswith("//")
        ):
            raise ApiError(
                "invalid_field",
                f"'{key}' must be an http(s) URL or a path on this server",
                field=field_name,
            )
    return v


class PollConn:
    """A long-poll connection: events collected between polls, and the poll waiting for them."""

    def __init__(self, conn_id: str, party: Party):
        self.id = conn_id
        self.party = party
        self.buffer: list[tuple[str, dict | None]] = []
        self.overflow = False
        self.delivered: dict[int, int] = {}
        self.waiter: asyncio.Future | None = None
        self.last_poll = time.monotonic()
        self.closed = False

    def deliver(self, text: str, event: dict | None) -> None:
        if len(self.buffer) >= POLL_BUFFER_MAX:
            # Chat events come back from the database by the cursors, and snapshots are sent
            # afresh (see Services.poll_collect); of the rest, keep the newest.
            self.overflow = True
            rest = [(t, e) for t, e in self.buffer if not (e and "seq" in e)]
            self.buffer = rest[-POLL_BUFFER_MAX // 2 :]
        self.buffer.append((text, event))
        self.wake()

    def wake(self) -> None:
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_result(None)

    def close(self, code: int, reason: str = "") -> None:
        self.closed = True
        self.wake()


class FdGuard:
    """Keeps the process below its open-file limit: refuse new work before ``accept`` fails.

    Counting ``/proc/self/fd`` costs a few milliseconds at 20,000 files, so the count is
    estimated from the last real count plus the connections accepted since, and recounted
    only when the estimate nears the cap (and then at most every 100 ms).
    """

    def __init__(self, soft_ratio: float = 0.9, hard_ratio: float = 0.97):
        try:
            import resource

            soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
            if hard != resource.RLIM_INFINITY and soft < hard:
                resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
                soft = hard
        except (ImportError, ValueError, OSError):
            soft = 1024
        self.limit = soft if soft > 0 else 1024
        self.soft_cap = int(self.limit * soft_ratio)
        self.hard_cap = int(self.limit * hard_ratio)
        self._count = self._real_count()
        self._counted_at = time.monotonic()
        self._since = 0
        self._logged = 0.0

    @staticmethod
    def _real_count() -> int:
        try:
            return len(os.listdir("/proc/self/fd"))
        except OSError:
            return 0

    def accepted(self) -> None:
        self._since += 1

    def estimate(self) -> int:
        est = self._count + self._since
        now = time.monotonic()
        if (est >= self.soft_cap or now - self._counted_at > 5) and now - self._counted_at > 0.1:
            self._count = self._real_count()
            self._counted_at = now
            self._since = 0
            est = self._count
        return est

    def full(self, hard: bool = False) -> bool:
        n = self.estimate()
        if n < (self.hard_cap if hard else self.soft_cap):
            return False
        now = time.monotonic()
        if now - self._logged > 60:
            self._logged = now
            log.warning(
                "%d of %d files open: refusing new connections (server_full)", n, self.limit
            )
        return True


class Mailer:
    """Sends notification e-mail through the configured SMTP server, off the event loop."""

    def __init__(self, config: Config):
        self.host = config.mail_smtp_host
        self.port = config.mail_smtp_port
        self.security = config.mail_smtp_security
        self.username = config.mail_smtp_username
        self.password = config.mail_smtp_password
        self.from_address = config.mail_from_address
        self.to_address = config.mail_to_address

    @property
    def enabled(self) -> bool:
        return bool(self.host and self.to_address)

    #: The only headers a notification may have; anything else means an injection attempt.
    HEADERS = {
        b"subject",
        b"from",
        b"to",
        b"reply-to",
        b"date",
        b"message-id",
        b"content-type",
        b"content-transfer-encoding",
        b"mime-version",
    }

    def offline_message(self, msg: OfflineMessage, base_url: str) -> email.message.EmailMessage:
        """The notification for an offline message; raises ApiError if it cannot be made safe.

        Visitors control the name and address. The validator refuses control characters, and
        the email package would decode an RFC 2047 encoded word (``=?utf-8?q?=0D=0A...?=``)
        back into a line break on output, so encoded-word openers are broken up here, and the
        finished header block is checked to hold exactly the headers written.
        """
        name = msg.name.replace("=?", "=\u200b?")
        m = email.message.EmailMessage()
        m["Subject"] = f"Offline message from {name}"
        m["From"] = self.from_address or f"cutelive@{socket.gethostname()}"
        m["To"] = self.to_address
        try:
            m["Reply-To"] = email.headerregistry.Address(display_name=name, addr_spec=msg.email)
        except (ValueError, IndexError, email.errors.HeaderParseError):
            raise ApiError(
                "invalid_field", "'email' cannot be used as a reply address", field="email"
            ) from None
        m["Date"] = email.utils.formatdate(localtime=True)
        m["Message-ID"] = email.utils.make_msgid(domain="cutelive")
        lines = [
            f"Name: {msg.name}",
            f"E-mail: {msg.email}",
            f"Page: {msg.page_url or '-'}",
            "",
            msg.text,
            "",
            f"-- \nCute Live Support, {base_url}/console/",
        ]
        m.set_content("\n".join(lines))
        try:
            head = m.as_bytes(policy=email.policy.SMTP).split(b"\r\n\r\n", 1)[0]
        except (ValueError, UnicodeError, email.errors.MessageError):
            head = b"?"
        names = [
            line.split(b":", 1)[0].strip().lower()
            for line in head.split(b"\r\n")
            if line and not line[:1].isspace()
        ]
        if len(names) != len(set(names)) or not set(names) <= self.HEADERS:
            raise ApiError(
                "invalid_field",
                "the name or e-mail address cannot be put in an e-mail",
                field="name",
            )
        return m

    def send(self, m: email.message.EmailMessage) -> None:
        if self.security == "tls":
            smtp = smtplib.SMTP_SSL(self.host, self.port, timeout=20)
        else:
            smtp = smtplib.SMTP(self.host, self.port, timeout=20)
        try:
            if self.security == "starttls":
                smtp.starttls(context=ssl.create_default_context())
            if self.username:
                smtp.login(self.username, self.password)
            smtp.send_message(m)
        finally:
            try:
                smtp.quit()
            except smtplib.SMTPException:
                pass


class Services:
    """The domain operations. Handlers and tests call these; nothing here knows about HTTP.

    ``call_later(delay, fn)`` schedules timers (the event loop's in the server) and
    ``run_blocking(fn, *args)`` runs slow work (password hashing, SMTP) off the loop and
    returns an awaitable.
    """

    def __init__(self, config: Config, storage: Storage, hub: Hub, call_later, run_blocking):
        self.config = config
        self.storage = storage
        self.hub = hub
        self.call_later = call_later
        self.run_blocking = run_blocking
        self.validate = Validator(config)
        self.mailer = Mailer(config)
        self.base_url = config.base_url()
        self.setup_token: str | None = None
        # Presence: an operator is present while it has a stream, or during the grace after its
        # last one closed; ``present`` maps present operators to their chosen status.
        self.present: dict[int, str] = {}
        self._grace: dict[int, Any] = {}
        self._session_streams: dict[int, set] = {}
        self.poll_conns: dict[str, PollConn] = {}
        self._waiting: dict[int, int] = {}  # waiting chat id -> queued_at (ms)
        self._typing_sent: dict[tuple[int, str], float] = {}
        self._queue_dirty = False
        self._online = False
        self._ticks = 0
        self._settings: dict | None = None
        self.fd_guard = FdGuard()
        self.lag = LagMonitor(call_later)
        self.monitor = Monitor(self)
        lim = config
        self.rl_messages = RateLimiter(*lim.limits_visitor_messages)
        self.rl_chats = RateLimiter(*lim.limits_chats_per_ip)
        self.rl_requests = RateLimiter(*lim.limits_requests_per_ip)
        self.rl_frames = RateLimiter(*lim.limits_commands_per_socket)
        self.sockets_per_ip: collections.Counter = collections.Counter()
        n, period = config.operators_login_failures
        self._login_fail_account = (n, period)
        self._login_fail_ip = config.operators_login_failures_per_ip
        self._login_failures: dict[str, collections.deque] = {}
        self._login_ip_failures: dict[str, collections.deque] = {}
        self._locked_until: dict[str, float] = {}
        import argon2  # a runtime dependency; imported here so that imports stay cheap

        self._hasher = argon2.PasswordHasher()
        self._argon2 = argon2
        self._dummy_hash = self._hasher.hash(secrets.token_hex(8))

    # -- lifecycle ----------------------------------------------------------------------------

    def start(self) -> None:
        """Load what lives in memory from the database after a (re)start."""
        for chat in self.storage.open_chats():
            if chat.status == WAITING:
                self._waiting[chat.id] = chat.queued_at
            elif chat.operator_id and chat.operator_id not in self.present:
                # Its operator will reconnect after the restart; if not, the grace requeues.
                op = self.storage.operator(chat.operator_id)
                self.present[chat.operator_id] = op.status if op else OFFLINE
                self._start_grace(chat.operator_id)
        self._online = self.any_online()
        if self.storage.operator_count() == 0:
            self.setup_token = secrets.token_urlsafe(16)

    def tick(self) -> None:
        """Once a second: queue timeouts, forgotten long-poll connections, idle rate buckets."""
        now = now_ms()
        limit = int(self.config.chat_queue_timeout * 1000)
        for chat_id, queued_at in list(self._waiting.items()):
            if now - queued_at >= limit:
                self.miss_chat(chat_id)
        mono = time.monotonic()
        expiry = self.config.realtime_poll_timeout + 30
        for conn in list(self.poll_conns.values()):
            if conn.waiter is None and mono - conn.last_poll > expiry:
                self.drop_poll_conn(conn)
        self.monitor.tick()
        self._ticks += 1
        if self._ticks % 5 == 0 and self._session_streams:
            self._end_vanished_sessions()
        if self._ticks % 60 == 0:
            for rl in (
                self.rl_messages,
                self.rl_chats,
                self.rl_requests,
                self.monitor.rl_beacons,
                self.monitor.rl_invites,
                self.rl_frames,
            ):
                rl.forget_idle(mono)
            self._forget_login_failures(mono)

    def _end_vanished_sessions(self) -> None:
        """Close streams whose session row is gone (``cutelive passwd``, expiry, another tool)."""
        ids = list(self._session_streams)
        alive = {
            s.id
            for s in Session.select(Session.id, Session.operator, Session.expires_at).where(
                Session.id.in_(ids)
            )
            if s.expires_at > now_ms()
        }
        for sid in ids:
            if sid not in alive:
                streams = list(self._session_streams.get(sid, ()))
                if streams:
                    self.end_sessions(streams[0].party.operator_id, "expired", only_session_id=sid)

    # -- presence -----------------------------------------------------------------------------

    def effective_status(self, operator_id: int) -> str:
        return self.present.get(operator_id, OFFLINE)

    def any_online(self) -> bool:
        return any(s == ONLINE for s in self.present.values())

    def _presence_changed(self) -> None:
        self.hub.publish(["ops"], self.operators_event())
        online = self.any_online()
        if online != self._online:
            self._online = online
            self.hub.publish(["visitors"], {"type": "availability", "online": online})

    def operators_event(self) -> dict:
        ops = []
        for op_id, status in sorted(self.present.items()):
            op = self.storage.operator(op_id)
            if op is not None and status != OFFLINE:
                ops.append({"id": op.id, "display_name": op.display_name, "status": status})
        return {"type": "operators", "operators": ops}

    def _start_grace(self, operator_id: int) -> None:
        self._cancel_grace(operator_id)
        self._grace[operator_id] = self.call_later(
            self.config.operators_offline_grace, lambda: self._grace_over(operator_id)
        )

    def _cancel_grace(self, operator_id: int) -> None:
        h = self._grace.pop(operator_id, None)
        if h is not None:
            h.cancel()

    def _grace_over(self, operator_id: int) -> None:
        self._grace.pop(operator_id, None)
        if self.hub.count(f"op:{operator_id}") == 0:
            self.operator_gone(operator_id)

    def operator_gone(self, operator_id: int) -> None:
        """The operator is offline: drop its presence and return its open chats to the queue."""
        self._cancel_grace(operator_id)
        self.present.pop(operator_id, None)
        self._requeue_chats_of(operator_id)
        self._presence_changed()

    def _requeue_chats_of(self, operator_id: int) -> None:
        op = self.storage.operator(operator_id)
        who = {"id": operator_id, "name": op.display_name if op else ""}
        for chat in self.storage.operator_chats(operator_id):
            if chat.status != ACTIVE:
                continue
            t = now_ms()
            pairs = self.storage.append_events(
                chat,
                [{"type": "chat_requeued", "ts": t, "reason": "operator_offline", "operator": who}],
                {"status": WAITING, "operator": None, "queued_at": t, "accepted_at": None},
            )
            self._publish_chat_events(chat, pairs, extra_topics=[f"op:{operator_id}"])
            self._waiting[chat.id] = t
            self._queue_changed()

    # -- streams ------------------------------------------------------------------------------

    def attach(self, stream: Any, party: Party) -> None:
        """Subscribe a stream (WebSocket or PollConn) to its party's topics."""
        if party.role == "visitor":
            self.hub.subscribe(stream, party.topic, "visitors")
            self.monitor.stream_opened(party)
            return
        op_id = party.operator_id
        self.hub.subscribe(stream, party.topic, "ops")
        self._session_streams.setdefault(party.session_id, set()).add(stream)
        self._cancel_grace(op_id)
        if op_id not in self.present:
            op = self.storage.operator(op_id)
            self.present[op_id] = op.status
            self._presence_changed()

    def detach(self, stream: Any, party: Party) -> None:
        self.hub.unsubscribe(stream)
        if party.role != "operator":
            self.monitor.stream_closed(party)
            return
        streams = self._session_streams.get(party.session_id)
        if streams is not None:
            streams.discard(stream)
            if not streams:
                del self._session_streams[party.session_id]
        if self.hub.count(party.topic) == 0 and party.operator_id in self.present:
            self._start_grace(party.operator_id)

    def welcome(self, party: Party, cursors: dict[int, int]) -> list[tuple[str, dict | None]]:
        """What a newly identified stream gets: ``welcome``, snapshots, then the replay."""
        replay, chats = self.replay(party, cursors)
        ev: dict[str, Any] = {
            "type": "welcome",
            "role": party.role,
            "heartbeat": self.config.realtime_heartbeat,
            "chats": [self.summary(c, party) for c in chats],
        }
        if party.role == "visitor":
            ev["visitor_id"] = party.visitor_id
            ev["online"] = self.any_online()
            out = [(encode(ev), ev)]
            inv = self.monitor.pending_invitation(party.visitor_id)
            if inv is not None:
                iev = self.monitor.invitation_event(inv)
                out.append((encode(iev), iev))
        else:
            op = self.storage.operator(party.operator_id)
            ev["operator"] = op.public(self.effective_status(op.id))
            out = [(encode(ev), ev)]
            for snap in self.snapshots():
                out.append((encode(snap), snap))
        return out + replay

    def snapshots(self) -> list[dict]:
        """What an operator's console needs besides chat events: queue, team, visitors."""
        return [self.queue_event(), self.operators_event(), self.monitor.snapshot_event()]

    def may_see(self, party: Party, chat: Chat) -> bool:
        if party.role == "visitor":
            return chat.visitor_id == party.visitor_id
        return True  # operators are staff; every transcript is theirs to read

    def own_open_chats(self, party: Party) -> list[Chat]:
        if party.role == "visitor":
            return self.storage.visitor_chats(party.visitor_id, open_only=True)[::-1]
        return self.storage.operator_chats(party.operator_id)

    def replay(self, party: Party, cursors: dict[int, int]):
        """Events the party missed according to its cursors (docs/PROTOCOL.md §4).

        Returns ``([(json, event-or-None)], [chats described])``; chat events come as stored
        JSON with a small dict carrying ``chat_id`` and ``seq`` for bookkeeping.
        """
        out: list[tuple[str, dict | None]] = []
        chats: list[Chat] = []
        for chat_id, cursor in cursors.items():
            chat = self.storage.chat(chat_id)
            if chat is None or not self.may_see(party, chat) or cursor > chat.last_seq:
                ev = {"type": "reset", "chat_id": chat_id, "reason": "unknown_cursor"}
                out.append((encode(ev), ev))
                continue
            chats.append(chat)
            out.extend(self._stored(chat.id, cursor))
        for chat in self.own_open_chats(party):
            if chat.id not in cursors:
                chats.append(chat)
                out.extend(self._stored(chat.id, 0))
        return out, chats

    def _stored(self, chat_id: int, after: int) -> list[tuple[str, dict]]:
        seq = after
        out = []
        for text in self.storage.events_after(chat_id, after):
            seq += 1
            out.append((text, {"chat_id": chat_id, "seq": seq}))
        return out

    # -- long-poll connections ----------------------------------------------------------------

    def new_poll_conn(self, party: Party) -> PollConn:
        conn = PollConn(secrets.token_urlsafe(18), party)
        self.poll_conns[conn.id] = conn
        self.attach(conn, party)
        return conn

    def drop_poll_conn(self, conn: PollConn) -> None:
        if self.poll_conns.pop(conn.id, None) is not None:
            self.detach(conn, conn.party)
        conn.close(1000)

    def poll_collect(self, conn: PollConn, cursors: dict[int, int]) -> list[str]:
        """Events for a poll: a replay for what the client lacks, then the buffer, deduplicated."""
        out: list[str] = []
        have = dict(cursors)
        if conn.overflow:
            conn.overflow = False
            if conn.party.role == "operator":
                for snap in self.snapshots():
                    out.append(encode(snap))
            for text, ev in self.replay(conn.party, cursors)[0]:
                out.append(text)
                if ev and "seq" in ev:
                    have[ev["chat_id"]] = ev["seq"]
        else:
            # A lost answer leaves the client behind what we handed out: replay the difference.
            for chat_id, sent in conn.delivered.items():
                cur = cursors.get(chat_id, 0)
                chat = self.storage.chat(chat_id) if cur < sent else None
                if chat is not None and self.may_see(conn.party, chat):
                    for text, ev in self._stored(chat_id, cur):
                        out.append(text)
                        have[chat_id] = ev["seq"]
        for text, ev in conn.buffer:
            if ev and "seq" in ev:
                if ev["seq"] <= have.get(ev["chat_id"], 0):
                    continue
                have[ev["chat_id"]] = ev["seq"]
            out.append(text)
        conn.buffer = []
        for chat_id, seq in have.items():
            if seq > cursors.get(chat_id, 0):
                conn.delivered[chat_id] = seq
        return out

    # -- commands -----------------------------------------------------------------------------

    def dispatch(self, party: Party, stream: Any, cmd: Any) -> dict:
        """Run one command; returns the reply event (ack, pong or error). Never raises."""
        ref = cmd.get("id") if isinstance(cmd, dict) else None
        ref = ref if _request_id_ok(ref) else None
        try:
            return self.run_command(party, stream, cmd)
        except ApiError as e:
            return e.event(ref)
        except Exception:  # a bug: log it, answer it, keep the connection
            log.exception("command %.40r failed", cmd.get("type"))
            return ApiError("server_error", "internal error; it has been logged", 500).event(ref)

    def run_command(self, party: Party, stream: Any, cmd: Any) -> dict:
        """Run one command; returns its ack (or pong), raises ApiError for the error."""
        if not isinstance(cmd, dict):
            raise ApiError("bad_json", "a command must be a JSON object")
        ref = cmd.get("id")
        if ref is not None and not _request_id_ok(ref):
            raise ApiError(
                "invalid_field", "'id' must be a string of up to 64 characters", field="id"
            )
        ctype = cmd.get("type")
        schema = COMMANDS[party.role].get(ctype) if isinstance(ctype, str) else None
        if schema is None or ctype == "hello":
            if ctype == "hello":
                raise ApiError("unknown_type", "'hello' is only the first frame of a WebSocket")
            raise ApiError(
                "unknown_type",
                f"unknown command type {str(ctype)[:40]!r}; see docs/PROTOCOL.md §5",
            )
        args = self.validate.fields(cmd, schema, f"'{ctype}'")
        result = getattr(self, f"cmd_{ctype}")(party, stream, **args)
        if ctype == "ping":
            return {"type": "pong", "ref": ref}
        return {"type": "ack", "ref": ref, **(result or {})}

    def cmd_ping(self, party: Party, stream: Any) -> None:
        return None

    def cmd_sync(self, party: Party, stream: Any, cursors: dict[int, int]) -> dict:
        if stream is None:
            raise ApiError("unknown_type", "'sync' needs a stream; long-poll sends cursors instead")
        for text, ev in self.replay(party, cursors)[0]:
            stream.deliver(text, ev)
        return {}

    def _chat_for(self, party: Party, chat_id: int) -> Chat:
        chat = self.storage.chat(chat_id)
        if chat is None or not self.may_see(party, chat):
            raise ApiError("not_found", f"no chat {chat_id}", 404, chat_id=chat_id)
        return chat

    def _publish_chat_events(self, chat: Chat, pairs, extra_topics: Iterable[str] = ()) -> None:
        topics = [f"v:{chat.visitor_id}"]
        if chat.operator_id:
            topics.append(f"op:{chat.operator_id}")
        topics.extend(extra_topics)
        for ev, text in pairs:
            self.hub.publish(topics, ev, text)
        if any(ev["type"] != "message" for ev, _ in pairs):
            self.monitor.chat_changed(chat)

    def _rate(self, limiter: RateLimiter, key: Any, name: str, what: str) -> None:
        wait = limiter.hit(key)
        if wait:
            raise ApiError(
                "rate_limited",
                f"too many {what}; limit {name} is {limiter.count} per "
                f"{limiter.count / limiter.rate:g} s",
                429,
                limit=name,
                retry_after=round(wait + 0.05, 1),
            )

    def _open_chat_of(self, party: Party, client_id: str | None) -> dict | None:
        """A visitor has at most one open chat: the same first client id returns it again."""
        for chat in self.storage.visitor_chats(party.visitor_id, open_only=True):
            first = self.storage.event_by_client_id(chat.id, client_id) if client_id else None
            if first is not None:
                return {"chat": self.summary(chat, party), "message": json.loads(first)}
            raise ApiError(
                "chat_already_open",
                f"chat {chat.id} is still open; send messages there",
                409,
                chat_id=chat.id,
            )
        return None

    def cmd_start_chat(
        self, party, stream, name, text, client_id, email="", page_url="", page_title=""
    ) -> dict:
        again = self._open_chat_of(party, client_id)
        if again is not None:
            return again
        self._rate(self.rl_chats, party.ip, "chats_per_ip", "new chats from this address")
        self._rate(self.rl_messages, party.visitor_id, "visitor_messages", "messages")
        chat, pairs = self._create_chat(party, name, email, page_url, page_title, text, client_id)
        self.monitor.chat_started(party.visitor_id)
        return {"chat": self.summary(chat, party), "message": pairs[-1][0]}

    def _create_chat(
        self,
        party,
        name,
        email,
        page_url,
        page_title,
        text,
        client_id,
        invitation: dict | None = None,
    ):
        """Store a new chat with its first events; accepted at once for an operator's invitation
        when that operator is online, otherwise queued."""
        t = now_ms()
        op = invitation["operator"] if invitation else None
        active = op is not None and self.effective_status(op["id"]) == ONLINE
        started = {
            "type": "chat_started",
            "ts": t,
            "name": name,
            "email": email,
            "page_url": page_url,
            "page_title": page_title,
        }
        if invitation:
            started["invitation"] = {"message": invitation["message"], "operator": op}
        events = [started]
        if active:
            events.append({"type": "chat_accepted", "ts": t, "operator": op})
        if text:
            events.append(self._message_event("visitor", None, text, client_id, t))
        with db.atomic():
            chat = self.storage.create_chat(
                visitor=party.visitor_id,
                status=ACTIVE if active else WAITING,
                operator=op["id"] if active else None,
                accepted_at=t if active else None,
                name=name,
                email=email,
                page_url=page_url,
                page_title=page_title,
                ip=party.ip,
                user_agent=party.user_agent[:MAX_UA_CHARS],
                created_at=t,
                queued_at=t,
                first_message=(text or (invitation or {}).get("message", ""))[:200],
            )
            pairs = self.storage.append_events(chat, events)
        self._publish_chat_events(chat, pairs)
        if not active:
            self._waiting[chat.id] = t
            self._queue_changed()
        return chat, pairs

    def cmd_accept_invitation(
        self,
        party,
        stream,
        invitation_id,
        name="",
        email="",
        text="",
        client_id=None,
        page_url="",
        page_title="",
    ) -> dict:
        inv = self.monitor.pending_invitation(party.visitor_id)
        if inv is None or inv["id"] != invitation_id:
            raise ApiError("not_found", "no such invitation, or it expired", 404)
        if text and not client_id:
            raise ApiError(
                "invalid_field", "'client_id' is required with 'text'", field="client_id"
            )
        self._open_chat_of(party, None)
        self._rate(self.rl_chats, party.ip, "chats_per_ip", "new chats from this address")
        self.monitor.answer(party.visitor_id, invitation_id, True)
        chat, pairs = self._create_chat(
            party, name or "Visitor", email, page_url, page_title, text, client_id, invitation=inv
        )
        return {"chat": self.summary(chat, party)}

    def cmd_decline_invitation(self, party, stream, invitation_id) -> dict:
        self.monitor.answer(party.visitor_id, invitation_id, False)
        return {}

    def cmd_invite(self, party, stream, visitor_id, message="") -> dict:
        if self.effective_status(party.operator_id) != ONLINE:
            raise ApiError("status_not_online", "set your status to online to invite", 409)
        inv = self.monitor.invite(party.operator_id, visitor_id, message)
        return {"invitation": {k: inv[k] for k in ("id", "state", "operator", "message")}}

    @staticmethod
    def _message_event(who: str, op: dict | None, text: str, client_id: str, t: int) -> dict:
        return {
            "type": "message",
            "ts": t,
            "from": who,
            "operator": op,
            "text": text,
            "client_id": client_id,
        }

    def cmd_message(self, party: Party, stream: Any, chat_id: int, text: str, client_id: str):
        chat = self._chat_for(party, chat_id)
        existing = self.storage.event_by_client_id(chat.id, client_id)
        if existing is not None:
            return {"message": json.loads(existing)}
        if party.role == "visitor":
            if chat.status not in OPEN_STATUSES:
                raise ApiError(
                    "chat_closed", f"chat {chat.id} is {chat.status}", 409, chat_id=chat.id
                )
            self._rate(self.rl_messages, party.visitor_id, "visitor_messages", "messages")
            op = None
        else:
            self._own_active(party, chat)
            o = self.storage.operator(party.operator_id)
            op = {"id": o.id, "name": o.display_name}
        pairs = self.storage.append_events(
            chat, [self._message_event(party.role, op, text, client_id, now_ms())]
        )
        self._publish_chat_events(chat, pairs)
        self._stop_typing(chat, party.role)
        return {"message": pairs[0][0]}

    def _own_active(self, party: Party, chat: Chat) -> None:
        if chat.status not in OPEN_STATUSES:
            raise ApiError("chat_closed", f"chat {chat.id} is {chat.status}", 409, chat_id=chat.id)
        if chat.operator_id != party.operator_id:
            raise ApiError(
                "forbidden", f"chat {chat.id} is not assigned to you", 403, chat_id=chat.id
            )

    def cmd_typing(self, party: Party, stream: Any, chat_id: int, typing: bool) -> dict:
        chat = self._chat_for(party, chat_id)
        if chat.status not in OPEN_STATUSES:
            return {}
        if party.role == "operator" and chat.operator_id != party.operator_id:
            raise ApiError(
                "forbidden", f"chat {chat.id} is not assigned to you", 403, chat_id=chat.id
            )
        key = (chat.id, party.role)
        mono = time.monotonic()
        last = self._typing_sent.get(key)
        if typing:
            if last is not None and mono - last < 1.0:
                return {}  # throttled: the receiver still shows the last one
            self._typing_sent[key] = mono
        else:
            if self._typing_sent.pop(key, None) is None:
                return {}  # nothing to clear
        self._send_typing(chat, party.role, typing)
        return {}

    def _send_typing(self, chat: Chat, who: str, typing: bool) -> None:
        if who == "visitor":
            if not chat.operator_id:
                return
            topic = f"op:{chat.operator_id}"
        else:
            topic = f"v:{chat.visitor_id}"
        ev = {
            "type": "typing",
            "chat_id": chat.id,
            "from": who,
            "typing": typing,
            "expires_in": TYPING_EXPIRES,
        }
        self.hub.publish([topic], ev)

    def _stop_typing(self, chat: Chat, who: str) -> None:
        if self._typing_sent.pop((chat.id, who), None) is not None:
            self._send_typing(chat, who, False)

    def cmd_close(self, party: Party, stream: Any, chat_id: int) -> dict:
        chat = self._chat_for(party, chat_id)
        if party.role == "operator":
            self._own_active(party, chat)
        elif chat.status not in OPEN_STATUSES:
            raise ApiError("chat_closed", f"chat {chat.id} is {chat.status}", 409, chat_id=chat.id)
        op = None
        if party.role == "operator":
            o = self.storage.operator(party.operator_id)
            op = {"id": o.id, "name": o.display_name}
        self._end_chat(chat, CLOSED, {"type": "chat_closed", "by": party.role, "operator": op})
        return {"chat": self.summary(chat, party)}

    def _end_chat(self, chat: Chat, status: str, event: dict) -> None:
        was_waiting = chat.status == WAITING
        t = now_ms()
        event["ts"] = t
        pairs = self.storage.append_events(chat, [event], {"status": status, "closed_at": t})
        self._publish_chat_events(chat, pairs)
        self._typing_sent.pop((chat.id, "visitor"), None)
        self._typing_sent.pop((chat.id, "operator"), None)
        if was_waiting:
            self._waiting.pop(chat.id, None)
            self._queue_changed()

    def miss_chat(self, chat_id: int) -> None:
        """Nobody answered in time: the chat ends and the visitor is offered the offline form."""
        self._waiting.pop(chat_id, None)
        chat = self.storage.chat(chat_id)
        if chat is None or chat.status != WAITING:
            return
        self._end_chat(chat, MISSED, {"type": "chat_missed", "reason": "queue_timeout"})

    def cmd_accept(self, party: Party, stream: Any, chat_id: int) -> dict:
        chat = self._chat_for(party, chat_id)
        if self.effective_status(party.operator_id) != ONLINE:
            raise ApiError("status_not_online", "set your status to online to accept chats", 409)
        t = now_ms()
        o = self.storage.operator(party.operator_id)
        op = {"id": o.id, "name": o.display_name}
        with db.atomic():
            if not self.storage.claim_chat(chat.id, o.id, t):
                raise ApiError(
                    "chat_taken",
                    f"chat {chat.id} was taken or is no longer waiting",
                    409,
                    chat_id=chat.id,
                )
            chat = self.storage.chat(chat.id)
            pairs = self.storage.append_events(
                chat, [{"type": "chat_accepted", "ts": t, "operator": op}]
            )
        self._waiting.pop(chat.id, None)
        # The visitor gets the event; the operator's streams get the whole chat from seq 1.
        for ev, text in pairs:
            self.hub.publish([f"v:{chat.visitor_id}"], ev, text)
        for text, ev in self._stored(chat.id, 0):
            self.hub.publish([f"op:{o.id}"], ev, text)
        self.monitor.chat_changed(chat)
        self._queue_changed()
        return {"chat": self.summary(chat, party)}

    def cmd_status(self, party: Party, stream: Any, status: str) -> dict:
        op_id = party.operator_id
        self.storage.update_operator(op_id, status=status)
        self.present[op_id] = status
        if status == OFFLINE:
            self._requeue_chats_of(op_id)
        elif self.hub.count(party.topic) == 0 and op_id not in self._grace:
            # Set over plain HTTP with no stream open: present only for the grace period.
            self._start_grace(op_id)
        self._presence_changed()
        return {"status": status}

    def cmd_leave_message(
        self,
        party,
        stream,
        name,
        email,
        text,
        page_url="",
        page_title="",
        chat_id=None,
        client_id=None,
    ) -> dict:
        if chat_id is not None:
            self._chat_for(party, chat_id)
        if client_id is not None:
            again = OfflineMessage.get_or_none(
                (OfflineMessage.visitor == party.visitor_id)
                & (OfflineMessage.client_id == client_id)
            )
            if again is not None:
                return {"offline_message": {"id": again.id, "created_at": again.created_at}}
        msg = OfflineMessage(
            visitor=party.visitor_id,
            chat=chat_id,
            name=name,
            email=email,
            text=text,
            page_url=page_url,
            page_title=page_title,
            ip=party.ip,
            created_at=now_ms(),
            client_id=client_id,
        )
        # Built before anything is stored, so an address that cannot be mailed stores nothing.
        mail = self.mailer.offline_message(msg, self.base_url) if self.mailer.enabled else None
        self._rate(self.rl_chats, party.ip, "chats_per_ip", "chats and messages from this address")
        self._rate(self.rl_messages, party.visitor_id, "visitor_messages", "messages")
        msg.save(force_insert=True)
        if mail is not None:
            self._send_mail(mail)
        self.hub.publish(["ops"], {"type": "offline_message", "message": msg.public()})
        return {"offline_message": {"id": msg.id, "created_at": msg.created_at}}

    def _send_mail(self, m: email.message.EmailMessage) -> None:
        fut = self.run_blocking(self.mailer.send, m)

        def done(f):
            exc = f.exception()
            if exc is not None:
                log.warning("could not send e-mail to %s: %s", m["To"], exc)
            else:
                log.info("e-mailed offline message to %s", m["To"])

        fut.add_done_callback(done)

    # -- queue --------------------------------------------------------------------------------

    def _queue_changed(self) -> None:
        if self._queue_dirty:
            return
        self._queue_dirty = True

        def flush():
            self._queue_dirty = False
            self.hub.publish(["ops"], self.queue_event())

        self.call_later(0, flush)

    def queue_event(self) -> dict:
        chats = [self.storage.chat(cid) for cid in sorted(self._waiting, key=self._waiting.get)]
        party = Party("operator")
        return {
            "type": "queue",
            "chats": [
                dict(self.summary(c, party), first_message=c.first_message) for c in chats if c
            ],
        }

    def summary(self, chat: Chat, party: Party) -> dict:
        op = None
        if chat.operator_id:
            o = self.storage.operator(chat.operator_id)
            op = {"id": o.id, "name": o.display_name} if o else None
        s = {
            "id": chat.id,
            "status": chat.status,
            "name": chat.name,
            "email": chat.email,
            "page_url": chat.page_url,
            "page_title": chat.page_title,
            "operator": op,
            "created_at": chat.created_at,
            "accepted_at": chat.accepted_at,
            "closed_at": chat.closed_at,
            "last_seq": chat.last_seq,
        }
        if party.role == "operator":
            s.update(visitor_id=chat.visitor_id, ip=chat.ip, user_agent=chat.user_agent)
        return s

    def metrics(self, reset: bool = False) -> dict:
        import gc
        import resource

        hub = self.hub
        return {
            "visitor_streams": hub.count("visitors"),
            "operator_streams": hub.count("ops"),
            "poll_conns": len(self.poll_conns),
            "held_polls": sum(
                1 for c in self.poll_conns.values() if c.waiter is not None and not c.waiter.done()
            ),
            "waiting_chats": len(self._waiting),
            "operators_present": len(self.present),
            "open_files": self.fd_guard._real_count(),
            "file_limit": self.fd_guard.limit,
            "max_rss_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
            "cpu_s": round(time.process_time(), 3),
            "gc_counts": gc.get_count(),
            "loop_lag": self.lag.snapshot(reset),
        }

    # -- settings -----------------------------------------------------------------------------

    def settings(self) -> dict:
        """Console-edited settings (appearance, extra allowed origins), cached in memory."""
        if self._settings is None:
            row = Meta.get_or_none(Meta.key == "settings")
            self._settings = json.loads(row.value) if row else {}
            self._settings.setdefault("appearance", {})
            self._settings.setdefault("allowed_origins", [])
        return self._settings

    def allowed_origins(self) -> list[str]:
        """Origins allowed to use the visitor API: the ini's and the console's; empty: any."""
        return list(self.config.widget_allowed_origins) + self.settings()["allowed_origins"]

    def widget_config(self) -> dict:
        return {
            "online": self.any_online(),
            "heartbeat": self.config.realtime_heartbeat,
            "appearance": dict(self.settings()["appearance"]),
            # Public anyway (browsers see them refused); the pop-out window checks its opener.
            "origins": self.allowed_origins(),
        }

    def settings_view(self) -> dict:
        s = self.settings()
        return {
            "appearance": dict(s["appearance"]),
            "appearance_keys": list(APPEARANCE),
            "allowed_origins": list(s["allowed_origins"]),
            "allowed_origins_config": list(self.config.widget_allowed_origins),
            "public_url": self.base_url,
        }

    def update_settings(self, body: Any) -> dict:
        if not isinstance(body, dict):
            raise ApiError("bad_json", "expected a JSON object")
        for k in body:
            if k not in ("appearance", "allowed_origins"):
                raise ApiError("unknown_field", f"'{k}' is not a setting", field=k)
        new = json.loads(json.dumps(self.settings()))
        if "appearance" in body:
            app = body["appearance"]
            if not isinstance(app, dict):
                raise ApiError(
                    "invalid_field", "'appearance' must be an object", field="appearance"
                )
            for k, v in app.items():
                if k not in APPEARANCE:
                    raise ApiError(
                        "unknown_field",
                        f"'{k}' is not an appearance setting",
                        field=f"appearance.{k}",
                    )
                v = _check_appearance(k, v)
                if v:
                    new["appearance"][k] = v
                else:
                    new["appearance"].pop(k, None)
        if "allowed_origins" in body:
            origins = body["allowed_origins"]
            if not isinstance(origins, list) or not all(isinstance(o, str) for o in origins):
                raise ApiError(
                    "invalid_field",
                    "'allowed_origins' must be a list of strings",
                    field="allowed_origins",
                )
            if len(origins) > 100:
                raise ApiError(
                    "too_long", "at most 100 allowed origins", field="allowed_origins", limit=100
                )
            try:
                new["allowed_origins"] = parse_origins(" ".join(origins))
            except ValueError as e:
                raise ApiError(
                    "invalid_field", f"'allowed_origins': expected {e}", field="allowed_origins"
                ) from None
        Meta.insert(key="settings", value=json.dumps(new)).on_conflict_replace().execute()
        self._settings = new
        self.hub.publish(["visitors"], {"type": "appearance", "appearance": new["appearance"]})
        return self.settings_view()

    def transcript(self, party: Party, chat_id: int) -> dict:
        chat = self._chat_for(party, chat_id)
        events = [json.loads(t) for t in self.storage.events_after(chat.id, 0)]
        return {"chat": self.summary(chat, party), "events": events}

    # -- visitors -----------------------------------------------------------------------------

    def new_visitor(self, ip: str, user_agent: str) -> tuple[str, Visitor]:
        token = secrets.token_urlsafe(32)
        return token, self.storage.create_visitor(token, ip, user_agent[:MAX_UA_CHARS])

    def visitor_party(self, token: Any, ip: str, user_agent: str) -> Party:
        vid = self.monitor.visitor_id_for(token)
        return Party("visitor", visitor_id=vid, ip=ip, user_agent=user_agent)

    # -- operators ----------------------------------------------------------------------------

    async def hash_password(self, password: str) -> str:
        return await self.run_blocking(self._hasher.hash, password)

    async def check_password(self, stored: str, password: str) -> bool:
        def verify():
            try:
                return self._hasher.verify(stored, password)
            except self._argon2.exceptions.VerificationError:
                return False
            except self._argon2.exceptions.InvalidHashError:
                return False

        return await self.run_blocking(verify)

    async def create_operator(self, username, display_name, password, is_admin=False) -> Operator:
        v = self.validate
        username = v.kind("username", "username", username)
        display_name = v.kind("name", "display_name", display_name)
        password = v.kind("password", "password", password)
        is_admin = v.kind("bool", "is_admin", is_admin)
        if self.storage.operator_by_username(username) is not None:
            raise ApiError("username_taken", f"the username {username!r} is taken", 409)
        hashed = await self.hash_password(password)
        try:
            op = Operator.create(
                username=username,
                display_name=display_name,
                password_hash=hashed,
                is_admin=is_admin,
                created_at=now_ms(),
            )
        except peewee.IntegrityError:
            raise ApiError("username_taken", f"the username {username!r} is taken", 409) from None
        self.setup_token = None
        return op

    async def setup_first_admin(self, setup_token, username, display_name, password) -> Operator:
        if self.storage.operator_count() > 0 or self.setup_token is None:
            raise ApiError("setup_done", "the first administrator already exists; log in", 409)
        if not isinstance(setup_token, str) or not hmac.compare_digest(
            setup_token.encode("utf-8", "replace"), self.setup_token.encode()
        ):
            raise ApiError(
                "bad_setup_token", "wrong setup token; it is printed in the server log", 403
            )
        return await self.create_operator(username, display_name, password, True)

    def _forget_login_failures(self, mono: float) -> None:
        """Drop failure records older than their window, so memory stays bounded."""
        for table, (_, period) in (
            (self._login_failures, self._login_fail_account),
            (self._login_ip_failures, self._login_fail_ip),
        ):
            for key in [k for k, q in table.items() if not q or mono - q[-1] > period]:
                del table[key]
        for key in [k for k, until in self._locked_until.items() if until <= mono]:
            del self._locked_until[key]

    def _login_throttled(self, username: str, ip: str) -> float:
        mono = time.monotonic()
        until = self._locked_until.get(username, 0)
        if until > mono:
            return until - mono
        n, period = self._login_fail_ip
        q = self._login_ip_failures.get(ip)
        if q is not None and len(q) >= n and mono - q[0] < period:
            return period - (mono - q[0])
        return 0.0

    def _login_failed(self, username: str, ip: str) -> None:
        mono = time.monotonic()
        n, period = self._login_fail_account
        q = self._login_failures.setdefault(username, collections.deque(maxlen=n))
        q.append(mono)
        if len(q) >= n and mono - q[0] < period:
            self._locked_until[username] = mono + self.config.operators_login_lockout
            q.clear()
            log.warning("login for %r locked after %d failures", username, n)
        n, period = self._login_fail_ip
        q = self._login_ip_failures.setdefault(ip, collections.deque(maxlen=n))
        q.append(mono)

    async def login(self, username: Any, password: Any, ip: str, user_agent: str):
        """Check credentials; returns ``(session_token, operator)`` or raises login_failed."""
        if not isinstance(username, str) or not isinstance(password, str):
            raise ApiError("invalid_field", "'username' and 'password' must be strings")
        username = username.strip().lower()[:64]
        password = password[:MAX_PASSWORD_CHARS]
        wait = self._login_throttled(username, ip)
        if wait:
            raise ApiError(
                "login_throttled",
                "too many failed logins; try again later",
                429,
                retry_after=int(wait) + 1,
            )
        op = self.storage.operator_by_username(username)
        ok = await self.check_password(op.password_hash if op else self._dummy_hash, password)
        if not ok or op is None or op.disabled:
            self._login_failed(username, ip)
            raise ApiError("login_failed", "wrong username or password", 401)
        self._login_failures.pop(username, None)
        return self.new_session(op, ip, user_agent), op

    def new_session(self, op: Operator, ip: str, user_agent: str) -> str:
        """A console session for the operator; returns its cookie value."""
        token = secrets.token_urlsafe(32)
        self.storage.create_session(
            token, op.id, self.config.operators_session_lifetime, ip, user_agent[:MAX_UA_CHARS]
        )
        return token

    def operator_party(self, session_token: str | None, ip: str, user_agent: str) -> Party | None:
        if not session_token:
            return None
        s = self.storage.session_by_token(session_token)
        if s is None:
            return None
        op = self.storage.operator(s.operator_id)
        if op is None or op.disabled:
            return None
        return Party("operator", operator_id=op.id, session_id=s.id, ip=ip, user_agent=user_agent)

    def end_sessions(
        self,
        operator_id: int,
        reason: str,
        keep_session_id: int | None = None,
        only_session_id: int | None = None,
    ) -> None:
        """Delete sessions and close their streams at once (logout, password, disabled)."""
        if only_session_id is not None:
            Session.delete().where(Session.id == only_session_id).execute()
            ids = [only_session_id]
        else:
            ids = self.storage.delete_sessions(operator_id, keep_session_id)
        ev = {"type": "session_ended", "reason": reason}
        text = encode(ev)
        for sid in ids:
            for stream in list(self._session_streams.get(sid, ())):
                stream.deliver(text, ev)
                stream.close(CLOSE_SESSION_ENDED, reason)
                if isinstance(stream, PollConn):
                    self.drop_poll_conn(stream)

    async def update_operator(self, actor: Party, operator_id: int, body: Any) -> Operator:
        schema = {
            "display_name": ("name", False),
            "is_admin": ("bool", False),
            "disabled": ("bool", False),
            "password": ("password", False),
        }
        args = self.validate.fields(body, schema, "an operator")
        op = self.storage.operator(operator_id)
        if op is None:
            raise ApiError("not_found", f"no operator {operator_id}", 404)
        if op.id == actor.operator_id and (args.get("disabled") or args.get("is_admin") is False):
            raise ApiError(
                "invalid_field",
                "you cannot disable yourself or drop your own admin "
                "rights; ask another administrator",
                field="disabled",
            )
        changes: dict[str, Any] = {}
        for k in ("display_name", "is_admin", "disabled"):
            if k in args:
                changes[k] = args[k]
        if "password" in args:
            changes["password_hash"] = await self.hash_password(args["password"])
        if changes:
            self.storage.update_operator(op.id, **changes)
        if args.get("disabled"):
            self.end_sessions(op.id, "disabled")
            self.operator_gone(op.id)
        elif "password" in args:
            keep = actor.session_id if op.id == actor.operator_id else None
            self.end_sessions(op.id, "password_changed", keep_session_id=keep)
        elif "display_name" in args:
            self._presence_changed()
        return self.storage.operator(op.id)

    async def change_own_password(self, party: Party, body: Any) -> None:
        args = self.validate.fields(
            body,
            {"current_password": ("secret", True), "new_password": ("password", True)},
            "a password change",
        )
        op = self.storage.operator(party.operator_id)
        if not await self.check_password(op.password_hash, args["current_password"]):
            raise ApiError("login_failed", "the current password is wrong", 401)
        await self.update_operator(party, op.id, {"password": args["new_password"]})


#: Search engines whose referrers carry the search terms, and the query parameter holding them.
SEARCH_ENGINES = {
    "google.": "q",
    "bing.com": "q",
    "duckduckgo.com": "q",
    "yahoo.": "p",
    "yandex.": "text",
    "baidu.com": "wd",
    "ecosia.org": "q",
    "startpage.com": "query",
    "qwant.com": "q",
    "search.brave.com": "q",
}


def search_terms(referrer: str) -> str:
    """The search keywords in a search engine's referrer URL, where the engine still sends them."""
    u = split_url(referrer)
    if u is None:
        return ""
    host = (u.hostname or "").lower()
    for engine, param in SEARCH_ENGINES.items():
        if engine in host:
            values = urllib.parse.parse_qs(u.query).get(param)
            return values[0][:200] if values else ""
    return ""


def _clip(value: Any, limit: int) -> str:
    """Tracking fields are truncated, not refused: a long title is still a page view."""
    if not isinstance(value, str):
        return ""
    value = _CONTROL.sub(" ", value).strip()
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        value = value.encode("utf-8", "replace").decode("utf-8")
    return value[:limit]


#: A visitor whose visit was cut by a server restart (not by leaving) resumes it within this.
VISIT_RESUME = 30 * 60


class UserAgents:
    """Browser, OS and device from a user agent, by the ua-parser library, cached."""

    def __init__(self) -> None:
        self._cache: dict[str, tuple[str, str, str]] = {}

    def parse(self, ua: str) -> tuple[str, str, str]:
        hit = self._cache.get(ua)
        if hit is not None:
            return hit
        try:
            from ua_parser import parse  # loads its rules on first use (~0.1 s)

            r = parse(ua)
        except Exception:  # a library failure must not lose the page view
            return ("", "", "")

        def ver(x) -> str:
            return ".".join(p for p in (x.major, x.minor) if p) if x else ""

        browser = f"{r.user_agent.family} {ver(r.user_agent)}".strip() if r.user_agent else ""
        os_ = f"{r.os.family} {ver(r.os)}".strip() if r.os else ""
        if r.device and r.device.family not in ("Other", "Spider"):
            device = r.device.family
        elif r.device and r.device.family == "Spider":
            device = "Bot"
        else:
            device = "Mobile" if "Mobi" in ua else "Desktop"
        out = (browser[:60], os_[:60], device[:60])
        if len(self._cache) > 5000:
            self._cache.clear()
        self._cache[ua] = out
        return out


class GeoIP:
    """Country by IP address from a GeoLite2-style .mmdb file, when one is configured."""

    def __init__(self, path: str):
        self.reader = None
        if path:
            import maxminddb

            try:
                self.reader = maxminddb.open_database(path)
            except (OSError, ValueError) as e:
                raise ConfigError(f"[monitor] geoip_db: cannot read {path}: {e}") from None

    def country(self, ip: str) -> str:
        if self.reader is None or not ip:
            return ""
        try:
            rec = self.reader.get(ip)
        except ValueError:
            return ""
        if not isinstance(rec, dict):
            return ""
        c = rec.get("country") or rec.get("registered_country") or {}
        names = c.get("names") or {}
        return str(names.get("en") or c.get("iso_code") or "")[:60]


@dataclass(eq=False)
class LiveVisitor:
    """A visitor on the site now (or just gone): what the monitor shows, kept in memory."""

    visitor_id: int
    visit_id: int
    visit_number: int
    first_seen: int
    started_at: int
    ip: str
    user_agent: str
    browser: str
    os: str
    device: str
    country: str
    landing_url: str = ""
    referrer: str = ""
    search_terms: str = ""
    url: str = ""
    title: str = ""
    page_since: int = 0
    last_activity: int = 0
    pages: int = 0
    previous_chats: int = 0
    left_at: int | None = None
    leave_timer: Any = None
    leave_at: float = 0.0  # time.monotonic() when a visitor without streams leaves
    chat_id: int | None = None
    chat_status: str | None = None
    chat_operator: dict | None = None
    invitation: dict | None = None
    auto_invited: bool = False
    state: str = "browsing"


class Monitor:
    """Live traffic: visits, page views (persisted in batches), presence, invitations.

    Page views arrive by beacon (``POST /api/visitor/track``); presence comes from the
    visitor's streams. Consoles get a ``visitors`` snapshot on hello and ``visitors_changed``
    deltas coalesced in windows of at most ``COALESCE`` seconds.
    """

    COALESCE = 0.15

    def __init__(self, services: Services):
        self.s = services
        self.config = services.config
        self.hub = services.hub
        self.live: dict[int, LiveVisitor] = {}
        self._tokens: collections.OrderedDict[str, int] = collections.OrderedDict()
        self._views: list[tuple] = []
        self._ended: list[tuple[int, int]] = []
        self._landing: list[tuple] = []
        self._dirty: set[int] = set()
        self._gone: set[int] = set()
        self._flush_scheduled = False
        self.ua = UserAgents()
        self.geo = GeoIP(self.config.monitor_geoip_db)
        self.rl_beacons = RateLimiter(*self.config.monitor_beacons_per_visitor)
        self.rl_invites = RateLimiter(*self.config.monitor_invitations_per_operator)
        self._rules: list[InviteRule] | None = None
        self._last_purge = 0.0
        # Read once: the tick checks every visitor every second, and a Config attribute is a
        # __getattr__ call.
        self._idle_ms = self.config.monitor_idle_after * 1000

    # -- visitors and visits ----------------------------------------------------------------------

    def visitor_id_for(self, token: Any) -> int:
        """The visitor id of a token, from a small cache in front of the database."""
        if not isinstance(token, str) or not token or len(token) > 256:
            raise ApiError("bad_token", "a visitor token is required", 401)
        vid = self._tokens.get(token)
        if vid is None:
            v = self.s.storage.visitor_by_token(token)
            if v is None:
                raise ApiError("bad_token", "unknown visitor token; get a new one", 401)
            vid = v.id
            self._tokens[token] = vid
            if len(self._tokens) > 100_000:
                self._tokens.popitem(last=False)
        return vid

    def _live(self, vid: int, ip: str, ua: str, url: str = "", referrer: str = "") -> LiveVisitor:
        lv = self.live.get(vid)
        if lv is not None and lv.left_at is None:
            return lv
        t = now_ms()
        ua = ua[:MAX_UA_CHARS]
        browser, os_, device = self.ua.parse(ua)
        country = self.geo.country(ip)
        terms = search_terms(referrer)
        if lv is None:
            resumed = self._resume_visit(vid, t)
            if resumed is not None:
                return resumed
        with db.atomic():
            row = db.execute_sql(
                "SELECT created_at, (SELECT COALESCE(MAX(number), 0) FROM visit WHERE "
                "visitor_id = ?), (SELECT COUNT(*) FROM chat WHERE visitor_id = ?) "
                "FROM visitor WHERE id = ?",
                (vid, vid, vid),
            ).fetchone()
            first_seen, visits, chats = row if row else (t, 0, 0)
            cur = db.execute_sql(
                "INSERT INTO visit (visitor_id, number, started_at, last_seen, landing_url, "
                "referrer, search_terms, ip, user_agent, browser, os, device, country) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    vid,
                    visits + 1,
                    t,
                    t,
                    url,
                    referrer,
                    terms,
                    ip,
                    ua,
                    browser,
                    os_,
                    device,
                    country,
                ),
            )
        lv = LiveVisitor(
            visitor_id=vid,
            visit_id=cur.lastrowid,
            visit_number=visits + 1,
            first_seen=first_seen,
            started_at=t,
            ip=ip,
            user_agent=ua,
            browser=browser,
            os=os_,
            device=device,
            country=country,
            landing_url=url,
            referrer=referrer,
            search_terms=terms,
            last_activity=t,
            previous_chats=chats,
        )
        return self._went_live(lv)

    def _went_live(self, lv: LiveVisitor) -> LiveVisitor:
        for chat in self.s.storage.visitor_chats(lv.visitor_id, open_only=True)[:1]:
            self._set_chat(lv, chat)
        self.live[lv.visitor_id] = lv
        self._gone.discard(lv.visitor_id)
        self._touch(lv.visitor_id)
        return lv

    def _resume_visit(self, vid: int, t: int) -> LiveVisitor | None:
        """After a restart, a visitor who never left carries on with the visit it had."""
        row = db.execute_sql(
            "SELECT v.id, v.number, v.started_at, v.last_seen, v.landing_url, v.referrer, "
            "v.search_terms, v.ip, v.user_agent, v.browser, v.os, v.device, v.country, v.pages, "
            "r.created_at, (SELECT COUNT(*) FROM chat WHERE visitor_id = ?) "
            "FROM visit v JOIN visitor r ON r.id = v.visitor_id "
            "WHERE v.visitor_id = ? AND v.ended_at IS NULL ORDER BY v.id DESC LIMIT 1",
            (vid, vid),
        ).fetchone()
        if row is None or t - row[3] > VISIT_RESUME * 1000:
            return None
        (
            visit_id,
            number,
            started,
            last_seen,
            landing,
            referrer,
            terms,
            ip,
            ua,
            browser,
            os_,
            device,
            country,
            pages,
            first_seen,
            chats,
        ) = row
        lv = LiveVisitor(
            visitor_id=vid,
            visit_id=visit_id,
            visit_number=number,
            first_seen=first_seen,
            started_at=started,
            ip=ip,
            user_agent=ua,
            browser=browser,
            os=os_,
            device=device,
            country=country,
            landing_url=landing,
            referrer=referrer,
            search_terms=terms,
            last_activity=last_seen,
            pages=pages,
            previous_chats=chats,
        )
        return self._went_live(lv)

    def track(self, body: Any, ip: str, ua: str) -> None:
        """A page view beacon: ``{"token", "url", "title", "referrer"}``."""
        if not isinstance(body, dict):
            raise ApiError("bad_json", "expected a JSON object")
        for k in body:
            if k not in ("token", "url", "title", "referrer", "type"):
                raise ApiError("unknown_field", f"'{k}' is not a field of a page view", field=k)
        vid = self.visitor_id_for(body.get("token"))
        url = _clip(body.get("url"), MAX_URL_CHARS)
        if not isinstance(body.get("url"), str) or not url:
            raise ApiError("invalid_field", "'url' is required", field="url")
        u = split_url(url)
        if u is None or u.scheme.lower() not in ("http", "https") or not u.netloc:
            raise ApiError("invalid_field", "'url' must be an http(s) URL", field="url")
        title = _clip(body.get("title"), MAX_TITLE_CHARS)
        referrer = _clip(body.get("referrer"), MAX_URL_CHARS)
        r = split_url(referrer) if referrer else None
        if r is None or r.scheme.lower() not in ("http", "https"):
            referrer = ""
        wait = self.rl_beacons.hit(vid)
        if wait:
            raise ApiError(
                "rate_limited",
                "too many page views; limit beacons_per_visitor",
                429,
                limit="beacons_per_visitor",
                retry_after=round(wait + 0.05, 1),
            )
        lv = self._live(vid, ip, ua, url, referrer)
        t = now_ms()
        if not lv.landing_url:  # the visit began with a stream (pop-out, restored window)
            lv.landing_url, lv.referrer, lv.search_terms = url, referrer, search_terms(referrer)
            self._landing.append((url, referrer, lv.search_terms, lv.visit_id))
        lv.url, lv.title, lv.page_since, lv.last_activity = url, title, t, t
        lv.pages += 1
        self._views.append((lv.visit_id, vid, url, title, referrer, t))
        if self.hub.count(f"v:{vid}") == 0:
            self._start_leave(lv)
        self._touch(vid)
        self._rules_check(lv)

    def stream_opened(self, party: Party) -> None:
        lv = self._live(party.visitor_id, party.ip, party.user_agent)
        if lv.leave_timer is not None:
            lv.leave_timer.cancel()
            lv.leave_timer = None
        self._touch(lv.visitor_id)

    def stream_closed(self, party: Party) -> None:
        lv = self.live.get(party.visitor_id)
        if lv is None or lv.left_at is not None:
            return
        if self.hub.count(f"v:{party.visitor_id}") == 0:
            self._start_leave(lv)
        self._touch(lv.visitor_id)

    def _start_leave(self, lv: LiveVisitor) -> None:
        # Every beacon of a visitor without a stream moves the deadline; the timer already
        # running then re-arms itself for the rest instead of being cancelled and made anew
        # (a timer per page view was a measurable share of the beacon path).
        grace = self.config.monitor_leave_grace
        lv.leave_at = time.monotonic() + grace
        if lv.leave_timer is None:
            lv.leave_timer = self.s.call_later(grace, lambda: self._leave(lv))

    def _leave(self, lv: LiveVisitor) -> None:
        lv.leave_timer = None
        rest = lv.leave_at - time.monotonic()
        if rest > 0.001 and self.live.get(lv.visitor_id) is lv:
            lv.leave_timer = self.s.call_later(rest, lambda: self._leave(lv))
            return
        if self.live.get(lv.visitor_id) is not lv or self.hub.count(f"v:{lv.visitor_id}"):
            return
        lv.left_at = now_ms()
        if lv.invitation and lv.invitation["state"] == "pending":
            lv.invitation["state"] = "expired"
        # The visit is over: a later arrival starts the next one (written with the page views).
        self._ended.append((lv.left_at, lv.visit_id))
        self._touch(lv.visitor_id)

    def _set_chat(self, lv: LiveVisitor, chat: Chat) -> None:
        lv.chat_id = chat.id if chat.status in OPEN_STATUSES else None
        lv.chat_status = chat.status if chat.status in OPEN_STATUSES else None
        op = self.s.storage.operator(chat.operator_id) if chat.operator_id else None
        lv.chat_operator = {"id": op.id, "name": op.display_name} if op else None

    def chat_changed(self, chat: Chat) -> None:
        """Called by the services after any change of a chat's status or operator."""
        lv = self.live.get(chat.visitor_id)
        if lv is None:
            return
        self._set_chat(lv, chat)
        self._touch(lv.visitor_id)

    def chat_started(self, visitor_id: int) -> None:
        """A chat the visitor started itself ends any pending invitation ("superseded")."""
        inv = self.pending_invitation(visitor_id)
        if inv is not None:
            inv["state"] = "superseded"
            self.hub.publish(
                [f"v:{visitor_id}"],
                {"type": "invitation_answered", "id": inv["id"], "state": "superseded"},
            )
            self._touch(visitor_id)

    # -- monitor events -----------------------------------------------------------------------

    def state_of(self, lv: LiveVisitor, t: int | None = None) -> str:
        t = now_ms() if t is None else t
        if lv.left_at is not None:
            return "left"
        if lv.chat_status == ACTIVE:
            return "chatting"
        if lv.chat_status == WAITING:
            return "waiting"
        if lv.invitation and lv.invitation["state"] == "pending":
            return "invited"
        if t - lv.last_activity > self._idle_ms:
            return "idle"
        return "browsing"

    def row(self, lv: LiveVisitor) -> dict:
        lv.state = self.state_of(lv)
        inv = lv.invitation
        return {
            "id": lv.visitor_id,
            "state": lv.state,
            "tabs": self.hub.count(f"v:{lv.visitor_id}"),
            "url": lv.url,
            "title": lv.title,
            "page_since": lv.page_since,
            "referrer": lv.referrer,
            "search_terms": lv.search_terms,
            "landing_url": lv.landing_url,
            "pages": lv.pages,
            "started_at": lv.started_at,
            "last_activity": lv.last_activity,
            "left_at": lv.left_at,
            "visit_number": lv.visit_number,
            "first_seen": lv.first_seen,
            "previous_chats": lv.previous_chats,
            "browser": lv.browser,
            "os": lv.os,
            "device": lv.device,
            "ip": lv.ip,
            "country": lv.country,
            "chat_id": lv.chat_id,
            "operator": lv.chat_operator,
            "invitation": {k: inv[k] for k in ("id", "state", "operator", "message")}
            if inv
            else None,
        }

    def snapshot_event(self) -> dict:
        return {"type": "visitors", "visitors": [self.row(lv) for lv in self.live.values()]}

    def _touch(self, vid: int) -> None:
        self._dirty.add(vid)
        if not self._flush_scheduled:
            self._flush_scheduled = True
            self.s.call_later(self.COALESCE, self._flush_monitor)

    def _flush_monitor(self) -> None:
        self._flush_scheduled = False
        dirty, self._dirty = self._dirty, set()
        gone, self._gone = self._gone, set()
        if self.hub.count("ops") == 0:
            return
        rows = [self.row(self.live[v]) for v in dirty if v in self.live]
        if rows or gone:
            self.hub.publish(
                ["ops"], {"type": "visitors_changed", "visitors": rows, "gone": sorted(gone)}
            )

    # -- periodic -----------------------------------------------------------------------------

    def tick(self) -> None:
        """Every second: idle transitions, invitation expiry, rules, forgetting who left."""
        t = now_ms()
        keep_left = 60_000
        rules = self.rules() if self.s.any_online() else []
        forget = []
        # No copy of the whole table: a list of 15,000 (id, visitor) pairs every second gets
        # promoted by the garbage collector and triggers full collections (lag spikes).
        for vid, lv in self.live.items():
            if lv.left_at is not None:
                if t - lv.left_at > keep_left:
                    forget.append(vid)
                continue
            inv = lv.invitation
            if inv and inv["state"] == "pending" and t >= inv["expires_at"]:
                inv["state"] = "expired"
                self.hub.publish([f"v:{vid}"], {"type": "invitation_expired", "id": inv["id"]})
            if rules:
                self._rules_check(lv, rules, t)
            if self.state_of(lv, t) != lv.state:
                self._touch(vid)
        for vid in forget:
            del self.live[vid]
            self._gone.add(vid)
            self._touch(vid)
        if self._views or self._ended or self._landing:
            self.flush_views()
        mono = time.monotonic()
        if mono - self._last_purge > 3600:
            self._last_purge = mono
            self.purge()

    def flush_views(self) -> None:
        """Group commit: page views, visit ends and landing pages since the last flush."""
        views, self._views = self._views, []
        ended, self._ended = self._ended, []
        landing, self._landing = self._landing, []
        pages: dict[int, tuple[int, int]] = {}
        for visit_id, _vid, _u, _t, _r, ts in views:
            n, _ = pages.get(visit_id, (0, 0))
            pages[visit_id] = (n + 1, ts)
        with db.atomic():
            db.cursor().executemany(
                "INSERT INTO page_view (visit_id, visitor_id, url, title, referrer, ts) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                views,
            )
            db.cursor().executemany(
                "UPDATE visit SET pages = pages + ?, last_seen = ? WHERE id = ?",
                [(n, ts, visit_id) for visit_id, (n, ts) in pages.items()],
            )
            db.cursor().executemany(
                "UPDATE visit SET landing_url = ?, referrer = ?, search_terms = ? WHERE id = ?",
                landing,
            )
            db.cursor().executemany(
                "UPDATE visit SET ended_at = ?, last_seen = MAX(last_seen, ?) WHERE id = ?",
                [(t, t, visit_id) for t, visit_id in ended],
            )

    def shutdown(self) -> None:
        """Before a stop: write what is pending, and when each visitor on the site was seen."""
        t = now_ms()
        db.cursor().executemany(
            "UPDATE visit SET last_seen = ? WHERE id = ?",
            [(t, lv.visit_id) for lv in self.live.values() if lv.left_at is None],
        )
        self.flush_views()

    def purge(self) -> None:
        """Delete page views older than ``[monitor] retention``; no cron needed."""
        cutoff = now_ms() - int(self.config.monitor_retention * 1000)
        # In batches, one per tick, so that a purge after a long downtime never stalls the loop.
        n = db.execute_sql(
            "DELETE FROM page_view WHERE id IN (SELECT id FROM page_view WHERE ts < ? LIMIT 5000)",
            (cutoff,),
        ).rowcount
        if n:
            log.info("purged %d page views older than the retention", n)
        if n == 5000:
            self._last_purge = 0.0  # more to do: the next tick continues

    # -- invitations --------------------------------------------------------------------------

    def invite(self, operator_id: int | None, visitor_id: int, message: str) -> dict:
        lv = self.live.get(visitor_id)
        if lv is None or lv.left_at is not None:
            raise ApiError(
                "visitor_left",
                f"visitor {visitor_id} is not on the site",
                409,
                visitor_id=visitor_id,
            )
        if lv.chat_status in OPEN_STATUSES:
            raise ApiError(
                "visitor_chatting",
                f"visitor {visitor_id} is already in a chat",
                409,
                visitor_id=visitor_id,
                chat_id=lv.chat_id,
            )
        inv = lv.invitation
        if inv and inv["state"] == "pending":
            return inv  # inviting twice does not make a second invitation
        if operator_id is not None:
            wait = self.rl_invites.hit(operator_id)
            if wait:
                raise ApiError(
                    "rate_limited",
                    "too many invitations; limit invitations_per_operator",
                    429,
                    limit="invitations_per_operator",
                    retry_after=round(wait + 0.05, 1),
                )
            op = self.s.storage.operator(operator_id)
            who = {"id": op.id, "name": op.display_name}
        else:
            who = None
        t = now_ms()
        ttl = self.config.monitor_invitation_ttl
        inv = {
            "id": secrets.token_urlsafe(9),
            "state": "pending",
            "operator": who,
            "message": message,
            "created_at": t,
            "expires_at": t + int(ttl * 1000),
        }
        lv.invitation = inv
        self.hub.publish([f"v:{visitor_id}"], self.invitation_event(inv))
        self._touch(visitor_id)
        return inv

    def invitation_event(self, inv: dict) -> dict:
        left = max(0, (inv["expires_at"] - now_ms()) / 1000)
        return {
            "type": "invitation",
            "id": inv["id"],
            "operator": inv["operator"],
            "message": inv["message"],
            "expires_in": round(left, 1),
        }

    def pending_invitation(self, visitor_id: int) -> dict | None:
        lv = self.live.get(visitor_id)
        inv = lv.invitation if lv else None
        if inv and inv["state"] == "pending" and inv["expires_at"] > now_ms():
            return inv
        return None

    def answer(self, visitor_id: int, invitation_id: str, accept: bool) -> dict:
        inv = self.pending_invitation(visitor_id)
        if inv is None or inv["id"] != invitation_id:
            raise ApiError("not_found", "no such invitation, or it expired", 404)
        inv["state"] = "accepted" if accept else "declined"
        self.hub.publish(
            [f"v:{visitor_id}"],
            {"type": "invitation_answered", "id": inv["id"], "state": inv["state"]},
        )
        self._touch(visitor_id)
        return inv

    # -- rules --------------------------------------------------------------------------------

    def rules(self) -> list[InviteRule]:
        if self._rules is None:
            q = InviteRule.select().where(InviteRule.enabled).order_by(InviteRule.id)
            self._rules = list(q)
        return self._rules

    def rules_changed(self) -> None:
        self._rules = None

    def _rules_check(self, lv: LiveVisitor, rules=None, t: int | None = None) -> None:
        if lv.auto_invited or lv.chat_status or lv.left_at is not None:
            return
        if lv.invitation and lv.invitation["state"] == "pending":
            return
        if rules is None:
            rules = self.rules() if self.s.any_online() else []
        t = now_ms() if t is None else t
        for rule in rules:
            if rule.matches(lv, t):
                lv.auto_invited = True
                self.invite(None, lv.visitor_id, rule.message)
                return

    def save_rule(self, body: Any, rule_id: int | None = None) -> InviteRule:
        """Create or change an automatic invitation rule from a console request body."""
        v = self.s.validate
        args = v.fields(
            body,
            {
                "name": ("name", rule_id is None),
                "message": ("invitation", rule_id is None),
                "enabled": ("bool", False),
                "conditions": ("conditions", rule_id is None),
            },
            "an invitation rule",
        )
        if "message" in args and not args["message"].strip():
            raise ApiError("invalid_field", "'message' must not be empty", field="message")
        if rule_id is None:
            rule = InviteRule.create(
                name=args["name"],
                message=args["message"],
                enabled=args.get("enabled", True),
                conditions=json.dumps(args["conditions"]),
                created_at=now_ms(),
            )
        else:
            rule = InviteRule.get_or_none(InviteRule.id == rule_id)
            if rule is None:
                raise ApiError("not_found", f"no rule {rule_id}", 404)
            for k in ("name", "message", "enabled"):
                if k in args:
                    setattr(rule, k, args[k])
            if "conditions" in args:
                rule.conditions = json.dumps(args["conditions"])
            rule.save()
        self.rules_changed()
        return InviteRule.get_by_id(rule.id)

    def delete_rule(self, rule_id: int) -> None:
        if InviteRule.delete().where(InviteRule.id == rule_id).execute() == 0:
            raise ApiError("not_found", f"no rule {rule_id}", 404)
        self.rules_changed()

    def detail(self, visitor_id: int) -> dict:
        """A visitor's visits with their page trails, and previous chats, for the console."""
        v = self.s.storage.visitor_by_id(visitor_id)
        if v is None:
            raise ApiError("not_found", f"no visitor {visitor_id}", 404)
        self.flush_views()
        visits = []
        for row in db.execute_sql(
            "SELECT id, number, started_at, last_seen, landing_url, referrer, search_terms, ip, "
            "browser, os, device, country, pages FROM visit WHERE visitor_id = ? "
            "ORDER BY id DESC LIMIT 20",
            (visitor_id,),
        ).fetchall():
            keys = (
                "id",
                "number",
                "started_at",
                "last_seen",
                "landing_url",
                "referrer",
                "search_terms",
                "ip",
                "browser",
                "os",
                "device",
                "country",
                "pages",
            )
            visit = dict(zip(keys, row, strict=True))
            visit["trail"] = [
                {"url": u, "title": ti, "ts": ts}
                for u, ti, ts in db.execute_sql(
                    "SELECT url, title, ts FROM page_view WHERE visit_id = ? ORDER BY id LIMIT 500",
                    (visit["id"],),
                ).fetchall()
            ]
            visits.append(visit)
        party = Party("operator")
        chats = [self.s.summary(c, party) for c in self.s.storage.visitor_chats(visitor_id)[:50]]
        lv = self.live.get(visitor_id)
        return {
            "visitor": self.row(lv) if lv else None,
            "first_seen": v.created_at,
            "visits": visits,
            "chats": chats,
        }


###############################################################################
# 6. HTTP and WebSocket handlers ##############################################
###############################################################################

import tornado.httpserver  # noqa: E402
import tornado.ioloop  # noqa: E402
import tornado.netutil  # noqa: E402
import tornado.web  # noqa: E402
import tornado.websocket  # noqa: E402

SESSION_COOKIE = "cutelive_session"

_HTTP_CODES = {
    400: "bad_request",
    401: "not_authenticated",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    413: "body_too_large",
}


def client_ip(request, trusted_proxies: list[str]) -> str:
    """The client's address; ``X-Forwarded-For`` counts only from a trusted proxy."""
    ip = request.remote_ip or ""
    if trusted_proxies and ip in trusted_proxies:
        fwd = request.headers.get("X-Forwarded-For", "")
        for hop in reversed([h.strip() for h in fwd.split(",") if h.strip()]):
            try:
                ipaddress.ip_address(hop)
            except ValueError:
                break
            ip = hop
            if hop not in trusted_proxies:
                break
    return ip


class _Common:
    """What HTTP and WebSocket handlers share: client address, origins, JSON parsing."""

    services: Services

    @property
    def ip(self) -> str:
        if not hasattr(self, "_ip"):
            self._ip = client_ip(self.request, self.services.config.server_trusted_proxies)
        return self._ip

    @property
    def user_agent(self) -> str:
        return self.request.headers.get("User-Agent", "")[:MAX_UA_CHARS]

    def own_origin(self, origin: str) -> bool:
        o = split_url(origin.lower())
        if o is not None and o.netloc and o.netloc == self.request.host.lower():
            return True
        pub = self.services.config.server_public_url
        return bool(pub) and origin.lower().rstrip("/") == pub.lower()

    def visitor_origin_allowed(self) -> bool:
        origin = self.request.headers.get("Origin")
        allowed = self.services.allowed_origins()
        if not origin or not allowed or self.own_origin(origin):
            return True
        return origin.lower().rstrip("/") in allowed

    def check_request_rate(self) -> None:
        s = self.services
        if s.fd_guard.full():
            raise ApiError(
                "server_full", "the server is at its connection limit; try again shortly", 503
            )
        s._rate(s.rl_requests, self.ip, "requests_per_ip", "requests from this address")

    @staticmethod
    def parse_json(data: bytes | str) -> Any:
        if isinstance(data, bytes):
            try:
                data = data.decode("utf-8")
            except UnicodeDecodeError:
                raise ApiError("invalid_utf8", "the body is not valid UTF-8") from None
        try:
            return json.loads(data)
        except (ValueError, RecursionError):
            raise ApiError("bad_json", "the body is not valid JSON") from None


class BaseHandler(_Common, tornado.web.RequestHandler):
    """JSON API handler: one error format, per-IP request limit, body limit."""

    def initialize(self, services: Services) -> None:
        self.services = services
        self.clear()  # again, now that set_default_headers can see the services

    def set_default_headers(self) -> None:
        self.set_header("X-Content-Type-Options", "nosniff")
        self.set_header("Cache-Control", "no-store")
        self.set_header("Content-Type", "application/json; charset=utf-8")

    def prepare(self) -> None:
        self.check_request_rate()

    def check_xsrf_cookie(self) -> None:
        pass  # only console handlers use cookies, and they check it

    def body_json(self, allow_empty: bool = False) -> Any:
        limit = self.services.config.limits_max_body
        body = self.request.body
        if len(body) > limit:
            raise ApiError(
                "body_too_large",
                f"the body is {len(body)} bytes; limit max_body is {limit}",
                413,
                limit="max_body",
            )
        if allow_empty and not body.strip():
            return {}
        return self.parse_json(body)

    def reply(self, obj: Any, status: int = 200) -> None:
        self.set_status(status)
        self.finish(encode(obj))

    def log_exception(self, typ, value, tb) -> None:
        if isinstance(value, ApiError):
            return
        super().log_exception(typ, value, tb)

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        exc = kwargs.get("exc_info", (None, None, None))[1]
        if isinstance(exc, ApiError):
            err = exc
        elif isinstance(exc, tornado.web.HTTPError) and exc.status_code < 500:
            err = ApiError(
                _HTTP_CODES.get(exc.status_code, "bad_request"),
                exc.log_message or self._reason,
                exc.status_code,
            )
        else:
            err = ApiError("server_error", "internal error; it has been logged", 500)
        self.set_header("Content-Type", "application/json; charset=utf-8")
        if err.status == 429 and "retry_after" in err.extra:
            self.set_header("Retry-After", str(int(err.extra["retry_after"]) + 1))
        self.set_status(err.status)
        self.finish(encode(err.event()))


class PublicHandler(BaseHandler):
    """Public, read-only: any origin."""

    def set_default_headers(self) -> None:
        super().set_default_headers()
        self.set_header("Access-Control-Allow-Origin", "*")


class MetricsHandler(BaseHandler):
    """GET /api/metrics: load figures for monitoring and bench/; loopback clients only."""

    def get(self) -> None:
        # self.ip honours trusted proxies; anything relayed by a proxy is not local.
        relayed = "X-Forwarded-For" in self.request.headers or "X-Real-Ip" in self.request.headers
        if relayed or not ipaddress.ip_address(self.ip or "0.0.0.0").is_loopback:
            raise ApiError("not_found", "no such path", 404)
        self.reply(self.services.metrics(reset=self.get_query_argument("reset", "") == "1"))


class StatusHandler(PublicHandler):
    """GET /api/status: is any operator online."""

    def get(self) -> None:
        self.reply({"online": self.services.any_online()})


class WidgetConfigHandler(PublicHandler):
    """GET /api/widget/config: the public widget settings."""

    def get(self) -> None:
        self.reply(self.services.widget_config())


class ButtonHandler(PublicHandler):
    """GET /api/button: the online or offline button image, for embeds without JavaScript."""

    def get(self) -> None:
        s = self.services
        state = "online" if s.any_online() else "offline"
        custom = s.settings()["appearance"].get(f"image_{state}")
        self.set_header("Cache-Control", "no-store")
        if custom:
            self.redirect(custom, status=302)
            return
        with open(os.path.join(ASSETS_DIR, "img", f"{state}.svg"), "rb") as f:
            data = f.read()
        self.set_header("Content-Type", "image/svg+xml")
        self.finish(data)


class VisitorHandler(BaseHandler):
    """Visitor API: bearer token, CORS for the customer's sites, origin allow-list."""

    def set_default_headers(self) -> None:
        super().set_default_headers()
        origin = self.request.headers.get("Origin")
        # Tornado calls this once before initialize(); the real call comes from clear() later.
        if origin and hasattr(self, "services") and self.visitor_origin_allowed():
            self.set_header("Access-Control-Allow-Origin", origin)
            self.set_header("Access-Control-Allow-Headers", "Authorization, Content-Type")
            self.set_header("Access-Control-Allow-Methods", "GET, POST, OPTIONS")
            self.set_header("Access-Control-Max-Age", "600")
        self.set_header("Vary", "Origin")

    def prepare(self) -> None:
        if not self.visitor_origin_allowed():
            raise ApiError(
                "origin_not_allowed", "this site is not in [widget] allowed_origins", 403
            )
        super().prepare()

    def options(self, *args: Any) -> None:
        self.set_status(204)
        self.finish()

    def party(self) -> Party:
        auth = self.request.headers.get("Authorization", "")
        token = auth[7:].strip() if auth[:7].lower() == "bearer " else ""
        return self.services.visitor_party(token, self.ip, self.user_agent)


class VisitorTokenHandler(VisitorHandler):
    """POST /api/visitor/token: a new anonymous visitor."""

    def post(self) -> None:
        self.body_json(allow_empty=True)
        token, visitor = self.services.new_visitor(self.ip, self.user_agent)
        self.reply({"token": token, "visitor_id": visitor.id}, 201)


class _PollMixin:
    """POST .../poll: the long-poll transport (docs/PROTOCOL.md §3.2)."""

    async def _poll(self, party: Party) -> None:
        s = self.services
        body = self.body_json()
        if not isinstance(body, dict):
            raise ApiError("bad_json", "expected a JSON object")
        kind = "visitor_cursors" if party.role == "visitor" else "cursors"
        args = s.validate.fields(
            body, {"conn": ("token", False), "cursors": (kind, False)}, "a poll"
        )
        cursors = args.get("cursors", {})
        conn = s.poll_conns.get(args.get("conn") or "")
        if conn is not None and (
            conn.party.visitor_id,
            conn.party.operator_id,
            conn.party.session_id,
        ) != (party.visitor_id, party.operator_id, party.session_id):
            conn = None
        if conn is None:
            conn = s.new_poll_conn(party)
            pairs = s.welcome(party, cursors)
            # Only what was really sent counts as delivered (never a chat that got a reset).
            for _, ev in pairs:
                if ev and "seq" in ev:
                    conn.delivered[ev["chat_id"]] = ev["seq"]
            sent = {**cursors, **conn.delivered}
            self._send_poll(conn, [t for t, _ in pairs] + s.poll_collect(conn, sent))
            return
        if conn.waiter is not None and not conn.waiter.done():
            conn.waiter.set_result(None)  # a newer poll replaces a held one
        conn.last_poll = time.monotonic()
        events = s.poll_collect(conn, cursors)
        if not events and not conn.closed:
            waiter = conn.waiter = asyncio.get_running_loop().create_future()
            self._conn = conn
            try:
                await asyncio.wait_for(asyncio.shield(waiter), s.config.realtime_poll_timeout)
            except TimeoutError:
                pass
            superseded = conn.waiter is not waiter
            if not superseded:
                conn.waiter = None
            conn.last_poll = time.monotonic()
            if self.request.connection.stream.closed():
                return
            # A newer poll of the same conn took over: it collects the events, this one ends.
            events = [] if superseded else s.poll_collect(conn, cursors)
        self._send_poll(conn, events)

    def _send_poll(self, conn: PollConn, events: list[str]) -> None:
        self.set_status(200)
        # The stored events are JSON already: splice them in rather than decode and re-encode.
        self.finish(f'{{"conn": {json.dumps(conn.id)}, "events": [{", ".join(events)}]}}')

    def on_connection_close(self) -> None:
        conn = getattr(self, "_conn", None)
        if conn is not None:
            conn.wake()


class TrackHandler(VisitorHandler):
    """POST /api/visitor/track: a page-view beacon (token in the body: no preflight needed)."""

    def post(self) -> None:
        self.services.monitor.track(self.body_json(), self.ip, self.user_agent)
        self.set_status(204)
        self.finish()


class VisitorPollHandler(_PollMixin, VisitorHandler):
    """POST /api/visitor/poll: long-poll for visitors."""

    async def post(self) -> None:
        await self._poll(self.party())


class VisitorSendHandler(VisitorHandler):
    """POST /api/visitor/send: one command, answered by its ack or error."""

    def post(self) -> None:
        self.reply(self.services.run_command(self.party(), None, self.body_json()))


class VisitorChatsHandler(VisitorHandler):
    """GET /api/visitor/chats: the visitor's chats, newest first."""

    def get(self) -> None:
        party = self.party()
        s = self.services
        chats = s.storage.visitor_chats(party.visitor_id)
        self.reply({"chats": [s.summary(c, party) for c in chats]})


class VisitorChatHandler(VisitorHandler):
    """GET /api/visitor/chats/ID: one chat with its whole transcript."""

    def get(self, chat_id: str) -> None:
        self.reply(self.services.transcript(self.party(), _path_id(chat_id)))


def _path_id(text: str) -> int:
    n = int(text) if text.isascii() and text.isdigit() and len(text) < 18 else 0
    if n <= 0:
        raise ApiError("not_found", "no such id", 404)
    return n


class ConsoleHandler(BaseHandler):
    """Console API: session cookie and a CSRF token on every state change."""

    party: Party | None = None

    def check_xsrf_cookie(self) -> None:
        try:
            tornado.web.RequestHandler.check_xsrf_cookie(self)
        except tornado.web.HTTPError:
            raise ApiError(
                "csrf_failed",
                "missing or wrong X-XSRFToken header; get one from GET /api/console/session",
                403,
            ) from None

    def prepare(self) -> None:
        super().prepare()
        self.party = self.services.operator_party(
            self.get_cookie(SESSION_COOKIE), self.ip, self.user_agent
        )

    def require(self, admin: bool = False) -> Party:
        if self.party is None:
            raise ApiError("not_authenticated", "log in first", 401)
        if admin:
            op = self.services.storage.operator(self.party.operator_id)
            if not op.is_admin:
                raise ApiError("forbidden", "only administrators may do this", 403)
        return self.party

    def set_session_cookie(self, token: str) -> None:
        self.set_cookie(
            SESSION_COOKIE,
            token,
            path="/",
            httponly=True,
            samesite="Strict",
            secure=self.request.protocol == "https",
            expires_days=self.services.config.operators_session_lifetime / 86400,
        )


class SessionHandler(ConsoleHandler):
    """GET /api/console/session: who am I, the CSRF token, whether setup is needed."""

    def get(self) -> None:
        s = self.services
        op = None
        if self.party is not None:
            o = s.storage.operator(self.party.operator_id)
            op = o.public(s.effective_status(o.id))
        self.reply(
            {
                "operator": op,
                "xsrf": self.xsrf_token.decode(),
                "public_url": s.base_url,
                "setup_required": s.setup_token is not None and s.storage.operator_count() == 0,
            }
        )


class SetupHandler(ConsoleHandler):
    """POST /api/console/setup: create the first administrator with the logged setup token."""

    async def post(self) -> None:
        s = self.services
        body = self.body_json()
        args = s.validate.fields(
            body,
            {
                "setup_token": ("token", True),
                "username": ("username", True),
                "display_name": ("name", True),
                "password": ("password", True),
            },
            "setup",
        )
        op = await s.setup_first_admin(**args)
        token = s.new_session(op, self.ip, self.user_agent)
        self.set_session_cookie(token)
        log.info("first administrator %r created", op.username)
        self.reply({"operator": op.public(s.effective_status(op.id))}, 201)


class LoginHandler(ConsoleHandler):
    """POST /api/console/login: start a session."""

    async def post(self) -> None:
        s = self.services
        body = self.body_json()
        args = s.validate.fields(
            body, {"username": ("token", True), "password": ("secret", True)}, "login"
        )
        token, op = await s.login(args["username"], args["password"], self.ip, self.user_agent)
        self.set_session_cookie(token)
        self.reply({"operator": op.public(s.effective_status(op.id))})


class LogoutHandler(ConsoleHandler):
    """POST /api/console/logout: end this session and close its sockets."""

    def post(self) -> None:
        party = self.require()
        self.services.end_sessions(party.operator_id, "logout", only_session_id=party.session_id)
        self.clear_cookie(SESSION_COOKIE, path="/")
        self.reply({})


class ConsolePollHandler(_PollMixin, ConsoleHandler):
    """POST /api/console/poll: long-poll for the console."""

    async def post(self) -> None:
        await self._poll(self.require())


class ConsoleSendHandler(ConsoleHandler):
    """POST /api/console/send: one operator command."""

    def post(self) -> None:
        self.reply(self.services.run_command(self.require(), None, self.body_json()))


class ConsoleChatsHandler(ConsoleHandler):
    """GET /api/console/chats: chats by status, newest first."""

    def get(self) -> None:
        party = self.require()
        s = self.services
        status = self.get_query_argument("status", "")
        if status not in ("", WAITING, ACTIVE, CLOSED, MISSED, "mine"):
            raise ApiError(
                "invalid_field",
                "status must be waiting, active, closed, missed or mine",
                field="status",
            )
        limit = self.get_query_argument("limit", "50")
        before = self.get_query_argument("before", "0")
        if not (limit.isascii() and limit.isdigit() and 1 <= int(limit) <= 200):
            raise ApiError("invalid_field", "limit must be 1 to 200", field="limit")
        if not (before.isascii() and before.isdigit() and len(before) < 18):
            raise ApiError("invalid_field", "before must be a chat id", field="before")
        mine = party.operator_id if status == "mine" else None
        chats = s.storage.list_chats(
            None if status == "mine" else status or None, mine, int(limit), int(before)
        )
        self.reply({"chats": [s.summary(c, party) for c in chats]})


class ConsoleChatHandler(ConsoleHandler):
    """GET /api/console/chats/ID: one chat with its transcript."""

    def get(self, chat_id: str) -> None:
        self.reply(self.services.transcript(self.require(), _path_id(chat_id)))


class ConsoleVisitorsHandler(ConsoleHandler):
    """GET /api/console/visitors: everyone on the site now (the monitor's snapshot)."""

    def get(self) -> None:
        self.require()
        self.reply({"visitors": self.services.monitor.snapshot_event()["visitors"]})


class ConsoleVisitorHandler(ConsoleHandler):
    """GET /api/console/visitors/ID: a visitor's visits, page trails and chats."""

    def get(self, visitor_id: str) -> None:
        self.require()
        self.reply(self.services.monitor.detail(_path_id(visitor_id)))


class InviteRulesHandler(ConsoleHandler):
    """GET/POST /api/console/invite-rules: automatic invitation rules."""

    def get(self) -> None:
        self.require()
        rules = InviteRule.select().order_by(InviteRule.id)
        self.reply({"rules": [r.public() for r in rules], "conditions": list(RULE_CONDITIONS)})

    def post(self) -> None:
        self.require(admin=True)
        self.reply({"rule": self.services.monitor.save_rule(self.body_json()).public()}, 201)


class InviteRuleHandler(ConsoleHandler):
    """PATCH/DELETE /api/console/invite-rules/ID: change or remove a rule."""

    def patch(self, rule_id: str) -> None:
        self.require(admin=True)
        rule = self.services.monitor.save_rule(self.body_json(), _path_id(rule_id))
        self.reply({"rule": rule.public()})

    def delete(self, rule_id: str) -> None:
        self.require(admin=True)
        self.services.monitor.delete_rule(_path_id(rule_id))
        self.reply({})


class OfflineMessagesHandler(ConsoleHandler):
    """GET /api/console/offline-messages: the inbox, newest first."""

    def get(self) -> None:
        self.require()
        msgs = OfflineMessage.select().order_by(OfflineMessage.id.desc()).limit(500)
        self.reply({"messages": [m.public() for m in msgs]})


class OfflineMessageHandler(ConsoleHandler):
    """PATCH /api/console/offline-messages/ID: mark read or unread."""

    def patch(self, msg_id: str) -> None:
        self.require()
        args = self.services.validate.fields(
            self.body_json(), {"read": ("bool", True)}, "an offline message"
        )
        msg = OfflineMessage.get_or_none(OfflineMessage.id == _path_id(msg_id))
        if msg is None:
            raise ApiError("not_found", "no such message", 404)
        msg.read = args["read"]
        msg.save()
        self.reply(msg.public())


class PasswordHandler(ConsoleHandler):
    """POST /api/console/password: change your own password."""

    async def post(self) -> None:
        await self.services.change_own_password(self.require(), self.body_json())
        self.reply({})


class SettingsHandler(ConsoleHandler):
    """GET/PATCH /api/console/settings: widget appearance and allowed origins."""

    def get(self) -> None:
        self.require()
        self.reply(self.services.settings_view())

    def patch(self) -> None:
        self.require(admin=True)
        self.reply(self.services.update_settings(self.body_json()))


class OperatorsHandler(ConsoleHandler):
    """GET/POST /api/console/operators: list operators; administrators add one."""

    def get(self) -> None:
        self.require()
        s = self.services
        self.reply(
            {"operators": [o.public(s.effective_status(o.id)) for o in s.storage.operators()]}
        )

    async def post(self) -> None:
        self.require(admin=True)
        s = self.services
        args = s.validate.fields(
            self.body_json(),
            {
                "username": ("username", True),
                "display_name": ("name", True),
                "password": ("password", True),
                "is_admin": ("bool", False),
            },
            "an operator",
        )
        op = await s.create_operator(**args)
        self.reply({"operator": op.public(s.effective_status(op.id))}, 201)


class OperatorHandler(ConsoleHandler):
    """PATCH /api/console/operators/ID: edit, disable, reset the password (administrators)."""

    async def patch(self, operator_id: str) -> None:
        party = self.require(admin=True)
        s = self.services
        op = await s.update_operator(party, _path_id(operator_id), self.body_json())
        self.reply({"operator": op.public(s.effective_status(op.id))})


class _Utf8Checking(tornado.websocket.WebSocketProtocol13):
    """Closes with 1007 (not a silent abort) on a text frame that is not UTF-8."""

    _too_big = False
    _draining = False

    def _handle_message(self, opcode: int, data: bytes):
        if opcode == 0x1 and not self._frame_compressed:
            try:
                data.decode("utf-8")
            except UnicodeDecodeError:
                self.close(1007, "text frame is not valid UTF-8")
                return None
        return super()._handle_message(opcode, data)

    def close(self, code: int | None = None, reason: str | None = None) -> None:
        if code == 1009 and not self.server_terminated:
            self._too_big = True
        super().close(code, reason)
        if reason == "ping timed out" and not self.client_terminated:
            # Tornado's ping timeout: the peer answered nothing for a whole heartbeat, so it
            # will not answer the close frame either. Free the connection now rather than
            # after Tornado's 5 s close handshake (PROTOCOL §9: dropped within a heartbeat).
            self._abort()

    def _abort(self) -> None:
        """After a 1009 close, drain instead of closing at once.

        Tornado aborts right after sending the 1009 close frame, with the rest of the big
        frame unread; closing a socket with unread input resets the connection, and the reset
        can destroy the close frame before the client reads it. So: FIN after the frame, then
        read and drop what the client still sends (at most 1 MiB, 5 s) before closing.
        """
        stream = self.stream
        if self._draining:
            self.client_terminated = self.server_terminated = True
            return  # drain_then_close() closes the stream
        if not self._too_big or stream is None or stream.closed():
            super()._abort()
            return
        self._draining = True
        self.client_terminated = self.server_terminated = True
        try:
            stream.socket.shutdown(socket.SHUT_WR)
        except OSError:
            pass

        async def drain() -> None:
            left = 1024 * 1024
            while left > 0:
                left -= len(await stream.read_bytes(65536, partial=True))

        async def drain_then_close() -> None:
            try:
                await asyncio.wait_for(drain(), 5)
            except (tornado.iostream.StreamClosedError, TimeoutError):
                pass
            stream.close()

        asyncio.ensure_future(drain_then_close())


class StreamSocket(_Common, tornado.websocket.WebSocketHandler):
    """The WebSocket transport (docs/PROTOCOL.md §3.1); subclasses set the party's role."""

    role = "visitor"

    def initialize(self, services: Services) -> None:
        self.services = services
        self.party: Party | None = None
        self._counted = False
        self._hello_timer = None

    def get_websocket_protocol(self):
        if self.request.headers.get("Sec-WebSocket-Version") != "13":
            return None
        params = tornado.websocket._WebSocketParams(
            ping_interval=self.ping_interval,
            ping_timeout=self.ping_timeout,
            max_message_size=self.max_message_size,
            compression_options=self.get_compression_options(),
        )
        return _Utf8Checking(self, False, params)

    def _refuse(self, err: ApiError) -> None:
        self.set_status(err.status)
        self.set_header("Content-Type", "application/json; charset=utf-8")
        self.finish(encode(err.event()))

    def check_xsrf_cookie(self) -> None:
        # Only GET (the upgrade) is served; other methods answer 405 below, after the console
        # socket's CSRF check like every console route.
        if self.role == "operator":
            ConsoleHandler.check_xsrf_cookie(self)

    def log_exception(self, typ, value, tb) -> None:
        if not isinstance(value, ApiError):
            super().log_exception(typ, value, tb)

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        exc = kwargs.get("exc_info", (None, None, None))[1]
        if not isinstance(exc, ApiError):
            code = _HTTP_CODES.get(status_code, "server_error")
            exc = ApiError(code, self._reason, status_code)
        self._refuse(exc)

    def get(self, *args: Any, **kwargs: Any):
        # Not a coroutine itself: it returns WebSocketHandler.get's, which Tornado awaits for
        # the socket's whole life, so a held socket carries no extra coroutine frame of ours.
        s = self.services
        try:
            self.check_request_rate()
            self.check_party_origin()
            if s.sockets_per_ip[self.ip] >= s.config.limits_sockets_per_ip:
                raise ApiError(
                    "rate_limited",
                    f"too many open WebSockets from this address; limit sockets_per_ip is "
                    f"{s.config.limits_sockets_per_ip}",
                    429,
                    limit="sockets_per_ip",
                )
            self.authenticate()
        except ApiError as e:
            return self._refuse(e)
        return super().get(*args, **kwargs)

    def check_party_origin(self) -> None:
        if not self.visitor_origin_allowed():
            raise ApiError(
                "origin_not_allowed", "this site is not in [widget] allowed_origins", 403
            )

    def authenticate(self) -> None:
        pass

    def check_origin(self, origin: str) -> bool:
        return True  # checked in get() with a JSON answer

    def open(self, *args: Any) -> None:
        if self.services.fd_guard.full():
            self.close(1013, "server full; try again later")
            return
        self.services.sockets_per_ip[self.ip] += 1
        self._counted = True
        self.set_nodelay(True)
        loop = tornado.ioloop.IOLoop.current()
        self._hello_timer = loop.call_later(HELLO_TIMEOUT, self._no_hello)

    def _no_hello(self) -> None:
        if self.party is None or not getattr(self, "_hello_done", False):
            self.close(CLOSE_NO_HELLO, "no hello within 10 seconds")

    def send(self, event: dict) -> None:
        self.deliver(encode(event), event)

    def deliver(self, text: str, event: dict | None) -> None:
        if self.ws_connection is None or self.ws_connection.is_closing():
            return
        held = getattr(self, "_held", None)
        if held is not None:
            held.append((text, event))
            return
        try:
            self.write_message(text).add_done_callback(self._written)
        except tornado.websocket.WebSocketClosedError:
            pass

    @staticmethod
    def _written(fut: asyncio.Future) -> None:
        # Retrieve the write's outcome: a peer that left mid-write is normal, and an unretrieved
        # WebSocketClosedError would be logged as "Task exception was never retrieved".
        if not fut.cancelled():
            fut.exception()

    def on_message(self, message: str | bytes) -> None:
        if isinstance(message, bytes):
            self.send(
                ApiError("bad_json", "binary frames are not accepted; send JSON text").event()
            )
            return
        try:
            cmd = self.parse_json(message)
        except ApiError as e:
            self.send(e.event())
            return
        if not getattr(self, "_hello_done", False):
            self.hello(cmd)
            return
        s = self.services
        wait = s.rl_frames.hit(id(self))
        if wait:
            ref = cmd.get("id") if isinstance(cmd, dict) else None
            self.send(
                ApiError(
                    "rate_limited",
                    "too many commands on this socket; limit commands_per_socket",
                    429,
                    limit="commands_per_socket",
                    retry_after=round(wait + 0.05, 1),
                ).event(ref if _request_id_ok(ref) else None)
            )
            return
        self.send(s.dispatch(self.party, self, cmd))

    def hello(self, cmd: Any) -> None:
        s = self.services
        ref = cmd.get("id") if isinstance(cmd, dict) else None
        ref = ref if _request_id_ok(ref) else None
        try:
            if not isinstance(cmd, dict) or cmd.get("type") != "hello":
                raise ApiError("hello_required", "the first frame must be a 'hello' command")
            args = s.validate.fields(cmd, COMMANDS[self.role]["hello"], "'hello'")
            if self.role == "visitor":
                self.party = s.visitor_party(args["token"], self.ip, self.user_agent)
        except ApiError as e:
            self.send(e.event(ref))
            if e.code == "bad_token":
                self.close(CLOSE_BAD_TOKEN, "unknown visitor token")
            return
        self._hello_done = True
        if self._hello_timer is not None:
            tornado.ioloop.IOLoop.current().remove_timeout(self._hello_timer)
        # What attach() publishes (an operator's own presence) goes after the welcome.
        self._held: list | None = []
        s.attach(self, self.party)
        held, self._held = self._held, None
        for text, ev in s.welcome(self.party, args.get("cursors", {})) + held:
            self.deliver(text, ev)

    def on_close(self) -> None:
        if self._counted:
            self._counted = False
            c = self.services.sockets_per_ip
            c[self.ip] -= 1
            if c[self.ip] <= 0:
                del c[self.ip]
        if self._hello_timer is not None:
            tornado.ioloop.IOLoop.current().remove_timeout(self._hello_timer)
        if getattr(self, "_hello_done", False):
            self.services.detach(self, self.party)


class VisitorSocket(StreamSocket):
    """GET /api/visitor/ws: the visitor's WebSocket."""

    role = "visitor"


class ConsoleSocket(StreamSocket):
    """GET /api/console/ws: the operator's WebSocket (own origin, session cookie)."""

    role = "operator"

    def check_party_origin(self) -> None:
        origin = self.request.headers.get("Origin")
        if origin and not self.own_origin(origin):
            raise ApiError(
                "origin_not_allowed", "the console socket accepts only its own origin", 403
            )

    def authenticate(self) -> None:
        self.party = self.services.operator_party(
            self.get_cookie(SESSION_COOKIE), self.ip, self.user_agent
        )
        if self.party is None:
            raise ApiError("not_authenticated", "log in first", 401)


class GuardedHTTPServer(tornado.httpserver.HTTPServer):
    """Closes a new connection at once when the process is at its hard file cap."""

    def initialize(self, *args: Any, fd_guard: FdGuard, **kwargs: Any) -> None:
        super().initialize(*args, **kwargs)
        self.fd_guard = fd_guard

    def handle_stream(self, stream, address) -> None:
        self.fd_guard.accepted()
        if self.fd_guard.full(hard=True):
            stream.close()
            return
        super().handle_stream(stream, address)


class AssetHandler(tornado.web.StaticFileHandler):
    """Static browser files from ``assets/``; widget files may be loaded by any site."""

    def set_extra_headers(self, path: str) -> None:
        self.set_header("X-Content-Type-Options", "nosniff")
        if path.startswith("widget") or path.startswith("img"):
            self.set_header("Access-Control-Allow-Origin", "*")
        self.set_header("Cache-Control", "no-cache")


class FileHandler(tornado.web.StaticFileHandler):
    """One fixed file (``/widget.js``, ``/console/``, ``/chat``)."""

    def initialize(self, path: str, filename: str) -> None:
        super().initialize(path)
        self.filename = filename

    async def get(self, *args: Any, include_body: bool = True) -> None:
        await super().get(self.filename, include_body=include_body)

    def set_extra_headers(self, path: str) -> None:
        self.set_header("X-Content-Type-Options", "nosniff")
        self.set_header("Cache-Control", "no-cache")
        if path.endswith(".js"):
            self.set_header("Access-Control-Allow-Origin", "*")


class NotFoundHandler(BaseHandler):
    """Anything else: a JSON 404."""

    def prepare(self) -> None:
        raise ApiError("not_found", f"no such path {self.request.path[:200]}", 404)


###############################################################################
# 7. Application factory ######################################################
###############################################################################


def routes(services: Services) -> list:
    """The whole route table (docs/PROTOCOL.md documents every ``/api`` route here)."""
    s = dict(services=services)
    a = ASSETS_DIR
    return [
        (r"/api/status", StatusHandler, s),
        (r"/api/metrics", MetricsHandler, s),
        (r"/api/widget/config", WidgetConfigHandler, s),
        (r"/api/button", ButtonHandler, s),
        (r"/api/visitor/token", VisitorTokenHandler, s),
        (r"/api/visitor/ws", VisitorSocket, s),
        (r"/api/visitor/poll", VisitorPollHandler, s),
        (r"/api/visitor/track", TrackHandler, s),
        (r"/api/visitor/send", VisitorSendHandler, s),
        (r"/api/visitor/chats", VisitorChatsHandler, s),
        (r"/api/visitor/chats/([^/]+)", VisitorChatHandler, s),
        (r"/api/console/session", SessionHandler, s),
        (r"/api/console/setup", SetupHandler, s),
        (r"/api/console/login", LoginHandler, s),
        (r"/api/console/logout", LogoutHandler, s),
        (r"/api/console/ws", ConsoleSocket, s),
        (r"/api/console/poll", ConsolePollHandler, s),
        (r"/api/console/send", ConsoleSendHandler, s),
        (r"/api/console/chats", ConsoleChatsHandler, s),
        (r"/api/console/chats/([^/]+)", ConsoleChatHandler, s),
        (r"/api/console/visitors", ConsoleVisitorsHandler, s),
        (r"/api/console/visitors/([^/]+)", ConsoleVisitorHandler, s),
        (r"/api/console/invite-rules", InviteRulesHandler, s),
        (r"/api/console/invite-rules/([^/]+)", InviteRuleHandler, s),
        (r"/api/console/offline-messages", OfflineMessagesHandler, s),
        (r"/api/console/offline-messages/([^/]+)", OfflineMessageHandler, s),
        (r"/api/console/password", PasswordHandler, s),
        (r"/api/console/settings", SettingsHandler, s),
        (r"/api/console/operators", OperatorsHandler, s),
        (r"/api/console/operators/([^/]+)", OperatorHandler, s),
        (r"/api/.*", NotFoundHandler, s),
        (r"/widget\.js", FileHandler, dict(path=a, filename="widget/widget.js")),
        (r"/chat", FileHandler, dict(path=a, filename="widget/chat.html")),
        (r"/console/?", FileHandler, dict(path=a, filename="console/index.html")),
        (r"/assets/(.*)", AssetHandler, dict(path=a)),
        (
            r"/demo/(.*)",
            AssetHandler,
            dict(path=os.path.join(a, "demo"), default_filename="index.html"),
        ),
        (r"/()", tornado.web.RedirectHandler, dict(url="/console/")),
    ]


def make_app(config: Config, storage: Storage | None = None) -> tornado.web.Application:
    """Build the application: storage opened and migrated, services started, routes bound.

    Must be called with an event loop running (timers are scheduled on it).
    """
    if storage is None:
        storage = Storage(
            os.path.join(config.server_data_dir, "cutelive.db"),
            config.database_synchronous,
            config.database_busy_timeout,
        )
    storage.open()
    loop = asyncio.get_running_loop()
    services = Services(
        config,
        storage,
        Hub(),
        call_later=loop.call_later,
        run_blocking=lambda fn, *a: loop.run_in_executor(None, fn, *a),
    )
    services.start()
    ticker = tornado.ioloop.PeriodicCallback(services.tick, 1000)
    ticker.start()
    services.lag.start()
    # Load the user-agent rules in the background so the first visitor does not wait for them.
    loop.run_in_executor(None, services.monitor.ua.parse, "Mozilla/5.0 (X11; Linux x86_64)")
    secure = config.base_url().startswith("https://")
    app = tornado.web.Application(
        routes(services),
        default_handler_class=NotFoundHandler,
        default_handler_args=dict(services=services),
        cookie_secret=storage.secret("cookie_secret"),
        xsrf_cookies=True,
        xsrf_cookie_kwargs=dict(httponly=True, samesite="Strict", secure=secure),
        websocket_ping_interval=config.realtime_heartbeat,
        websocket_ping_timeout=config.realtime_heartbeat,
        websocket_max_message_size=config.limits_max_frame,
        compress_response=True,
    )
    app.services = services
    app.ticker = ticker
    return app


###############################################################################
# 8. Command-line interface ###################################################
###############################################################################


def setup_logging(level: str) -> None:
    logging.basicConfig(
        level=getattr(logging, level.upper()),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    if level != "debug":
        logging.getLogger("tornado.access").setLevel(logging.WARNING)


async def serve(config: Config) -> int:
    """Run the server until SIGTERM or SIGINT; returns the exit status."""
    app = make_app(config)
    services: Services = app.services
    # Garbage collection for thousands of held connections (measured by bench/): a full
    # collection walks the whole heap, up to a second of stalled event loop at 15,000 visitors.
    # What start-up loaded is never garbage, so it is frozen out of all collections; young
    # collections run less often, so short-lived objects die before they are promoted towards
    # the full ones.
    gc.freeze()
    gc.set_threshold(10_000, 20, 20)
    # A listen backlog of socket.SOMAXCONN rather than Tornado's 128: after a restart every
    # visitor reconnects within seconds, and a full accept queue drops SYNs, which clients
    # retry only after 1, 3, 7 s.
    sockets = tornado.netutil.bind_sockets(
        config.server_port, config.server_host, backlog=socket.SOMAXCONN
    )
    ssl_ctx = None
    if config.server_certfile:
        ssl_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ssl_ctx.load_cert_chain(config.server_certfile, config.server_keyfile or None)
    server = GuardedHTTPServer(
        app,
        fd_guard=services.fd_guard,
        ssl_options=ssl_ctx,
        max_body_size=max(config.limits_max_body * 4, 1024 * 1024),
        idle_connection_timeout=120,
    )
    server.add_sockets(sockets)
    port = sockets[0].getsockname()[1]
    if not config.server_public_url:
        services.base_url = config.base_url(port)
    base = services.base_url
    log.info("Cute Live Support %s listening on %s", __version__, config.base_url(port))
    log.info("operator console: %s/console/", base)
    log.info('widget snippet:   <script async src="%s/widget.js"></script>', base)
    log.info("demo web site:    %s/demo/", base)
    log.info("database: %s", os.path.abspath(services.storage.path))
    if services.setup_token:
        log.warning(
            "no operators yet: open %s/console/ and create the first administrator with "
            "setup token %s",
            base,
            services.setup_token,
        )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    log.info("shutting down")
    server.stop()
    app.ticker.stop()
    services.monitor.shutdown()
    for sub in services.hub.all_subscribers():
        if isinstance(sub, StreamSocket):
            sub.close(1001, "server shutting down")
        elif isinstance(sub, PollConn):
            sub.close(1001)
    await asyncio.sleep(0)  # let the close frames and poll answers go out
    try:
        await asyncio.wait_for(server.close_all_connections(), 2)
    except TimeoutError:
        pass
    services.storage.close()
    log.info("stopped")
    return 0


async def _cli_services(config: Config) -> Services:
    storage = Storage(
        os.path.join(config.server_data_dir, "cutelive.db"),
        config.database_synchronous,
        config.database_busy_timeout,
    )
    storage.open()
    loop = asyncio.get_running_loop()
    return Services(
        config, storage, Hub(), loop.call_later, lambda fn, *a: loop.run_in_executor(None, fn, *a)
    )


def backup_cmd(config: Config, args) -> int:
    """Write a consistent copy of the database, also while the server runs (SQLite backup API)."""
    src_path = os.path.join(config.server_data_dir, "cutelive.db")
    if not os.path.exists(src_path):
        raise ConfigError(f"no database at {src_path}")
    dest = args.file
    if os.path.exists(dest) and not args.force:
        raise ConfigError(f"{dest} exists; use --force to overwrite it")
    tmp = dest + ".partial"
    src = sqlite3.connect(src_path, timeout=config.database_busy_timeout)
    try:
        dst = sqlite3.connect(tmp)
        try:
            # One step: a single read transaction, a consistent snapshot. In WAL mode it does
            # not block the server's writers (a stepped copy would restart on every write).
            src.backup(dst)
            ok = dst.execute("PRAGMA integrity_check").fetchone()[0]
        finally:
            dst.close()
    finally:
        src.close()
    if ok != "ok":
        os.unlink(tmp)
        raise ConfigError(f"the copy failed its integrity check: {ok}")
    os.replace(tmp, dest)
    print(f"backed up {src_path} to {dest} (integrity ok)")
    return 0


def _read_password(args) -> str:
    if args.password_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    first = getpass.getpass("Password: ")
    if getpass.getpass("Repeat password: ") != first:
        raise ApiError("invalid_field", "the passwords do not match", field="password")
    return first


async def create_operator_cmd(config: Config, args) -> int:
    services = await _cli_services(config)
    try:
        op = await services.create_operator(
            args.username, args.display_name or args.username, _read_password(args), args.admin
        )
    finally:
        services.storage.close()
    kind = "administrator" if op.is_admin else "operator"
    print(f"created {kind} {op.username!r} (id {op.id})")
    return 0


async def passwd_cmd(config: Config, args) -> int:
    services = await _cli_services(config)
    try:
        op = services.storage.operator_by_username(args.username)
        if op is None:
            raise ApiError("not_found", f"no operator {args.username!r}", 404)
        password = services.validate.kind("password", "password", _read_password(args))
        hashed = await services.hash_password(password)
        services.storage.update_operator(op.id, password_hash=hashed)
        services.storage.delete_sessions(op.id)
    finally:
        services.storage.close()
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
        if command == "create-operator":
            return asyncio.run(create_operator_cmd(config, args))
        return asyncio.run(passwd_cmd(config, args))
    except ApiError as e:
        print(f"cutelive: {e.message}", file=sys.stderr)
        return 1
    except (ConfigError, OSError, sqlite3.Error, peewee.DatabaseError) as e:
        print(f"cutelive: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
