"""Plain records handed out by storage: data only, no connection, nothing that queries lazily."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, TypeVar

from ..protocol import MAIL_QUEUED

_R = TypeVar("_R")


def from_row(record: type[_R], row: Any, **converted: Any) -> _R:
    """A ``record`` (a dataclass) from a database row whose attributes have its fields' names;
    ``converted`` gives the fields whose stored value needs converting."""
    fields = {name: getattr(row, name) for name in record.__dataclass_fields__}
    return record(**(fields | converted))


def fields_of(record: Any, names: str, **values: Any) -> dict[str, Any]:
    """The fields ``names`` (separated by spaces) of ``record``, in that order, as a dict;
    ``values`` give some of them as shown rather than as stored."""
    return {n: values[n] if n in values else getattr(record, n) for n in names.split()}


@dataclass(eq=False)
class Operator:
    id: int
    username: str
    display_name: str
    password_hash: str
    is_admin: bool
    disabled: bool
    status: str
    created_at: int
    #: Concurrent chats routing may assign; None: ``[chat] max_chats``.
    max_chats: int | None = None

    def public(self, presence: str | None = None, departments: list[int] | None = None) -> dict:
        """As the console sees it; ``presence`` is the live status when known."""
        return fields_of(
            self,
            "id username display_name is_admin disabled status max_chats departments",
            is_admin=bool(self.is_admin),
            disabled=bool(self.disabled),
            status=presence if presence is not None else self.status,
            departments=departments or [],
        )


@dataclass(eq=False)
class Department:
    id: int
    key: str
    name: str
    email: str
    auto_assign: bool
    escalate_after: int | None
    created_at: int
    members: list[int] = field(default_factory=list)

    def ref(self) -> dict:
        return fields_of(self, "id key name")


@dataclass(eq=False)
class Session:
    id: int
    operator_id: int
    expires_at: int


@dataclass(eq=False)
class Visitor:
    id: int
    created_at: int


@dataclass(eq=False)
class Chat:
    id: int
    visitor_id: int
    operator_id: int | None
    status: str
    name: str
    email: str
    page_url: str
    page_title: str
    ip: str
    user_agent: str
    created_at: int
    queued_at: int
    accepted_at: int | None
    closed_at: int | None
    last_seq: int
    first_message: str
    #: When an operator first answered; None: never answered (a missed chat).
    answered_at: int | None = None
    #: The operator who handed the chat back to the queue, while it waits there.
    handed_over_by: int | None = None
    #: Since when the chat is pending (assigned, its operator away).
    pending_since: int | None = None
    rating: int | None = None
    rating_comment: str = ""
    department_id: int | None = None
    #: When a department's chat waiting too long was offered to every operator.
    escalated_at: int | None = None
    #: The last seq of the visitor's own sequence (which skips operator-only events).
    last_vseq: int = 0
    #: Each party's delivered/read cursors as JSON (``receipts.py``); '' while none.
    receipts: str = ""


#: Chat columns in the order of the record's fields (the raw queries select these).
CHAT_COLUMNS = tuple(Chat.__dataclass_fields__)


@dataclass(eq=False)
class OfflineMessage:
    id: int
    visitor_id: int | None
    chat_id: int | None
    name: str
    email: str
    text: str
    page_url: str
    page_title: str
    created_at: int
    read: bool
    reply_text: str = ""
    replied_at: int | None = None
    replied_by: int | None = None
    department_id: int | None = None

    def public(self) -> dict:
        return fields_of(
            self,
            "id name email text page_url page_title chat_id created_at read reply_text replied_at"
            " replied_by department_id",
            read=bool(self.read),
        )


@dataclass(eq=False)
class OutboxMail:
    """An e-mail in the outbox, without its bytes (``OutboxStore.message`` has them)."""

    id: int
    kind: str
    recipient: str
    subject: str
    state: str
    attempts: int
    next_attempt_at: int
    last_error: str
    created_at: int
    sent_at: int | None
    chat_id: int | None
    offline_message_id: int | None

    def public(self) -> dict:
        """As the console sees it (``GET /api/console/mail``, ``mail_changed``)."""
        return fields_of(
            self,
            "id kind recipient subject state attempts last_error created_at sent_at"
            " next_attempt_at chat_id offline_message_id",
            # When the next try is due; none once the mail is sent or has failed.
            next_attempt_at=self.next_attempt_at if self.state == MAIL_QUEUED else None,
        )


@dataclass(eq=False)
class InviteRule:
    """An automatic invitation: conditions on the visit, and the message to show."""

    id: int
    name: str
    enabled: bool
    message: str
    conditions: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_row(cls, id: int, name: str, enabled: Any, message: str, conditions: str):
        return cls(id, name, bool(enabled), message, json.loads(conditions))

    def public(self) -> dict:
        return fields_of(
            self, "id name enabled message conditions", conditions=dict(self.conditions)
        )


@dataclass(eq=False)
class Visit:
    """A visit as the monitor resumes it after a restart, or starts it."""

    id: int
    number: int
    started_at: int
    last_seen: int
    landing_url: str
    referrer: str
    search_terms: str
    ip: str
    user_agent: str
    browser: str
    os: str
    device: str
    country: str
    pages: int
    first_seen: int
    previous_chats: int


@dataclass(eq=False)
class CannedReply:
    """A canned reply: an operator's own (``operator_id``) or shared (None), optionally only
    for one department's members and chats."""

    id: int
    operator_id: int | None
    department_id: int | None
    shortcut: str
    text: str
    created_at: int
    updated_at: int


@dataclass(eq=False)
class DirectMessage:
    """A direct message between two operators, numbered in the pair's own sequence."""

    seq: int
    from_id: int
    to_id: int
    text: str
    client_id: str
    ts: int


@dataclass(eq=False)
class StoredFile:
    """A file attached to a chat (its bytes stay in storage until fetched)."""

    id: int
    chat_id: int
    name: str
    type: str
    size: int
    created_at: int
