"""Messages left while nobody was online: stored, e-mailed, and kept in the console's inbox."""

from __future__ import annotations

import email.message
import logging
from typing import Any

from .accounts import RunBlocking
from .chats import Chats
from .context import Context
from .guards import RateLimiter
from .mail import Mailer
from .protocol import Party, not_found
from .site import Site
from .storage.records import OfflineMessage

log = logging.getLogger("cutelive")


class OfflineMessages:
    def __init__(
        self, ctx: Context, chats: Chats, mailer: Mailer, site: Site, run_blocking: RunBlocking
    ):
        self.store, self.hub, self.clock = ctx.storage.chats, ctx.hub, ctx.clock
        #: Offline messages for the whole site, whatever addresses they come from.
        self.rl_site = RateLimiter(
            "offline_messages", ctx.config.limits_offline_messages, ctx.clock
        )
        self.chats = chats
        self.mailer = mailer
        self.site = site
        self.run_blocking = run_blocking

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
    ) -> dict:
        """The visitor's ``leave_message`` command; the same ``client_id`` stores it once."""
        if chat_id is not None:
            await self.chats.chat_for(party, chat_id)
        if client_id is not None:
            again = await self.store.offline_message_by_client_id(party.visitor_id, client_id)
            if again is not None:
                return {"offline_message": {"id": again.id, "created_at": again.created_at}}
        # Built before anything is stored, so an address that cannot be mailed stores nothing.
        mail = None
        if self.mailer.enabled:
            mail = self.mailer.offline_message(
                name=name,
                email_address=email,
                text=text,
                page_url=page_url,
                base_url=self.site.base_url,
            )
        self.chats.rl_chats.check(party.ip, "chats and messages from this address")
        self.chats.rl_messages.check(party.visitor_id, "messages")
        self.rl_site.check("site", "offline messages for this site")
        msg = await self.store.create_offline_message(
            visitor_id=party.visitor_id,
            chat_id=chat_id,
            name=name,
            email=email,
            text=text,
            page_url=page_url,
            page_title=page_title,
            ip=party.ip,
            created_at=self.clock.now_ms(),
            client_id=client_id,
        )
        if mail is not None:
            self._send(mail)
        self.hub.publish(["ops"], {"type": "offline_message", "message": msg.public()})
        return {"offline_message": {"id": msg.id, "created_at": msg.created_at}}

    def _send(self, m: email.message.EmailMessage) -> None:
        fut = self.run_blocking(self.mailer.send, m)

        def done(f: Any) -> None:
            exc = f.exception()
            if exc is not None:
                log.warning("could not send e-mail to %s: %s", m["To"], exc)
            else:
                log.info("e-mailed offline message to %s", m["To"])

        fut.add_done_callback(done)

    async def inbox(self) -> list[OfflineMessage]:
        return await self.store.offline_messages()

    async def mark(self, message_id: int, read: bool) -> OfflineMessage:
        msg = await self.store.mark_offline_message(message_id, read)
        if msg is None:
            raise not_found("no such message")
        return msg
