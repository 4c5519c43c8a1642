"""Who is who: anonymous visitors by token, operators with passwords and console sessions."""

from __future__ import annotations

import asyncio
import collections
import hmac
import logging
import secrets
from collections.abc import Callable
from typing import Any

from .clock import Clock
from .config import Config
from .context import Context
from .hub import Signal
from .protocol import (
    MAX_PASSWORD_CHARS,
    MAX_TOKEN_CHARS,
    MAX_UA_CHARS,
    ApiError,
    Party,
    invalid_field,
    not_found,
)
from .storage.accounts import Duplicate
from .storage.records import Operator

log = logging.getLogger("cutelive")

#: Runs a blocking function off the event loop: ``await run_blocking(fn, *args)``; returns a
#: future (``add_done_callback`` works on it).
RunBlocking = Callable[..., asyncio.Future]


class Argon2Hasher:
    """Operator passwords, hashed with argon2id (memory-hard) at the library's defaults."""

    def __init__(self) -> None:
        import argon2  # a runtime dependency; imported here so that importing stays cheap

        self._argon2 = argon2
        self._hasher = argon2.PasswordHasher()

    def hash(self, password: str) -> str:
        return self._hasher.hash(password)

    def verify(self, stored: str, password: str) -> bool:
        try:
            return self._hasher.verify(stored, password)
        except (
            self._argon2.exceptions.VerificationError,
            self._argon2.exceptions.InvalidHashError,
        ):
            return False


class LoginThrottle:
    """Failed logins per account (then a lockout) and per address, in sliding windows."""

    def __init__(self, config: Config, clock: Clock):
        self.clock = clock
        self.per_account = config.operators_login_failures
        self.per_ip = config.operators_login_failures_per_ip
        self.lockout = config.operators_login_lockout
        self._account: dict[str, collections.deque] = {}
        self._ip: dict[str, collections.deque] = {}
        self._locked_until: dict[str, float] = {}

    def wait(self, username: str, ip: str) -> float:
        """Seconds until this account may try again from this address; 0 when it may now."""
        mono = self.clock.monotonic()
        until = self._locked_until.get(username, 0)
        if until > mono:
            return until - mono
        n, period = self.per_ip
        q = self._ip.get(ip)
        if q is not None and len(q) >= n and mono - q[0] < period:
            return period - (mono - q[0])
        return 0.0

    def failed(self, username: str, ip: str) -> None:
        mono = self.clock.monotonic()
        n, period = self.per_account
        q = self._account.setdefault(username, collections.deque(maxlen=n))
        q.append(mono)
        if len(q) >= n and mono - q[0] < period:
            self._locked_until[username] = mono + self.lockout
            q.clear()
            log.warning("login for %r locked after %d failures", username, n)
        n, period = self.per_ip
        q = self._ip.setdefault(ip, collections.deque(maxlen=n))
        q.append(mono)

    def succeeded(self, username: str) -> None:
        self._account.pop(username, None)

    def forget_old(self) -> None:
        """Drop failure records older than their window, so memory stays bounded."""
        mono = self.clock.monotonic()
        for table, (_, period) in ((self._account, self.per_account), (self._ip, self.per_ip)):
            for key in [k for k, q in table.items() if not q or mono - q[-1] > period]:
                del table[key]
        for key in [k for k, until in self._locked_until.items() if until <= mono]:
            del self._locked_until[key]


class Accounts:
    """Visitor tokens, operators, logins and sessions.

    Announces ``sessions_ended(session_ids, reason)`` (the streams close those sessions'
    connections), ``operator_disabled(operator_id)`` and ``operator_changed(operator_id)``
    (its name or its maximum of chats).
    """

    #: Visitor tokens remembered in front of the database.
    TOKEN_CACHE = 100_000

    def __init__(self, ctx: Context, run_blocking: RunBlocking, hasher: Any = None):
        config = self.config = ctx.config
        self.store, clock = ctx.storage.accounts, ctx.clock
        self.clock = clock
        self.run_blocking = run_blocking
        self.hasher = hasher if hasher is not None else Argon2Hasher()
        self.validate = ctx.validate
        self.throttle = LoginThrottle(config, clock)
        self.setup_token: str | None = None
        #: A hash of a random password, so that an unknown username costs a login as much
        #: time as a wrong password. Made on the first such login, off the start-up path.
        self._dummy_hash: str | None = None
        self._tokens: collections.OrderedDict[str, int] = collections.OrderedDict()
        self.sessions_ended = Signal("sessions_ended")
        self.operator_disabled = Signal("operator_disabled")
        self.operator_changed = Signal("operator_changed")

    async def start(self) -> None:
        if await self.store.operator_count() == 0:
            self.setup_token = secrets.token_urlsafe(16)

    async def setup_required(self) -> bool:
        return self.setup_token is not None and await self.store.operator_count() == 0

    # -- visitors -----------------------------------------------------------------------------

    async def new_visitor(self, ip: str, user_agent: str) -> tuple[str, int]:
        """A new anonymous visitor; returns ``(token, visitor_id)``."""
        token = secrets.token_urlsafe(32)
        visitor = await self.store.create_visitor(token, ip, user_agent[:MAX_UA_CHARS])
        return token, visitor.id

    async def visitor_id_for(self, token: Any) -> int:
        """The visitor id of a token, from a cache in front of the database."""
        if not isinstance(token, str) or not token or len(token) > MAX_TOKEN_CHARS:
            raise ApiError("bad_token", "a visitor token is required", 401)
        vid = self._tokens.get(token)
        if vid is None:
            vid = await self.store.visitor_id_by_token(token)
            if vid is None:
                # A link that reopens a conversation stands for its visitor until it expires
                # (not cached, so that it stops at once).
                vid = await self.store.visitor_id_by_link(token, self.clock.now_ms())
                if vid is None:
                    raise ApiError("bad_token", "unknown visitor token; get a new one", 401)
                return vid
            self._tokens[token] = vid
            if len(self._tokens) > self.TOKEN_CACHE:
                self._tokens.popitem(last=False)
        return vid

    async def visitor_party(self, token: Any, ip: str, user_agent: str) -> Party:
        vid = await self.visitor_id_for(token)
        return Party("visitor", visitor_id=vid, ip=ip, user_agent=user_agent)

    # -- passwords ----------------------------------------------------------------------------

    async def hash_password(self, password: str) -> str:
        return await self.run_blocking(self.hasher.hash, password)

    async def check_password(self, stored: str, password: str) -> bool:
        return await self.run_blocking(self.hasher.verify, stored, password)

    # -- operators ----------------------------------------------------------------------------

    async def create_operator(
        self,
        username: Any,
        display_name: Any,
        password: Any,
        is_admin: Any = False,
        max_chats: int | None = None,
    ) -> Operator:
        v = self.validate
        username = v.kind("username", "username", username)
        display_name = v.kind("name", "display_name", display_name)
        password = v.kind("password", "password", password)
        is_admin = v.kind("bool", "is_admin", is_admin)
        taken = ApiError("username_taken", f"the username {username!r} is taken", 409)
        if await self.store.operator_by_username(username) is not None:
            raise taken
        hashed = await self.hash_password(password)
        try:
            op = await self.store.create_operator(
                username, display_name, hashed, is_admin, max_chats
            )
        except Duplicate:
            raise taken from None
        self.setup_token = None
        return op

    async def setup_first_admin(
        self, setup_token: Any, username: Any, display_name: Any, password: Any
    ) -> Operator:
        if self.setup_token is None or await self.store.operator_count() > 0:
            raise ApiError("setup_done", "the first administrator already exists; log in", 409)
        if not isinstance(setup_token, str) or not hmac.compare_digest(
            setup_token.encode("utf-8", "replace"), self.setup_token.encode()
        ):
            raise ApiError(
                "bad_setup_token", "wrong setup token; it is printed in the server log", 403
            )
        return await self.create_operator(username, display_name, password, True)

    async def update_operator(self, actor: Party, operator_id: int, body: Any) -> Operator:
        """An administrator edits an operator: name, admin rights, disabled, new password."""
        args = self.validate.request("operator_changes", body)
        op = await self.store.operator(operator_id)
        if op is None:
            raise not_found(f"no operator {operator_id}")
        if op.id == actor.operator_id and (args.get("disabled") or args.get("is_admin") is False):
            raise invalid_field(
                "disabled",
                "you cannot disable yourself or drop your own admin "
                "rights; ask another administrator",
            )
        changes: dict[str, Any] = {
            k: args[k] for k in ("display_name", "is_admin", "disabled") if k in args
        }
        if isinstance(body, dict) and "max_chats" in body:  # null: back to [chat] max_chats
            changes["max_chats"] = args.get("max_chats")
        if "password" in args:
            changes["password_hash"] = await self.hash_password(args["password"])
        if changes:
            await self.store.update_operator(op.id, **changes)
        if args.get("disabled"):
            await self.end_sessions(op.id, "disabled")
            await self.operator_disabled.emit(op.id)
        elif "password" in args:
            keep = actor.session_id if op.id == actor.operator_id else None
            await self.end_sessions(op.id, "password_changed", keep_session_id=keep)
        elif "display_name" in changes or "max_chats" in changes:
            await self.operator_changed.emit(op.id)
        return await self.store.operator(op.id)

    async def change_own_password(self, party: Party, body: Any) -> None:
        args = self.validate.request("password_change", body)
        op = await self.store.operator(party.operator_id)
        if not await self.check_password(op.password_hash, args["current_password"]):
            raise ApiError("login_failed", "the current password is wrong", 401)
        await self.update_operator(party, op.id, {"password": args["new_password"]})

    async def set_password(self, username: str, password: Any) -> Operator:
        """Set an operator's password from the command line and end all its sessions."""
        op = await self.store.operator_by_username(username)
        if op is None:
            raise not_found(f"no operator {username!r}")
        password = self.validate.kind("password", "password", password)
        await self.store.update_operator(op.id, password_hash=await self.hash_password(password))
        await self.store.delete_sessions(op.id)
        return op

    # -- sessions -----------------------------------------------------------------------------

    async def login(self, username: Any, password: Any, ip: str, user_agent: str):
        """Check credentials; returns ``(session_token, operator)`` or raises login_failed."""
        if not isinstance(username, str) or not isinstance(password, str):
            raise ApiError("invalid_field", "'username' and 'password' must be strings")
        username = username.strip().lower()[:64]
        password = password[:MAX_PASSWORD_CHARS]
        wait = self.throttle.wait(username, ip)
        if wait:
            raise ApiError(
                "login_throttled",
                "too many failed logins; try again later",
                429,
                retry_after=int(wait) + 1,
            )
        op = await self.store.operator_by_username(username)
        if op is None and self._dummy_hash is None:
            self._dummy_hash = await self.hash_password(secrets.token_hex(8))
        ok = await self.check_password(op.password_hash if op else self._dummy_hash, password)
        if not ok or op is None or op.disabled:
            self.throttle.failed(username, ip)
            raise ApiError("login_failed", "wrong username or password", 401)
        self.throttle.succeeded(username)
        return await self.new_session(op, ip, user_agent), op

    async def new_session(self, op: Operator, ip: str, user_agent: str) -> str:
        """A console session for the operator; returns its cookie value."""
        token = secrets.token_urlsafe(32)
        lifetime = self.config.operators_session_lifetime
        await self.store.create_session(token, op.id, lifetime, ip, user_agent[:MAX_UA_CHARS])
        return token

    async def operator_party(
        self, session_token: str | None, ip: str, user_agent: str
    ) -> Party | None:
        """The operator behind a session cookie, or None (no session, expired, disabled)."""
        if not session_token:
            return None
        s = await self.store.session_by_token(session_token)
        if s is None:
            return None
        op = await self.store.operator(s.operator_id)
        if op is None or op.disabled:
            return None
        return Party("operator", operator_id=op.id, session_id=s.id, ip=ip, user_agent=user_agent)

    async def end_sessions(
        self,
        operator_id: int,
        reason: str,
        keep_session_id: int | None = None,
        only_session_id: int | None = None,
    ) -> None:
        """Delete sessions and announce it, so their streams close at once."""
        ids = await self.store.delete_sessions(operator_id, keep_session_id, only_session_id)
        await self.sessions_ended.emit(ids, reason)

    async def vanished_sessions(self, session_ids: list[int]) -> list[int]:
        """Which of these sessions are gone (``cutelive passwd``, expiry, another tool); the
        expired ones' rows are deleted."""
        alive = await self.store.live_sessions(session_ids)
        gone = [sid for sid in session_ids if sid not in alive]
        if gone:
            await self.store.delete_session_rows(gone)
        return gone
