"""A conversation after the live part: the visitor's e-mail address, the operator's reply
e-mailed to a visitor who has left (with a link that reopens the conversation in the chat
page), the transcript by e-mail, and the visitor's rating.

Links are unguessable (32 random bytes), stored only as a hash, and expire with
``[chat] pending_timeout``; while valid, a link's token is accepted as the visitor's own token
(``Accounts.visitor_id_for``), so the chat page opened from it is that visitor.
"""

from __future__ import annotations

import email.message
import json
import secrets
import time

from .chats import Chats
from .context import Context
from .guards import RateLimiter
from .outbox import Outbox
from .protocol import ApiError, Party, file_line
from .site import Site
from .storage.records import Chat

#: An operator's replies to a visitor who has left are e-mailed at most this often per chat
#: (the e-mail carries the whole conversation so far, and its link shows the rest).
REPLY_MAIL_GAP_S = 10 * 60


def _hhmm(ms: int) -> str:
    return time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(ms / 1000))


class FollowUp:
    def __init__(self, ctx: Context, chats: Chats, outbox: Outbox, site: Site):
        self.config, self.hub, self.clock = ctx.config, ctx.hub, ctx.clock
        self.store = ctx.storage.chats
        self.chats = chats
        self.outbox = outbox
        self.site = site
        self.rl_transcripts = RateLimiter("transcript_mails", (5, 3600.0), ctx.clock)
        #: chat id -> when a reply was last e-mailed (ms).
        self._mailed: dict[int, int] = {}

    # -- the visitor's commands ---------------------------------------------------------------

    async def set_email(self, party: Party, chat_id: int, email: str) -> dict:
        """The visitor leaves an address for the reply to a pending conversation (or any open
        one)."""
        chat = await self.chats.chat_for(party, chat_id)
        if chat.email != email:
            event = {"type": "visitor_details", "email": email}
            pairs = await self.store.append_events(chat, [event], {"email": email})
            await self.chats.publish(chat, pairs)
        return {"chat": await self.chats.summary(chat, "visitor")}

    async def rate(self, party: Party, chat_id: int, rating: int, comment: str = "") -> dict:
        """The visitor rates a chat an operator answered (again: the last rating counts)."""
        chat = await self.chats.chat_for(party, chat_id)
        if chat.answered_at is None:
            raise ApiError(
                "not_answered", f"chat {chat.id} was never answered; there is nothing to rate", 409
            )
        event = {"type": "chat_rated", "rating": rating, "comment": comment}
        changes = {"rating": rating, "rating_comment": comment}
        pairs = await self.store.append_events(chat, [event], changes)
        await self.chats.publish(chat, pairs)
        return {"chat": await self.chats.summary(chat, "visitor")}

    async def email_transcript(self, party: Party, chat_id: int, email: str) -> dict:
        """The whole conversation so far, e-mailed to the visitor."""
        chat = await self.chats.chat_for(party, chat_id)
        self._need_mail()
        self.rl_transcripts.check(party.visitor_id, "transcript e-mails")
        text = await self._transcript_text(chat)
        m = self._message(email, "Your chat with us", text)
        mail = await self.outbox.send("transcript", m, chat_id=chat.id)
        return {"mail": {"id": mail.id, "state": mail.state}}

    # -- the operator's replies ---------------------------------------------------------------

    async def replied(self, chat: Chat, event: dict) -> None:
        """An operator wrote: when the visitor is not on the site and left an address, e-mail
        the conversation with a link that reopens it (once per ``REPLY_MAIL_GAP_S``)."""
        if not self.outbox.enabled or not chat.email:
            return
        if self.hub.count(f"v:{chat.visitor_id}"):
            return  # on the site: the widget shows the reply
        now = self.clock.now_ms()
        if now - self._mailed.get(chat.id, -(10**15)) < REPLY_MAIL_GAP_S * 1000:
            return
        self._mailed[chat.id] = now
        link = await self.new_link(chat)
        who = (event.get("operator") or {}).get("name") or "We"
        text = "\n".join(
            [
                f"{who} replied to your chat:",
                "",
                *[f"> {line}" for line in _event_text(event).split("\n")],
                "",
                f"Continue the conversation here: {link}",
                f"(This link is yours alone; it works until {_hhmm(self._expiry(now))}.)",
                "",
                "The conversation so far:",
                "",
                await self._transcript_text(chat),
            ]
        )
        await self.outbox.send(
            "reply", self._message(chat.email, f"{who} replied", text), chat_id=chat.id
        )

    # -- links --------------------------------------------------------------------------------

    def _expiry(self, now: int) -> int:
        return now + int(self.config.chat_pending_timeout * 1000)

    async def new_link(self, chat: Chat) -> str:
        """A new link to the chat page that opens this conversation as its visitor."""
        token = secrets.token_urlsafe(32)
        now = self.clock.now_ms()
        await self.store.create_link(token, chat.id, chat.visitor_id, now, self._expiry(now))
        return f"{self.site.base_url}/chat?link={token}"

    # -- e-mail -------------------------------------------------------------------------------

    def _need_mail(self) -> None:
        if not self.outbox.enabled:
            raise ApiError("mail_not_configured", "this site does not send e-mail", 409)

    def _message(self, to: str, subject: str, body: str) -> email.message.EmailMessage:
        return self.outbox.mailer.to_visitor(
            email_address=to, subject=subject, body=body, base_url=self.site.base_url
        )

    async def _transcript_text(self, chat: Chat) -> str:
        lines = []
        for raw in await self.store.visitor_events_after(chat.id, 0):  # never a note
            ev = json.loads(raw)
            if ev["type"] not in ("message", "file"):
                continue
            who = "You" if ev["from"] == "visitor" else (ev.get("operator") or {}).get("name", "")
            lines.append(f"[{_hhmm(ev['ts'])}] {who}:")
            lines.extend(f"  {line}" for line in _event_text(ev).split("\n"))
        return "\n".join(lines) or "(no messages)"


def _event_text(event: dict) -> str:
    """A message's text, or a file's line."""
    return file_line(event["file"]) if event["type"] == "file" else event["text"]
