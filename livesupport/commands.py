"""The commands each party may send over its stream (or ``POST .../send``), found in one
explicit table, checked against the schemas in ``protocol.COMMANDS``, and answered by an
``ack``, a ``pong`` or an ``error``."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from .chats import Chats
from .direct import Direct
from .followup import FollowUp
from .invitations import Invitations
from .offline import OfflineMessages
from .presence import Presence
from .protocol import COMMANDS, HAND_OVER, ONLINE, ApiError, Party, Validator, request_id_ok
from .receipts import Receipts
from .streams import Streams
from .transfers import Transfers

log = logging.getLogger("cutelive")

#: A command's handler: ``await handler(party, stream, **fields)`` returns the ack's fields.
Handler = Callable[..., Awaitable[dict | None]]


class Commands:
    def __init__(
        self,
        validate: Validator,
        chats: Chats,
        offline: OfflineMessages,
        followup: FollowUp,
        invitations: Invitations,
        presence: Presence,
        streams: Streams,
        transfers: Transfers,
        direct: Direct,
        receipts: Receipts,
    ):
        self.validate = validate
        self.chats = chats
        self.invitations = invitations
        self.presence = presence
        #: role -> command type -> handler; the schemas are ``protocol.COMMANDS``.
        self.table: dict[str, dict[str, Handler]] = {
            "visitor": {
                "sync": streams.sync,
                "ping": self._ping,
                "start_chat": self._drop_stream(chats.start_chat),
                "message": self._drop_stream(chats.message),
                "typing": self._drop_stream(chats.set_typing),
                "receipt": self._drop_stream(receipts.set),
                "close": self._drop_stream(chats.close),
                "accept_invitation": self._drop_stream(chats.accept_invitation),
                "decline_invitation": self._decline_invitation,
                "leave_message": self._drop_stream(offline.leave),
                "set_email": self._drop_stream(followup.set_email),
                "rate": self._drop_stream(followup.rate),
                "email_transcript": self._drop_stream(followup.email_transcript),
            },
            "operator": {
                "sync": streams.sync,
                "ping": self._ping,
                "message": self._drop_stream(chats.message),
                "typing": self._drop_stream(chats.set_typing),
                "receipt": self._drop_stream(receipts.set),
                "close": self._drop_stream(chats.close),
                "accept": self._drop_stream(chats.accept),
                "invite": self._invite,
                "status": self._status,
                "note": self._drop_stream(transfers.note),
                "transfer": self._drop_stream(transfers.offer),
                "accept_transfer": self._drop_stream(transfers.accept),
                "decline_transfer": self._drop_stream(transfers.decline),
                "direct": self._drop_stream(direct.send),
                "direct_read": self._drop_stream(direct.read),
            },
        }

    @staticmethod
    def _drop_stream(fn: Callable[..., Awaitable[dict]]) -> Handler:
        """Most commands act on the party alone, whichever stream carried them."""

        async def handler(party: Party, stream: Any, **fields: Any) -> dict:
            return await fn(party, **fields)

        handler.__name__ = fn.__name__
        return handler

    async def dispatch(self, party: Party, stream: Any, cmd: Any) -> dict:
        """Run one command; returns the reply event (ack, pong or error). Never raises."""
        try:
            return await self.run(party, stream, cmd)
        except Exception as e:
            return _error_reply(cmd, e)

    async def run(self, party: Party, stream: Any, cmd: Any) -> dict:
        """Run one command; returns its ack (or pong), raises ApiError for the error."""
        ctype, handler, args = self._checked(party, cmd)
        result = await handler(party, stream, **args)
        if ctype == "ping":
            return {"type": "pong", "ref": cmd.get("id")}
        return {"type": "ack", "ref": cmd.get("id"), **(result or {})}

    def at_once(self, party: Party, cmd: Any) -> dict | None:
        """The reply to a ``ping``, its pong or its error, without a coroutine (a socket's
        heartbeat, hundreds a second on a busy server); None for any other command."""
        if not isinstance(cmd, dict) or cmd.get("type") != "ping":
            return None
        try:
            self._checked(party, cmd)
        except Exception as e:
            return _error_reply(cmd, e)
        return {"type": "pong", "ref": cmd.get("id")}

    def _checked(self, party: Party, cmd: Any) -> tuple[str, Handler, dict]:
        """A command's type, handler and validated fields; raises ApiError for a bad one."""
        if not isinstance(cmd, dict):
            raise ApiError("bad_json", "a command must be a JSON object")
        ref = cmd.get("id")
        if ref is not None and not request_id_ok(ref):
            raise ApiError(
                "invalid_field", "'id' must be a string of up to 64 characters", field="id"
            )
        ctype = cmd.get("type")
        if ctype == "hello":
            raise ApiError("unknown_type", "'hello' is only the first frame of a WebSocket")
        handler = self.table[party.role].get(ctype) if isinstance(ctype, str) else None
        if handler is None:
            raise ApiError(
                "unknown_type",
                f"unknown command type {str(ctype)[:40]!r}; see docs/PROTOCOL.md §5",
            )
        return ctype, handler, self.validate.fields(cmd, COMMANDS[party.role][ctype], f"'{ctype}'")

    # -- commands that are glue between subjects ----------------------------------------------

    async def _ping(self, party: Party, stream: Any) -> None:
        return None

    async def _decline_invitation(self, party: Party, stream: Any, invitation_id: str) -> dict:
        self.invitations.answer(party.visitor_id, invitation_id, False)
        return {}

    async def _invite(self, party: Party, stream: Any, visitor_id: int, message: str = "") -> dict:
        if self.presence.status_of(party.operator_id) != ONLINE:
            raise ApiError("status_not_online", "set your status to online to invite", 409)
        inv = await self.invitations.invite(party.operator_id, visitor_id, message)
        return {"invitation": {k: inv[k] for k in ("id", "state", "operator", "message")}}

    async def _status(self, party: Party, stream: Any, status: str, chats: str = HAND_OVER) -> dict:
        await self.presence.set_status(party.operator_id, status, chats)
        return {"status": status}


def _error_reply(cmd: Any, e: Exception) -> dict:
    """The error event that answers a command which failed: the client's mistake as it is,
    a bug logged and answered as ``server_error`` (the connection stays)."""
    ref = cmd.get("id") if isinstance(cmd, dict) else None
    ref = ref if request_id_ok(ref) else None
    if isinstance(e, ApiError):
        return e.event(ref)
    log.error("command %.40r failed", cmd.get("type") if isinstance(cmd, dict) else cmd, exc_info=e)
    return ApiError("server_error", "internal error; it has been logged", 500).event(ref)
