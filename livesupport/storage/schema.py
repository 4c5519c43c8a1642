"""The schema: peewee models (used inside storage only), migrations, and the SQL dialect.

Models describe the tables for peewee's query builder; nothing outside ``livesupport.storage``
sees them: storage hands out the plain records of ``records.py``.
"""

from __future__ import annotations

import re

import peewee

from ..protocol import ONLINE

# == SQL dialect =============================================================================
# The one place where SQL differs between databases. Everything else in ``livesupport.storage``
# is portable SQL, written with ``?`` placeholders (``Storage.execute`` adapts them to the
# driver's style) and SQLite's column types (``ddl`` adapts them).
DIALECT = {
    "sqlite": {
        #: The larger of two values in one row.
        "greatest": "MAX",
        #: Where the schema version is kept.
        "version_table": [],
        "get_version": "PRAGMA user_version",
        "migration_lock": None,
        "set_version": "PRAGMA user_version = {version}",
        #: Appended to the read of a chat's last sequence numbers before new events: SQLite's
        #: write transactions begin with the database's write lock (``BEGIN IMMEDIATE``).
        "lock_row": "",
        #: Taken before a pair of operators' next direct message is numbered.
        "lock_pair": None,
    },
    "postgresql": {
        "greatest": "GREATEST",
        "version_table": [
            "CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)",
            "INSERT INTO schema_version SELECT 0 WHERE NOT EXISTS (SELECT 1 FROM schema_version)",
        ],
        "get_version": "SELECT version FROM schema_version",
        "set_version": "UPDATE schema_version SET version = {version}",
        #: Taken for the migration's transaction: processes starting together migrate once.
        "migration_lock": "SELECT pg_advisory_xact_lock(7253001)",
        #: Another process may append to the same chat: its row is locked until the commit.
        "lock_row": " FOR UPDATE",
        #: Two processes may number a pair's direct messages at once: the pair (its two
        #: operator ids, a key space of its own) is locked until the commit.
        "lock_pair": "SELECT pg_advisory_xact_lock(?, ?)",
    },
}


def ddl(sql: str, dialect: str) -> str:
    """A migration statement, written for SQLite, in ``dialect``: PostgreSQL gets 64-bit
    integers (timestamps are milliseconds), generated ids and ``BYTEA`` for bytes."""
    if dialect == "sqlite":
        return sql
    sql = re.sub(r"\bid INTEGER PRIMARY KEY\b", "id BIGSERIAL PRIMARY KEY", sql)
    sql = re.sub(r"\bINTEGER\b", "BIGINT", sql)
    return re.sub(r"\bBLOB\b", "BYTEA", sql)


# ============================================================================================


def _table_name(model: type) -> str:
    """``OfflineMessageRow`` is the table ``offline_message``."""
    return peewee.make_snake_case(model.__name__.removesuffix("Row"))


class BaseModel(peewee.Model):
    """Models are bound to the database ``Storage.open`` opens (``MODELS``)."""

    class Meta:
        table_function = _table_name


class MetaRow(BaseModel):
    """Key/value rows for generated secrets and console-edited settings (table ``meta``)."""

    key = peewee.TextField(primary_key=True)
    value = peewee.TextField()


class OperatorRow(BaseModel):
    username = peewee.TextField(unique=True)
    display_name = peewee.TextField()
    password_hash = peewee.TextField()
    is_admin = peewee.BooleanField(default=False)
    disabled = peewee.BooleanField(default=False)
    status = peewee.TextField(default=ONLINE)
    created_at = peewee.IntegerField()
    max_chats = peewee.IntegerField(null=True)


class DepartmentRow(BaseModel):
    key = peewee.TextField(unique=True)
    name = peewee.TextField(unique=True)
    email = peewee.TextField(default="")
    auto_assign = peewee.BooleanField(default=False)
    escalate_after = peewee.IntegerField(null=True)
    created_at = peewee.IntegerField()


class DepartmentMemberRow(BaseModel):
    department_id = peewee.IntegerField()
    operator_id = peewee.IntegerField()

    class Meta:
        primary_key = peewee.CompositeKey("department_id", "operator_id")


class SessionRow(BaseModel):
    token_hash = peewee.TextField(unique=True)
    operator_id = peewee.IntegerField()
    created_at = peewee.IntegerField()
    expires_at = peewee.IntegerField()
    ip = peewee.TextField(default="")
    user_agent = peewee.TextField(default="")


class OfflineMessageRow(BaseModel):
    visitor_id = peewee.IntegerField(null=True)
    chat_id = peewee.IntegerField(null=True)
    name = peewee.TextField()
    email = peewee.TextField()
    text = peewee.TextField()
    page_url = peewee.TextField(default="")
    page_title = peewee.TextField(default="")
    ip = peewee.TextField(default="")
    created_at = peewee.IntegerField()
    read = peewee.BooleanField(default=False)
    client_id = peewee.TextField(null=True)
    reply_text = peewee.TextField(default="")
    replied_at = peewee.IntegerField(null=True)
    replied_by = peewee.IntegerField(null=True)
    department_id = peewee.IntegerField(null=True)


class OutboxRow(BaseModel):
    """An e-mail waiting for (or accepted by) the SMTP server; ``message`` is its bytes."""

    kind = peewee.TextField()
    recipient = peewee.TextField()
    subject = peewee.TextField()
    message = peewee.BlobField()
    state = peewee.TextField(default="queued")
    attempts = peewee.IntegerField(default=0)
    next_attempt_at = peewee.IntegerField()
    last_error = peewee.TextField(default="")
    created_at = peewee.IntegerField()
    sent_at = peewee.IntegerField(null=True)
    chat_id = peewee.IntegerField(null=True)
    offline_message_id = peewee.IntegerField(null=True)


class InviteRuleRow(BaseModel):
    name = peewee.TextField()
    enabled = peewee.BooleanField(default=True)
    message = peewee.TextField()
    conditions = peewee.TextField(default="{}")  # JSON, see protocol.RULE_CONDITIONS
    created_at = peewee.IntegerField()


class CannedReplyRow(BaseModel):
    operator_id = peewee.IntegerField(null=True)  # None: shared
    department_id = peewee.IntegerField(null=True)
    shortcut = peewee.TextField()
    text = peewee.TextField()
    created_at = peewee.IntegerField()
    updated_at = peewee.IntegerField()


#: The models ``Storage`` binds to its database.
MODELS = [
    MetaRow,
    OperatorRow,
    DepartmentRow,
    DepartmentMemberRow,
    SessionRow,
    OfflineMessageRow,
    OutboxRow,
    InviteRuleRow,
    CannedReplyRow,
]


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
    [
        # When an operator first answered (kept across a hand-over: a chat answered once is
        # never "missed"); who handed it back to the queue; since when it is pending.
        "ALTER TABLE chat ADD COLUMN answered_at INTEGER",
        "UPDATE chat SET answered_at = accepted_at WHERE accepted_at IS NOT NULL",
        "ALTER TABLE chat ADD COLUMN handed_over_by INTEGER REFERENCES operator(id)",
        "ALTER TABLE chat ADD COLUMN pending_since INTEGER",
        "ALTER TABLE chat ADD COLUMN rating INTEGER",
        "ALTER TABLE chat ADD COLUMN rating_comment TEXT NOT NULL DEFAULT ''",
        # Unguessable, expiring links that reopen a conversation in the chat page.
        """CREATE TABLE chat_link (
            id INTEGER PRIMARY KEY, token_hash TEXT NOT NULL UNIQUE,
            chat_id INTEGER NOT NULL REFERENCES chat(id),
            visitor_id INTEGER NOT NULL REFERENCES visitor(id),
            created_at INTEGER NOT NULL, expires_at INTEGER NOT NULL)""",
        # Outgoing e-mail, kept until the SMTP server accepts it.
        """CREATE TABLE outbox (
            id INTEGER PRIMARY KEY, kind TEXT NOT NULL, recipient TEXT NOT NULL,
            subject TEXT NOT NULL, message BLOB NOT NULL,
            state TEXT NOT NULL DEFAULT 'queued', attempts INTEGER NOT NULL DEFAULT 0,
            next_attempt_at INTEGER NOT NULL, last_error TEXT NOT NULL DEFAULT '',
            created_at INTEGER NOT NULL, sent_at INTEGER,
            chat_id INTEGER REFERENCES chat(id),
            offline_message_id INTEGER REFERENCES offline_message(id))""",
        "CREATE INDEX outbox_due ON outbox(state, next_attempt_at)",
        "ALTER TABLE offline_message ADD COLUMN reply_text TEXT NOT NULL DEFAULT ''",
        "ALTER TABLE offline_message ADD COLUMN replied_at INTEGER",
        "ALTER TABLE offline_message ADD COLUMN replied_by INTEGER REFERENCES operator(id)",
    ],
    [
        # Departments, their members, and each operator's maximum of concurrent chats.
        """CREATE TABLE department (
            id INTEGER PRIMARY KEY, key TEXT NOT NULL UNIQUE, name TEXT NOT NULL UNIQUE,
            email TEXT NOT NULL DEFAULT '', auto_assign INTEGER NOT NULL DEFAULT 0,
            escalate_after INTEGER, created_at INTEGER NOT NULL)""",
        """CREATE TABLE department_member (
            department_id INTEGER NOT NULL REFERENCES department(id) ON DELETE CASCADE,
            operator_id INTEGER NOT NULL REFERENCES operator(id) ON DELETE CASCADE,
            PRIMARY KEY (department_id, operator_id))""",
        "ALTER TABLE operator ADD COLUMN max_chats INTEGER",
        "ALTER TABLE chat ADD COLUMN department_id INTEGER REFERENCES department(id)",
        "ALTER TABLE chat ADD COLUMN escalated_at INTEGER",
        "ALTER TABLE offline_message ADD COLUMN department_id INTEGER REFERENCES department(id)",
        # The visitor's own sequence: operator-only events (internal notes) take an operator
        # seq but no visitor seq (vseq NULL), so a visitor never sees a gap.
        "ALTER TABLE event ADD COLUMN vseq INTEGER",
        "UPDATE event SET vseq = seq",
        "CREATE UNIQUE INDEX event_vseq ON event(chat_id, vseq)",
        "ALTER TABLE chat ADD COLUMN last_vseq INTEGER NOT NULL DEFAULT 0",
        "UPDATE chat SET last_vseq = last_seq",
    ],
    [
        # Canned replies: an operator's own (operator_id) or shared (NULL), optionally for one
        # department; typed in the composer as /shortcut.
        """CREATE TABLE canned_reply (
            id INTEGER PRIMARY KEY,
            operator_id INTEGER REFERENCES operator(id) ON DELETE CASCADE,
            department_id INTEGER REFERENCES department(id) ON DELETE CASCADE,
            shortcut TEXT NOT NULL, text TEXT NOT NULL,
            created_at INTEGER NOT NULL, updated_at INTEGER NOT NULL)""",
        "CREATE INDEX canned_reply_operator ON canned_reply(operator_id)",
        # Direct messages between two operators (low_id < high_id): one sequence per pair,
        # idempotent by the sender's client_id; each side's read cursor.
        """CREATE TABLE direct_message (
            id INTEGER PRIMARY KEY, low_id INTEGER NOT NULL REFERENCES operator(id),
            high_id INTEGER NOT NULL REFERENCES operator(id), seq INTEGER NOT NULL,
            from_id INTEGER NOT NULL REFERENCES operator(id), text TEXT NOT NULL,
            client_id TEXT NOT NULL, ts INTEGER NOT NULL,
            UNIQUE (low_id, high_id, seq), UNIQUE (from_id, client_id))""",
        """CREATE TABLE direct_read (
            operator_id INTEGER NOT NULL REFERENCES operator(id),
            other_id INTEGER NOT NULL REFERENCES operator(id), seq INTEGER NOT NULL,
            PRIMARY KEY (operator_id, other_id))""",
    ],
    [
        # Receipts: each party's delivered/read cursors, in both numberings (JSON; '' = none).
        "ALTER TABLE chat ADD COLUMN receipts TEXT NOT NULL DEFAULT ''",
        # Files attached to a chat: the row, then the bytes in pieces, written as they arrive
        # (complete = 0 until the upload ends; a start-up removes any left incomplete).
        """CREATE TABLE file (
            id INTEGER PRIMARY KEY, chat_id INTEGER NOT NULL REFERENCES chat(id),
            name TEXT NOT NULL, type TEXT NOT NULL DEFAULT '', size INTEGER NOT NULL DEFAULT 0,
            complete INTEGER NOT NULL DEFAULT 0, created_at INTEGER NOT NULL)""",
        "CREATE INDEX file_chat ON file(chat_id)",
        """CREATE TABLE file_chunk (
            file_id INTEGER NOT NULL REFERENCES file(id) ON DELETE CASCADE,
            n INTEGER NOT NULL, data BLOB NOT NULL, PRIMARY KEY (file_id, n))""",
    ],
]
SCHEMA_VERSION = len(MIGRATIONS)
