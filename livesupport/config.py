"""Configuration: paths, the table of settings, the ini overlay and command-line overrides.

Settings are data (``SETTINGS``: section, key, default, parser, help); ``config.example.ini``
lists every one at its default, and a test holds the two together.
"""

# The settings table below keeps one setting a line, however long its help text.
# ruff: noqa: E501

from __future__ import annotations

import configparser
import os
import re
import sys
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

#: True when running from a PyInstaller bundle; assets then come from the bundle.
FROZEN = bool(getattr(sys, "frozen", False))
#: Where the read-only files live: the bundle when frozen, the source checkout otherwise.
BUNDLE_DIR = getattr(sys, "_MEIPASS", os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
#: Browser files (widget, console, demo, images, sounds).
ASSETS_DIR = os.path.join(BUNDLE_DIR, "assets")


def split_url(text: str) -> urllib.parse.SplitResult | None:
    """``urlsplit`` that answers None for what it cannot parse (``http://[x`` raises)."""
    try:
        return urllib.parse.urlsplit(text)
    except ValueError:
        return None


class ConfigError(Exception):
    """A configuration value that cannot be used; the message names ``[section] key``."""


def parse_duration(text: str) -> float:
    """Parse ``500ms``, ``30s``, ``15m``, ``2h``, ``7d`` or a bare number of seconds."""
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*", text)
    if not m:
        raise ValueError("a duration such as 30s, 15m, 2h or 7d")
    scale = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, None: 1}[m.group(2)]
    return float(m.group(1)) * scale


def parse_positive_duration(text: str) -> float:
    """A duration above zero (a wait that repeats)."""
    seconds = parse_duration(text)
    if seconds <= 0:
        raise ValueError("a duration above zero, such as 30s")
    return seconds


def parse_size(text: str) -> int:
    """Parse ``64KiB``, ``1MiB`` or a bare number of bytes."""
    m = re.fullmatch(r"\s*(\d+)\s*(B|KiB|MiB|KB|MB)?\s*", text)
    if not m:
        raise ValueError("a size such as 64KiB or 1MiB")
    scale = {None: 1, "B": 1, "KiB": 1024, "KB": 1000, "MiB": 1024**2, "MB": 1000**2}
    return int(m.group(1)) * scale[m.group(2)]


#: A rate as ``parse_rate`` reads it: so many events per so many seconds.
Rate = tuple[int, float]


def parse_rate(text: str) -> Rate:
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


def parse_server_url(
    text: str,
    schemes: tuple[str, ...],
    fits: Callable[[urllib.parse.SplitResult], Any],
    expected: str,
) -> str:
    """Empty, or a URL of one of ``schemes``, with a port from 1 to 65535 if any, that ``fits``.

    Raises ValueError(``expected``) for anything else.
    """
    text = text.strip()
    if not text:
        return ""
    u = split_url(text)
    try:
        port = u.port if u is not None else None  # a port that is not a number raises
    except ValueError:
        u = None
    if (
        u is None
        or u.scheme not in schemes
        or (port is not None and not 0 < port < 65536)
        or not fits(u)
    ):
        raise ValueError(expected)
    return text


def parse_database_url(text: str) -> str:
    """Empty (SQLite in the data directory) or ``postgresql://user:password@host:port/db``."""
    return parse_server_url(
        text,
        ("postgresql", "postgres"),
        lambda u: (u.hostname or "host=" in u.query) and u.path.strip("/"),
        "empty (SQLite in the data directory) or a PostgreSQL URL such as "
        "postgresql://user:password@localhost:5432/cutelive",
    )


def parse_redis_url(text: str) -> str:
    """Empty (one process, events in memory) or ``redis://[:password@]host:port/db``."""
    return parse_server_url(
        text,
        ("redis", "rediss", "unix"),
        lambda u: u.scheme == "unix" or (u.hostname and (u.path.strip("/") or "0").isdigit()),
        "empty (one process) or a Redis URL such as redis://localhost:6379/0",
    )


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


#: The file types the server tells apart by their content (``files.py``), for ``[files] types``.
FILE_TYPES = (
    "image/png",
    "image/jpeg",
    "image/gif",
    "image/webp",
    "application/pdf",
    "image/svg+xml",
    "text/html",
    "application/zip",
    "text/plain",
    "application/octet-stream",
)


def parse_file_types(text: str) -> list[str]:
    """Types from ``FILE_TYPES``, separated by commas or spaces; empty: any."""
    types = [t.lower() for t in re.split(r"[\s,]+", text) if t]
    for t in types:
        if t not in FILE_TYPES:
            raise ValueError("types among " + ", ".join(FILE_TYPES))
    return types


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
# fmt: off
SETTINGS: list[Setting] = [
    Setting("server", "host", "127.0.0.1", parse_str, "Address to listen on."),
    Setting("server", "port", "8080", parse_port, "Port to listen on; 0 picks a free one."),
    Setting("server", "public_url", "", parse_public_url, "The URL visitors and operators reach the server by; used in snippets, links and e-mails. Empty: http://HOST:PORT."),
    Setting("server", "data_dir", "cutelive-data", parse_str, "Folder for the database."),
    Setting("server", "trusted_proxies", "", parse_list, "Addresses of reverse proxies whose X-Forwarded-For is believed."),
    Setting("server", "certfile", "", parse_str, "TLS certificate chain (PEM); empty: no TLS."),
    Setting("server", "keyfile", "", parse_str, "TLS private key (PEM)."),
    Setting("server", "health_token", "", parse_str, "/api/health and /api/ready answer other addresses than loopback with this token (Authorization: Bearer TOKEN); empty: loopback only."),
    Setting("server", "drain_time", "0s", parse_duration, "After SIGTERM, how long the server keeps serving while /api/ready says not ready."),
    Setting("database", "url", "", parse_database_url, "Empty: SQLite in the data directory. postgresql://user:password@host:5432/db: PostgreSQL."),
    Setting("database", "synchronous", "normal", parse_synchronous, "normal or full."),
    Setting("database", "busy_timeout", "5s", parse_duration, "How long to wait for a lock."),
    Setting("realtime", "heartbeat", "25s", parse_duration, "Ping interval for streams."),
    Setting("realtime", "poll_timeout", "25s", parse_duration, "How long a long-poll is held."),
    Setting("chat", "queue_timeout", "2m", parse_duration, "Unanswered chats become missed."),
    Setting("chat", "pending_timeout", "7d", parse_duration, "Pending conversations (operator away) end after this; reply links expire with them."),
    Setting("chat", "alert_repeat", "30s", parse_duration, "Repeat alerts while a chat waits."),
    Setting("chat", "escalate_after", "60s", parse_duration, "A department's chat waiting this long is offered to every operator."),
    Setting("chat", "max_chats", "4", parse_positive_int, "Chats routing assigns an operator."),
    Setting("chat", "transfer_timeout", "60s", parse_duration, "Unanswered transfers expire."),
    Setting("chat", "typing_preview", "no", parse_bool, "Operators see text before it is sent."),
    Setting("files", "max_size", "10MiB", parse_size, "Largest file a chat's party may attach."),
    Setting("files", "types", "", parse_file_types, "File types allowed; empty: any."),
    Setting("files", "link_ttl", "1h", parse_positive_duration, "A file's URL expires."),
    Setting("files", "stall_timeout", "30s", parse_positive_duration, "A silent upload ends."),
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
    Setting("limits", "body_timeout", "20s", parse_duration, "Time to send a request body."),
    Setting("limits", "max_frame", "64KiB", parse_size, "Largest WebSocket frame."),
    Setting("limits", "max_outbound", "1MiB", parse_size, "Unsent data for one WebSocket."),
    Setting("limits", "visitor_messages", "20/10s", parse_rate, "Messages per visitor."),
    Setting("limits", "chats_per_ip", "10/1m", parse_rate, "New chats per IP address."),
    Setting("limits", "offline_messages", "100/1h", parse_rate, "Offline messages, whole site."),
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
    Setting("mail", "retry_first", "30s", parse_positive_duration, "Wait after a failed send; doubles with each failure."),
    Setting("mail", "retry_max", "1h", parse_positive_duration, "Longest wait between tries."),
    Setting("mail", "give_up_after", "3d", parse_duration, "Mail not accepted by then fails."),
    Setting("cluster", "redis_url", "", parse_redis_url, "Empty: one process. redis://host:6379/0: events and presence between processes."),
    Setting("log", "level", "info", parse_str, "debug, info, warning or error."),
]
# fmt: on

#: Settings by (section, key).
SETTINGS_BY_KEY = {(s.section, s.key): s for s in SETTINGS}


@dataclass
class Config:
    """Parsed settings, one typed attribute per ``[section] key``: ``config.chat_queue_timeout``."""

    server_host: str
    server_port: int
    server_public_url: str
    server_data_dir: str
    server_trusted_proxies: list[str]
    server_certfile: str
    server_keyfile: str
    server_health_token: str
    server_drain_time: float
    database_url: str
    database_synchronous: str
    database_busy_timeout: float
    realtime_heartbeat: float
    realtime_poll_timeout: float
    chat_queue_timeout: float
    chat_pending_timeout: float
    chat_alert_repeat: float
    chat_escalate_after: float
    chat_max_chats: int
    chat_transfer_timeout: float
    chat_typing_preview: bool
    files_max_size: int
    files_types: list[str]
    files_link_ttl: float
    files_stall_timeout: float
    operators_offline_grace: float
    operators_session_lifetime: float
    operators_login_failures: Rate
    operators_login_lockout: float
    operators_login_failures_per_ip: Rate
    widget_allowed_origins: list[str]
    monitor_leave_grace: float
    monitor_idle_after: float
    monitor_invitation_ttl: float
    monitor_retention: float
    monitor_geoip_db: str
    monitor_beacons_per_visitor: Rate
    monitor_invitations_per_operator: Rate
    limits_message_chars: int
    limits_name_chars: int
    limits_email_chars: int
    limits_max_body: int
    limits_body_timeout: float
    limits_max_frame: int
    limits_max_outbound: int
    limits_visitor_messages: Rate
    limits_chats_per_ip: Rate
    limits_offline_messages: Rate
    limits_requests_per_ip: Rate
    limits_sockets_per_ip: int
    limits_commands_per_socket: Rate
    mail_smtp_host: str
    mail_smtp_port: int
    mail_smtp_security: str
    mail_smtp_username: str
    mail_smtp_password: str
    mail_from_address: str
    mail_to_address: str
    mail_retry_first: float
    mail_retry_max: float
    mail_give_up_after: float
    cluster_redis_url: str
    log_level: str
    #: Unknown keys and the like, logged at start.
    warnings: list[str] = field(default_factory=list)

    def get(self, section: str, key: str) -> Any:
        return getattr(self, f"{section}_{key}")

    @property
    def mail_enabled(self) -> bool:
        """``[mail]`` is configured: an SMTP server, and the site's address for replies."""
        return bool(self.mail_smtp_host and self.mail_to_address)

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
            shown = re.sub(r"(//[^/:@]*):[^@/]*@", r"\1:***@", text)  # no password in logs
            raise ConfigError(f"[{section}] {key} = {shown!r}: expected {e}") from None
    if values[("mail", "smtp_security")] not in ("none", "starttls", "tls"):
        raise ConfigError("[mail] smtp_security: expected none, starttls or tls")
    if values[("cluster", "redis_url")] and not values[("database", "url")]:
        raise ConfigError(
            "[cluster] redis_url is for several processes, and they need a database they can "
            "share: set [database] url to a PostgreSQL database (one SQLite file serves one "
            "process)"
        )
    if values[("log", "level")] not in ("debug", "info", "warning", "error"):
        raise ConfigError("[log] level: expected debug, info, warning or error")
    return Config(**{f"{s}_{k}": v for (s, k), v in values.items()}, warnings=warnings)
