"""What crosses the wire: errors and their builders, parties, field checks, the commands each
party may send with their schemas, widget appearance with its defaults and limits, close codes.

docs/PROTOCOL.md is the prose of this module; keep the two together.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from .config import Config, split_url

#: Chat statuses. Open: waiting in the queue, active with its operator, or pending (assigned,
#: its operator away; kept for a later reply). Ended: closed, or missed (nobody ever answered).
WAITING, ACTIVE, PENDING = "waiting", "active", "pending"
CLOSED, MISSED = "closed", "missed"
OPEN_STATUSES = (WAITING, ACTIVE, PENDING)
#: What happens to an operator's chats when it goes offline (the ``status`` command's
#: ``chats``): handed over to the queue when a colleague is online, or kept as pending.
HAND_OVER, KEEP = "hand_over", "keep"
#: Operator statuses.
ONLINE, AWAY, OFFLINE = "online", "away", "offline"
#: States of an outgoing e-mail: kept until the SMTP server accepts it, or given up.
MAIL_QUEUED, MAIL_SENT, MAIL_FAILED = "queued", "sent", "failed"

#: Fixed field limits (the configurable ones live in the settings table).
MAX_URL_CHARS = 2048
MAX_TITLE_CHARS = 512
MAX_UA_CHARS = 512
MAX_CLIENT_ID_CHARS = 64
MAX_REQUEST_ID_CHARS = 64
MAX_PASSWORD_CHARS = 1024
MIN_PASSWORD_CHARS = 8
MAX_USERNAME_CHARS = 64
MAX_TOKEN_CHARS = 256
MAX_INVITATION_CHARS = 500
MAX_RULE_TEXT_CHARS = 500
MAX_ALLOWED_ORIGINS = 100
MAX_COMMENT_CHARS = 1000
MAX_NOTE_CHARS = 1000  # a transfer's note
MAX_DEPARTMENT_KEY_CHARS = 32
MAX_DEPARTMENT_NAME_CHARS = 60
MAX_CANNED_SHORTCUT_CHARS = 32  # a canned reply's /shortcut
MAX_CHATS_LIMIT = 100  # the highest max_chats an operator may have
#: Chat events only operators receive: they take an operator seq but no visitor seq.
OPERATOR_ONLY_EVENTS = frozenset({"note"})
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
#: The client took too little of what was sent (``[limits] max_outbound``): reconnect and
#: resume by cursors.
CLOSE_TOO_SLOW = 4008

#: The invitation text a visitor sees when the operator wrote none.
INVITATION_TEXT = "Hi! Can we help you with anything?"


#: Every event type the server sends, and to whom (docs/PROTOCOL.md §6).
EVENTS: dict[str, str] = {
    "welcome": "both",
    "ack": "both",
    "error": "both",
    "pong": "both",
    "reset": "both",
    "chat_started": "both",
    "message": "both",
    "chat_accepted": "both",
    "chat_requeued": "both",
    "chat_pending": "both",
    "chat_resumed": "both",
    "chat_missed": "both",
    "chat_closed": "both",
    "visitor_details": "both",
    "chat_rated": "both",
    "chat_transferred": "both",
    "note": "operator",
    "queue_position": "visitor",
    "transfer": "operator",
    "departments": "operator",
    "typing": "both",
    "receipt": "both",
    "file": "both",
    "availability": "visitor",
    "operator_status": "visitor",
    "appearance": "visitor",
    "invitation": "visitor",
    "invitation_expired": "visitor",
    "invitation_answered": "visitor",
    "queue": "operator",
    "visitors": "operator",
    "visitors_changed": "operator",
    "operators": "operator",
    "offline_message": "operator",
    "offline_message_replied": "operator",
    "mail_changed": "operator",
    "session_ended": "operator",
    "direct": "operator",
    "direct_read": "operator",
}

#: Every error code, with the HTTP status it is answered with (docs/PROTOCOL.md §8).
ERRORS: dict[str, int] = {
    "bad_json": 400,
    "invalid_utf8": 400,
    "unknown_type": 400,
    "unknown_field": 400,
    "forbidden_field": 400,
    "invalid_field": 400,
    "too_long": 400,
    "bad_request": 400,
    "body_too_large": 413,
    "hello_required": 400,
    "bad_token": 401,
    "not_authenticated": 401,
    "csrf_failed": 403,
    "forbidden": 403,
    "origin_not_allowed": 403,
    "not_found": 404,
    "method_not_allowed": 405,
    "visitor_left": 409,
    "visitor_chatting": 409,
    "chat_taken": 409,
    "chat_closed": 409,
    "chat_already_open": 409,
    "status_not_online": 409,
    "not_answered": 409,
    "username_taken": 409,
    "setup_done": 409,
    "mail_not_configured": 409,
    "already_replied": 409,
    "duplicate": 409,
    "file_too_large": 413,
    "file_type_not_allowed": 415,
    "unknown_department": 404,
    "department_offline": 409,
    "unknown_operator": 404,
    "operator_disabled": 409,
    "operator_not_online": 409,
    "transfer_pending": 409,
    "transfer_void": 409,
    "bad_setup_token": 403,
    "login_failed": 401,
    "login_throttled": 429,
    "rate_limited": 429,
    "server_full": 503,
    "storage_full": 503,
    "storage_busy": 503,
    "storage_unavailable": 503,
    "peer_unavailable": 503,
    "server_error": 500,
}


def encode(event: dict) -> str:
    """An event as the JSON text sent to clients (and stored for chat events)."""
    return json.dumps(event, ensure_ascii=False, separators=(", ", ": "))


class ApiError(Exception):
    """A client error with a code from docs/PROTOCOL.md §8; never logged as a server fault."""

    def __init__(self, code: str, message: str, status: int = 400, **extra: Any):
        # Messages and fields may quote what the client sent (a field name, say); a lone
        # surrogate in it could not be encoded as UTF-8, so it is shown escaped.
        assert code in ERRORS, f"{code} is not in protocol.ERRORS"
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


def request_id_ok(ref: Any) -> bool:
    """A request ``id`` the server echoes in ``ref``: a string of up to 64 characters."""
    if not isinstance(ref, str) or len(ref) > MAX_REQUEST_ID_CHARS:
        return False
    return _echoable_text(ref) == ref


# -- error builders: each error the domain raises in more than one place is built here once --


def rate_limited(limit: str, message: str, wait: float) -> ApiError:
    """429 naming the limit (``[limits] visitor_messages`` and the like) and when to retry."""
    return ApiError("rate_limited", message, 429, limit=limit, retry_after=round(wait + 0.05, 1))


def not_found(message: str, **extra: Any) -> ApiError:
    return ApiError("not_found", message, 404, **extra)


def chat_closed(chat_id: int, status: str) -> ApiError:
    return ApiError("chat_closed", f"chat {chat_id} is {status}", 409, chat_id=chat_id)


def not_assigned(chat_id: int) -> ApiError:
    return ApiError("forbidden", f"chat {chat_id} is not assigned to you", 403, chat_id=chat_id)


def invalid_field(field: str, message: str) -> ApiError:
    return ApiError("invalid_field", message, field=field)


def too_long(field: str, length: int, limit: int) -> ApiError:
    return ApiError(
        "too_long",
        f"'{field}' is {length} characters; the limit is {limit}",
        field=field,
        limit=limit,
    )


def operator_ref(operator_id: int, display_name: str) -> dict:
    """How an operator appears in events: ``{"id", "name"}``."""
    return {"id": operator_id, "name": display_name}


def receipts_view(stored: str, role: str) -> dict:
    """A chat's receipt cursors (stored as ``receipts.py`` keeps them) in ``role``'s numbering:
    ``{"visitor": {"delivered", "read"}, "operator": {"delivered", "read"}}``."""
    cursors = json.loads(stored) if stored else {}
    own = 1 if role == "visitor" else 0
    return {
        party: {k: v[own] for k, v in (cursors.get(party) or {}).items()}
        or {"delivered": 0, "read": 0}
        for party in ("visitor", "operator")
    }


def chat_summary(chat: Any, role: str, operator: Any = None, department: dict | None = None):
    """A chat as a party sees it (``welcome``, ``queue``, acks, lists); operators also see
    the visitor's id, address and browser. ``operator`` is the assigned operator's record,
    ``department`` the chat's department as ``{id, key, name}``."""
    s = {
        "id": chat.id,
        "status": chat.status,
        "name": chat.name,
        "email": chat.email,
        "page_url": chat.page_url,
        "page_title": chat.page_title,
        "operator": operator_ref(operator.id, operator.display_name) if operator else None,
        "created_at": chat.created_at,
        "accepted_at": chat.accepted_at,
        "closed_at": chat.closed_at,
        "last_seq": chat.last_seq,
        "answered": chat.answered_at is not None,
        "pending_since": chat.pending_since,
        "rating": chat.rating,
        "department": department,
        "receipts": receipts_view(chat.receipts, role),
    }
    if role == "operator":
        s.update(
            visitor_id=chat.visitor_id,
            ip=chat.ip,
            user_agent=chat.user_agent,
            queued_at=chat.queued_at,
            escalated_at=chat.escalated_at,
            rating_comment=chat.rating_comment,
        )
    else:
        s["last_seq"] = chat.last_vseq  # the visitor's own sequence (no operator-only events)
    return s


@dataclass(eq=False, slots=True)
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
#: A plain ``local@domain`` address: a dot-atom local part without the characters a mail
#: client or a ``mailto:`` link reads as more than an address (``?`` starts headers such as
#: ``bcc=``; ``&``, ``%``, ``#``, ``/``, ``\``, ``,``, ``;``, ``:``, angle brackets, double
#: quotes, backquotes and whitespace separate, escape or quote), and a domain of letters,
#: digits and hyphens. (An apostrophe, as in o'brien@example.ie, is only a letter there.)
_EMAIL_ATOM = r"[A-Za-z0-9!$'*+=^_{|}~-]+"
_EMAIL = re.compile(rf"{_EMAIL_ATOM}(\.{_EMAIL_ATOM})*@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)+")
_USERNAME = re.compile(r"[a-z0-9._-]{1,64}")
_DEPARTMENT_KEY = re.compile(r"[a-z0-9-]{1,32}")
_CANNED_SHORTCUT = re.compile(r"[a-z0-9_-]{1,32}")

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
        raise too_long(name, len(value), limit)
    return value


def _check_word(name: str, value: Any, limit: int, pattern: re.Pattern, letters: str) -> str:
    """A string ``pattern`` matches whole, such as a key; ``letters`` says what it may contain."""
    v = _check_string(name, value, limit)
    if not pattern.fullmatch(v):
        raise ApiError("invalid_field", f"'{name}' may only contain {letters}", field=name)
    return v


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


#: Conditions an invitation rule may have: name -> kind.
RULE_CONDITIONS = {
    "url_contains": "str",
    "referrer_contains": "str",
    "min_pages": "count",
    "min_time_on_page": "count",
    "min_time_on_site": "count",
    "returning": "bool",
}


class Validator:
    """Field checks for commands and API bodies, with the configured limits."""

    def __init__(self, config: Config):
        self.message_chars = config.limits_message_chars
        self.name_chars = config.limits_name_chars
        self.email_chars = config.limits_email_chars

    def kind(self, kind: str, name: str, value: Any) -> Any:
        if kind == "text":
            return _check_string(name, value, self.message_chars, text=True)
        if kind == "text?":  # what is in the input box, perhaps nothing yet
            return _check_string(name, value, self.message_chars, text=True, empty=True)
        if kind == "name":
            return _check_string(name, value, self.name_chars)
        if kind == "conditions":
            return self.conditions(name, value)
        if kind == "invitation":
            return _check_string(name, value, MAX_INVITATION_CHARS, text=True, empty=True)
        if kind == "email":
            return self.email(name, value)
        if kind == "name?":
            return _check_string(name, value, self.name_chars, empty=True)
        if kind == "email?":
            return self.email(name, value) if value not in ("", None) else ""
        if kind == "url":
            return _check_string(name, value, MAX_URL_CHARS, empty=True)
        if kind == "title":
            return _check_string(name, value, MAX_TITLE_CHARS, empty=True)
        if kind == "client_id":
            return _check_string(name, value, MAX_CLIENT_ID_CHARS)
        if kind == "token":
            return _check_string(name, value, MAX_TOKEN_CHARS)
        if kind == "visitor_token":
            token = _check_string(name, value, MAX_TOKEN_CHARS)
            if token != value:  # taken exactly as issued, as in the Authorization header
                raise ApiError("bad_token", "unknown visitor token; get a new one", 401)
            return token
        if kind == "int":
            return _check_int(name, value)
        if kind == "bool":
            return _check_bool(name, value)
        if kind == "cursors":
            return _check_cursors(name, value)
        if kind == "visitor_cursors":  # a visitor has few chats; each costs a lookup
            return _check_cursors(name, value, 100)
        if kind == "handover":
            if value not in (HAND_OVER, KEEP):
                raise ApiError(
                    "invalid_field", f"'{name}' must be {HAND_OVER} or {KEEP}", field=name
                )
            return value
        if kind == "rating":
            if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 5:
                raise ApiError("invalid_field", f"'{name}' must be 1, 2, 3, 4 or 5", field=name)
            return value
        if kind == "note":
            return _check_string(name, value, MAX_NOTE_CHARS, text=True, empty=True)
        if kind == "department_key":
            limit = MAX_DEPARTMENT_KEY_CHARS
            return _check_word(name, value, limit, _DEPARTMENT_KEY, "a-z, 0-9 and '-'")
        if kind == "canned_shortcut":
            limit = MAX_CANNED_SHORTCUT_CHARS
            return _check_word(name, value, limit, _CANNED_SHORTCUT, "a-z, 0-9, '-' and '_'")
        if kind == "department_ref":  # a key as the snippet or the visitor sends it
            return _check_string(name, value, MAX_DEPARTMENT_KEY_CHARS)
        if kind == "department_name":
            return _check_string(name, value, MAX_DEPARTMENT_NAME_CHARS).strip()
        if kind == "seconds?":
            if value is None:
                return None
            if isinstance(value, bool) or not isinstance(value, int) or not 10 <= value <= 86400:
                raise ApiError(
                    "invalid_field", f"'{name}' must be 10 to 86400 seconds, or null", field=name
                )
            return value
        if kind == "max_chats":
            if value is None:
                return None
            bad = isinstance(value, bool) or not isinstance(value, int)
            if bad or not 0 <= value <= MAX_CHATS_LIMIT:
                raise ApiError(
                    "invalid_field",
                    f"'{name}' must be 0 to {MAX_CHATS_LIMIT}, or null for the default",
                    field=name,
                    limit=MAX_CHATS_LIMIT,
                )
            return value
        if kind == "ids":
            if not isinstance(value, list) or len(value) > 10_000:
                raise ApiError("invalid_field", f"'{name}' must be a list of ids", field=name)
            return sorted({_check_int(name, v) for v in value})
        if kind == "comment":
            return _check_string(name, value, MAX_COMMENT_CHARS, text=True, empty=True)
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
                raise too_long(name, len(value), MAX_PASSWORD_CHARS)
            if "\x00" in value or _echoable_text(value) != value:
                raise ApiError("invalid_field", f"'{name}' is not valid text", field=name)
            return value
        if kind == "username":
            limit = MAX_USERNAME_CHARS
            return _check_word(name, value, limit, _USERNAME, "a-z, 0-9, '.', '_' and '-'")
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
                out[k] = _check_string(f"conditions.{k}", v, MAX_RULE_TEXT_CHARS)
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
            raise ApiError(
                "invalid_field",
                f"'{name}' must be a plain e-mail address such as name@example.com",
                field=name,
            )
        return v

    def request(self, name: str, body: Any) -> dict:
        """Check an HTTP request body against its schema in ``REQUESTS``."""
        what, schema = REQUESTS[name]
        return self.fields(body, schema, what)

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


#: A command's fields: ``{field: (kind, required)}``; kinds are ``Validator.kind``'s.
Schema = dict[str, tuple[str, bool]]

#: Where the visitor was when it wrote (optional on every command that starts something).
_PAGE: Schema = {"page_url": ("url", False), "page_title": ("title", False)}
#: Commands on one chat that both parties send.
_CHAT_COMMANDS: dict[str, Schema] = {
    "message": {"chat_id": ("int", True), "text": ("text", True), "client_id": ("client_id", True)},
    "typing": {"chat_id": ("int", True), "typing": ("bool", True)},
    "close": {"chat_id": ("int", True)},
    "receipt": {"chat_id": ("int", True), "delivered": ("int", False), "read": ("int", False)},
}

#: The commands each party may send, with their fields (docs/PROTOCOL.md §5).
COMMANDS: dict[str, dict[str, Schema]] = {
    "visitor": {
        "hello": {"token": ("visitor_token", True), "cursors": ("visitor_cursors", False)},
        "sync": {"cursors": ("visitor_cursors", True)},
        "ping": {},
        "start_chat": {
            "name": ("name?", False),
            "email": ("email?", False),
            "text": ("text", True),
            "client_id": ("client_id", True),
            **_PAGE,
            "department": ("department_ref", False),
        },
        **_CHAT_COMMANDS,
        # With [chat] typing_preview the visitor's typing carries what is in the input.
        "typing": {"chat_id": ("int", True), "typing": ("bool", True), "text": ("text?", False)},
        "accept_invitation": {
            "invitation_id": ("token", True),
            "name": ("name", False),
            "email": ("email?", False),
            "text": ("text", False),
            "client_id": ("client_id", False),
            **_PAGE,
        },
        "decline_invitation": {"invitation_id": ("token", True)},
        "set_email": {"chat_id": ("int", True), "email": ("email", True)},
        "rate": {
            "chat_id": ("int", True),
            "rating": ("rating", True),
            "comment": ("comment", False),
        },
        "email_transcript": {"chat_id": ("int", True), "email": ("email", True)},
        "leave_message": {
            "name": ("name", True),
            "email": ("email", True),
            "text": ("text", True),
            **_PAGE,
            "chat_id": ("int", False),
            "client_id": ("client_id", False),
            "department": ("department_ref", False),
        },
    },
    "operator": {
        "hello": {"cursors": ("cursors", False)},
        "sync": {"cursors": ("cursors", True)},
        "ping": {},
        **_CHAT_COMMANDS,
        "accept": {"chat_id": ("int", True)},
        "invite": {"visitor_id": ("int", True), "message": ("invitation", False)},
        "status": {"status": ("status", True), "chats": ("handover", False)},
        "note": {
            "chat_id": ("int", True),
            "text": ("text", True),
            "client_id": ("client_id", True),
        },
        "transfer": {
            "chat_id": ("int", True),
            "operator_id": ("int", False),
            "department": ("department_ref", False),
            "note": ("note", False),
        },
        "accept_transfer": {"transfer_id": ("token", True)},
        "decline_transfer": {"transfer_id": ("token", True)},
        "direct": {
            "operator_id": ("int", True),
            "text": ("text", True),
            "client_id": ("client_id", True),
        },
        "direct_read": {"operator_id": ("int", True), "seq": ("int", True)},
    },
}


_NEW_OPERATOR: Schema = {
    "username": ("username", True),
    "display_name": ("name", True),
    "password": ("password", True),
}
_RULE = {"name": "name", "message": "invitation", "enabled": "bool", "conditions": "conditions"}
_DEPT = {
    "key": "department_key",
    "name": "department_name",
    "email": "email?",
    "auto_assign": "bool",
    "escalate_after": "seconds?",
    "members": "ids",
}
_CANNED = {"shortcut": "canned_shortcut", "text": "text", "shared": "bool", "department_id": "int"}


def _creating(kinds: dict[str, str], *required: str) -> Schema:
    """The fields that create a thing, from its ``{field: kind}``; ``required`` must be given."""
    return {k: (kind, k in required) for k, kind in kinds.items()}


def _changing(kinds: dict[str, str], *fixed: str) -> Schema:
    """The fields that change a thing, each optional; ``fixed`` ones cannot change."""
    return {k: (kind, False) for k, kind in kinds.items() if k not in fixed}


#: The bodies of the HTTP API's requests: name -> (what it is, in errors; its fields).
REQUESTS: dict[str, tuple[str, Schema]] = {
    "setup": ("setup", {"setup_token": ("token", True), **_NEW_OPERATOR}),
    "login": ("login", {"username": ("token", True), "password": ("secret", True)}),
    "new_operator": (
        "an operator",
        {**_NEW_OPERATOR, "is_admin": ("bool", False), "max_chats": ("max_chats", False)},
    ),
    "operator_changes": (
        "an operator",
        {
            "display_name": ("name", False),
            "is_admin": ("bool", False),
            "disabled": ("bool", False),
            "password": ("password", False),
            "max_chats": ("max_chats", False),
        },
    ),
    "password_change": (
        "a password change",
        {"current_password": ("secret", True), "new_password": ("password", True)},
    ),
    "visitor_poll": ("a poll", {"conn": ("token", False), "cursors": ("visitor_cursors", False)}),
    "operator_poll": ("a poll", {"conn": ("token", False), "cursors": ("cursors", False)}),
    "offline_message_read": ("an offline message", {"read": ("bool", True)}),
    "offline_message_reply": ("a reply", {"text": ("text", True)}),
    "new_rule": ("an invitation rule", _creating(_RULE, "name", "message", "conditions")),
    "rule_changes": ("an invitation rule", _changing(_RULE)),
    "new_department": ("a department", _creating(_DEPT, "key", "name")),
    "department_changes": ("a department", _changing(_DEPT, "key")),
    "new_canned_reply": ("a canned reply", _creating(_CANNED, "shortcut", "text")),
    "canned_reply_changes": ("a canned reply", _changing(_CANNED, "shared")),
}


#: Widget appearance an administrator may set in the console: key -> (kind, limit, default).
#: Only these keys are stored and served to the widget (``GET /api/widget/config``), and the
#: defaults are served beside them, so neither the widget nor the console types them again.
APPEARANCE: dict[str, tuple[str, int, str]] = {
    "color": ("color", 32, "#4f46e5"),
    "color_text": ("color", 32, "#ffffff"),
    "position": ("position", 32, "right"),
    "image_online": ("image", MAX_URL_CHARS, ""),
    "image_offline": ("image", MAX_URL_CHARS, ""),
    "title": ("line", 100, "Live Support"),
    "button_online": ("line", 100, "Live Support \u2014 we're online"),
    "button_offline": ("line", 100, "Leave a message"),
    "button_start": ("line", 40, "Start chat"),
    "button_send": ("line", 40, "Send message"),
    "greeting": (
        "para",
        500,
        "Hi there! Ask us anything \u2014 we usually reply in a few minutes.",
    ),
    "waiting": ("para", 500, "Waiting for an operator\u2026"),
    "offline_prompt": (
        "para",
        500,
        "We\u2019re away right now. Leave a message and we\u2019ll get back to you by e-mail.",
    ),
    "thanks": ("para", 500, "Thank you! Your message has been sent."),
    # The pre-chat form: each field required, optional or not asked (hidden).
    "ask_name": ("ask", 16, "required"),
    "ask_email": ("ask", 16, "optional"),
}
#: The values of an "ask" appearance key.
ASK = ("required", "optional", "hidden")


def check_appearance(key: str, value: Any) -> str:
    """One appearance value as an administrator sent it; empty means "back to the default"."""
    kind, limit, _default = APPEARANCE[key]
    field_name = f"appearance.{key}"
    v = _check_string(field_name, value, limit, text=kind == "para", empty=True).strip()
    if not v:
        return ""
    if kind == "color" and not re.fullmatch(r"#[0-9a-fA-F]{3}|#[0-9a-fA-F]{6}", v):
        raise invalid_field(field_name, f"'{key}' must be a colour like #4f46e5")
    if kind == "position" and v not in ("left", "right"):
        raise invalid_field(field_name, f"'{key}' must be left or right")
    if kind == "ask" and v not in ASK:
        raise invalid_field(field_name, f"'{key}' must be required, optional or hidden")
    if kind == "image":
        u = split_url(v)
        if not (u is not None and u.scheme in ("http", "https") and u.netloc) and not (
            v.startswith("/") and not v.startswith("//")
        ):
            raise invalid_field(
                field_name, f"'{key}' must be an http(s) URL or a path on this server"
            )
    return v


def widget_limits(config: Config) -> dict[str, int]:
    """The field limits a visitor's form needs, as served to the widget."""
    return {
        "message_chars": config.limits_message_chars,
        "name_chars": config.limits_name_chars,
        "email_chars": config.limits_email_chars,
        "url_chars": MAX_URL_CHARS,
        "title_chars": MAX_TITLE_CHARS,
    }


def console_protocol(config: Config) -> dict:
    """Defaults and limits the console needs (in ``GET /api/console/session``)."""
    return {
        "limits": {
            **widget_limits(config),
            "invitation_chars": MAX_INVITATION_CHARS,
            "username_chars": MAX_USERNAME_CHARS,
            "password_min_chars": MIN_PASSWORD_CHARS,
            "password_max_chars": MAX_PASSWORD_CHARS,
            "rule_text_chars": MAX_RULE_TEXT_CHARS,
            "allowed_origins": MAX_ALLOWED_ORIGINS,
            "transfer_note_chars": MAX_NOTE_CHARS,
            "department_key_chars": MAX_DEPARTMENT_KEY_CHARS,
            "department_name_chars": MAX_DEPARTMENT_NAME_CHARS,
            "canned_shortcut_chars": MAX_CANNED_SHORTCUT_CHARS,
            "max_chats": MAX_CHATS_LIMIT,
        },
        "appearance": {
            k: {"kind": kind, "limit": limit, "default": default}
            for k, (kind, limit, default) in APPEARANCE.items()
        },
        "invitation_text": INVITATION_TEXT,
        "rule_conditions": dict(RULE_CONDITIONS),
        # E-mail can be sent: replies to visitors who left, transcripts, inbox replies.
        "mail": config.mail_enabled,
        "alert_repeat": config.chat_alert_repeat,
        "files": files_limits(config),
        "typing_preview": config.chat_typing_preview,
    }


def human_size(n: int) -> str:
    """``532 bytes``, ``14 KB``, ``2.5 MB`` (in units of 1,024, as file managers count)."""
    if n < 1024:
        return f"{n} bytes"
    if n < 1024 * 1024:
        return f"{n / 1024:.0f} KB"
    return f"{n / 1024 / 1024:.1f} MB".replace(".0 MB", " MB")


def file_line(file: dict) -> str:
    """A file event's line in a text transcript."""
    return f"[file: {file['name']}, {human_size(file['size'])}]"


def files_limits(config: Config) -> dict:
    """What a client checks before it uploads a file (docs/PROTOCOL.md §7.10)."""
    return {"max_size": config.files_max_size, "types": list(config.files_types)}
