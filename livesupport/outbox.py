"""The outbox: no e-mail is lost to a passing outage.

Every e-mail is stored before it is sent, in the same transaction as the record it is about,
then handed to the SMTP server off the event loop. A try that fails is repeated after
``[mail] retry_first``, doubling up to ``retry_max``; mail the server refuses for good, or
does not accept within ``give_up_after``, is marked failed. The queue is the table, so a
restart resumes it: what waits is tried once at start, then on its schedule. Consoles hear
of every change (``mail_changed``).

Delivery is at least once: only a crash between the SMTP server's acceptance and the row's
update (a few milliseconds) sends a mail twice. One sender per process goes through the due
mail, and each try is claimed in the database first, so no row is ever sent by two senders.
"""

from __future__ import annotations

import asyncio
import email.message
import logging

from .accounts import RunBlocking
from .context import Context
from .mail import Mailer, failure_text, message_bytes, refused_for_good
from .storage import StorageUnavailable
from .storage.records import OutboxMail

log = logging.getLogger("cutelive")


class Outbox:
    """Queues e-mail in the database and delivers it through the ``Mailer``."""

    #: Mail read from the queue at a time.
    BATCH = 20

    def __init__(self, ctx: Context, mailer: Mailer, run_blocking: RunBlocking):
        self.store = ctx.storage.outbox
        self.hub, self.clock = ctx.hub, ctx.clock
        self.mailer = mailer
        self.run_blocking = run_blocking
        self.retry_first_ms = int(ctx.config.mail_retry_first * 1000)
        self.retry_max_ms = int(ctx.config.mail_retry_max * 1000)
        self.give_up_ms = int(ctx.config.mail_give_up_after * 1000)
        self._running = False
        self._sending = False
        self._again = False
        self._timer = None
        self._pass: asyncio.Task | None = None

    @property
    def enabled(self) -> bool:
        """Whether ``[mail]`` is configured: only then is mail queued and sent."""
        return self.mailer.enabled

    # -- queueing ---------------------------------------------------------------------------

    def entry(
        self,
        kind: str,
        message: email.message.EmailMessage,
        *,
        created_at: int,
        chat_id: int | None = None,
        offline_message_id: int | None = None,
    ) -> dict:
        """The outbox row of a message, for a store that writes it with its own record
        (``OutboxStore.add``); then call ``queued`` with the stored mail."""
        return {
            "kind": kind,
            "recipient": str(message["To"]),
            "subject": str(message["Subject"]),
            "message": message_bytes(message),
            "created_at": created_at,
            "chat_id": chat_id,
            "offline_message_id": offline_message_id,
        }

    async def send(
        self, kind: str, message: email.message.EmailMessage, **links: int | None
    ) -> OutboxMail:
        """Queue a message on its own and send it (``links``: ``chat_id``,
        ``offline_message_id``)."""
        entry = self.entry(kind, message, created_at=self.clock.now_ms(), **links)
        mail = await self.store.queue(entry)
        self.queued(mail)
        return mail

    def queued(self, mail: OutboxMail) -> None:
        """A mail was stored (after the commit): tell the consoles, and send it."""
        self._announce(mail)
        self.wake()

    async def recent(self, limit: int = 100) -> list[OutboxMail]:
        return await self.store.recent(limit)

    # -- the sender -------------------------------------------------------------------------

    async def start(self) -> None:
        """Resume the queue after a (re)start: what waits is tried at once (the restart may
        have been to fix ``[mail]``), then on its own schedule."""
        waiting = await self.store.queued_count()
        if not self.enabled:
            if waiting:
                log.warning("%d e-mails wait in the outbox, but [mail] is not configured", waiting)
            return
        if waiting:
            log.info("%d e-mails wait in the outbox; sending them", waiting)
            await self.store.due_now(self.clock.now_ms())
        self._running = True
        self.wake()

    def stop(self) -> None:
        """No further tries (a try under way finishes)."""
        self._running = False
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    async def finish(self, timeout: float) -> None:
        """Stop, and give a try under way up to ``timeout`` seconds to be recorded (a mail the
        SMTP server took but the database did not record would be sent again)."""
        self.stop()
        if self._pass is not None and not self._pass.done():
            await asyncio.wait({self._pass}, timeout=timeout)

    def wake(self) -> None:
        """Send what is due now. One sender runs at a time; woken meanwhile, it looks again."""
        if not self._running:
            return
        if self._sending:
            self._again = True
            return
        self._sending = True
        self._pass = self.clock.spawn(self._send_due())

    async def _send_due(self) -> None:
        full = False
        try:
            while self._running:
                self._again = False
                batch = await self.store.due(self.clock.now_ms(), self.BATCH)
                for mail in batch:
                    if not self._running:
                        return
                    await self._try(mail)
                if len(batch) < self.BATCH and not self._again:
                    break
        except StorageUnavailable:
            # The storage has logged it. The mail stays queued as the table says (a try the
            # SMTP server took but that could not be recorded goes out again: at least once).
            full = True
        finally:
            self._sending = False
            if self._running:
                await self._schedule(StorageUnavailable.RETRY_AFTER if full else None)

    async def _schedule(self, at_least: float | None = None) -> None:
        """A timer for the next mail due (not sooner than ``at_least`` seconds)."""
        due = await self.store.next_due()
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if due is not None and self._running:
            delay = max(at_least or 0.0, (due - self.clock.now_ms()) / 1000)
            self._timer = self.clock.call_later(delay, self.wake)

    def backoff_ms(self, failures: int) -> int:
        """The wait after the ``failures``-th failed try: ``retry_first`` doubling, at most
        ``retry_max``."""
        return min(self.retry_first_ms * 2 ** min(failures - 1, 40), self.retry_max_ms)

    async def _try(self, mail: OutboxMail) -> None:
        now = self.clock.now_ms()
        # The next try is set before this one goes out: a crash during it loses nothing.
        if not await self.store.claim(mail, now + self.backoff_ms(mail.attempts + 1)):
            return  # changed since it was read
        data = await self.store.message(mail.id)
        try:
            await self.run_blocking(self.mailer.deliver, mail.recipient, data)
        except Exception as exc:
            error = failure_text(exc)
            if refused_for_good(exc) or mail.next_attempt_at > mail.created_at + self.give_up_ms:
                await self.store.failed(mail, error)
                log.warning(
                    "gave up e-mail %d (%s) to %s after %d tries: %s",
                    mail.id,
                    mail.kind,
                    mail.recipient,
                    mail.attempts,
                    error,
                )
            else:
                await self.store.retry(mail, error)
                log.warning(
                    "could not send e-mail %d (%s) to %s, try %d: %s; next try in %ds",
                    mail.id,
                    mail.kind,
                    mail.recipient,
                    mail.attempts,
                    error,
                    (mail.next_attempt_at - now) // 1000,
                )
        else:
            await self.store.sent(mail, self.clock.now_ms())
            log.info("e-mail %d (%s) sent to %s", mail.id, mail.kind, mail.recipient)
        self._announce(mail)

    def _announce(self, mail: OutboxMail) -> None:
        self.hub.publish(["ops"], {"type": "mail_changed", "mail": mail.public()})
