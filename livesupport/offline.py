"""Messages left while nobody was online: stored, e-mailed, and kept in the console's inbox."""

from __future__ import annotations

from .chats import Chats
from .context import Context
from .guards import RateLimiter
from .outbox import Outbox
from .protocol import ApiError, Party, not_found
from .site import Site
from .storage.records import OfflineMessage

#: Outbox kinds: the notification of a new message to ``[mail] to_address``, and an
#: operator's reply to the visitor.
NOTIFICATION, REPLY = "offline_message", "offline_reply"


class OfflineMessages:
    def __init__(self, ctx: Context, chats: Chats, outbox: Outbox, site: Site):
        self.store, self.hub, self.clock = ctx.storage.chats, ctx.hub, ctx.clock
        self.operators = ctx.storage.accounts
        self.mail_store = ctx.storage.outbox
        self.validate = ctx.validate
        #: Offline messages for the whole site, whatever addresses they come from.
        self.rl_site = RateLimiter(
            "offline_messages", ctx.config.limits_offline_messages, ctx.clock
        )
        self.chats = chats
        self.outbox = outbox
        self.site = site

    async def leave(
        self,
        party: Party,
        name: str,
        email: str,
        text: str,
        page_url: str = "",
        page_title: str = "",
        chat_id: int | None = None,
        client_id: str | None = None,
        department: str | None = None,
    ) -> dict:
        """The visitor's ``leave_message`` command; the same ``client_id`` stores it once.
        With ``[mail]`` configured, its notification is queued in the same transaction."""
        follows = await self.chats.chat_for(party, chat_id) if chat_id is not None else None
        dept = await self.chats.departments.for_message(department)
        if dept is None and follows is not None and follows.department_id:
            dept = self.chats.departments.by_id.get(follows.department_id)  # the missed chat's
        if client_id is not None:
            again = await self.store.offline_message_by_client_id(party.visitor_id, client_id)
            if again is not None:
                return {"offline_message": {"id": again.id, "created_at": again.created_at}}
        # Built before anything is stored, so an address that cannot be mailed stores nothing.
        mail = None
        if self.outbox.enabled:
            mail = self.outbox.mailer.offline_message(
                name=name,
                email_address=email,
                text=text,
                page_url=page_url,
                base_url=self.site.base_url,
                department=dept.name if dept else "",
                to=dept.email if dept else "",
            )
        self.chats.rl_chats.check(party.ip, "chats and messages from this address")
        self.chats.rl_messages.check(party.visitor_id, "messages")
        self.rl_site.check("site", "offline messages for this site")
        at = self.clock.now_ms()
        msg, queued = await self.store.create_offline_message(
            mail=self.outbox.entry(NOTIFICATION, mail, created_at=at) if mail else None,
            visitor_id=party.visitor_id,
            chat_id=chat_id,
            name=name,
            email=email,
            text=text,
            page_url=page_url,
            page_title=page_title,
            ip=party.ip,
            created_at=at,
            client_id=client_id,
            department_id=dept.id if dept else None,
        )
        view = self._view(msg, [queued] if queued else [])
        self.hub.publish(["ops"], {"type": "offline_message", "message": view})
        if queued is not None:
            self.outbox.queued(queued)
        return {"offline_message": {"id": msg.id, "created_at": msg.created_at}}

    async def inbox(self) -> list[OfflineMessage]:
        return await self.store.offline_messages()

    async def listing(self) -> list[dict]:
        """The inbox as the console shows it: each message with its ``mail`` (notification
        and reply e-mails, with their outbox states)."""
        msgs = await self.inbox()
        mails = await self.mail_store.for_offline_messages([m.id for m in msgs])
        by_message: dict[int, list[dict]] = {}
        for mail in mails:
            by_message.setdefault(mail.offline_message_id, []).append(mail.public())
        return [dict(self._view(m, []), mail=by_message.get(m.id, [])) for m in msgs]

    async def mark(self, message_id: int, read: bool) -> OfflineMessage:
        msg = await self.store.mark_offline_message(message_id, read)
        if msg is None:
            raise not_found("no such message")
        return msg

    async def reply(self, party: Party, message_id: int, text: str) -> dict:
        """An operator answers a message by e-mail: the reply is kept with the message and
        its mail queued in one transaction, then announced to the consoles."""
        if not self.outbox.enabled:
            raise ApiError(
                "mail_not_configured",
                "replies are sent by e-mail, and [mail] is not configured on this server",
                409,
            )
        msg = await self.store.offline_message(message_id)
        if msg is None:
            raise not_found("no such message")
        if msg.replied_at is not None:
            raise _already_replied(message_id)
        # Stored before the address rules were what they are now, it is checked again.
        self.validate.email("email", msg.email)
        operator = await self.operators.operator(party.operator_id)
        mail = self.outbox.mailer.reply(
            name=msg.name,
            email_address=msg.email,
            text=text,
            signature=operator.display_name if operator else "",
            original=msg.text,
            written_at=msg.created_at,
        )
        at = self.clock.now_ms()
        done = await self.store.reply_offline_message(
            message_id, text, party.operator_id, at, self.outbox.entry(REPLY, mail, created_at=at)
        )
        if done is None:
            raise _already_replied(message_id)
        msg, queued = done
        self.outbox.queued(queued)
        mails = await self.mail_store.for_offline_messages([msg.id])
        view = self._view(msg, mails)
        self.hub.publish(["ops"], {"type": "offline_message_replied", "message": view})
        return view

    def _view(self, msg: OfflineMessage, mails: list) -> dict:
        """A message as the console shows it: with its department and its e-mails."""
        view = msg.public()
        view["department"] = self.chats.departments.ref(msg.department_id)
        view["mail"] = [m.public() for m in mails]
        return view


def _already_replied(message_id: int) -> ApiError:
    return ApiError("already_replied", f"message {message_id} has been answered already", 409)
