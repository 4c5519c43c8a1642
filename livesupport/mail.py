"""E-mail: the messages the server writes (safe headers whatever a visitor typed), and their
delivery to the configured SMTP server. What to send when is the outbox's (``outbox``)."""

from __future__ import annotations

import email.errors
import email.headerregistry
import email.message
import email.policy
import email.utils
import smtplib
import socket
import ssl

from .config import Config
from .protocol import ApiError


class Mailer:
    """Writes e-mail and hands it to the configured SMTP server (a blocking call)."""

    def __init__(self, config: Config):
        self.host = config.mail_smtp_host
        self.port = config.mail_smtp_port
        self.security = config.mail_smtp_security
        self.username = config.mail_smtp_username
        self.password = config.mail_smtp_password
        self.from_address = config.mail_from_address
        self.to_address = config.mail_to_address
        #: ``[mail]`` is configured (``Config.mail_enabled``): only then is mail written.
        self.enabled = config.mail_enabled

    #: The only headers our mail may have; anything else means an injection attempt.
    HEADERS = {
        b"subject",
        b"from",
        b"to",
        b"reply-to",
        b"date",
        b"message-id",
        b"content-type",
        b"content-transfer-encoding",
        b"mime-version",
    }

    @property
    def sender(self) -> str:
        """The From address, and the envelope sender."""
        return self.from_address or f"cutelive@{socket.gethostname()}"

    def offline_message(
        self,
        *,
        name: str,
        email_address: str,
        text: str,
        page_url: str,
        base_url: str,
        department: str = "",
        to: str = "",
    ) -> email.message.EmailMessage:
        """The notification for an offline message; raises ApiError if it cannot be made safe.

        Visitors control the name and address. The validator refuses control characters, and
        the email package would decode an RFC 2047 encoded word (``=?utf-8?q?=0D=0A...?=``)
        back into a line break on output, so encoded-word openers are broken up here, and the
        finished header block is checked to hold exactly the headers written.
        """
        shown_name = _no_encoded_words(name)
        m = email.message.EmailMessage()
        m["Subject"] = f"Offline message from {shown_name}"
        m["From"] = self.sender
        m["To"] = to or self.to_address
        m["Reply-To"] = _address(shown_name, email_address)
        m["Date"] = email.utils.formatdate(localtime=True)
        m["Message-ID"] = email.utils.make_msgid(domain="cutelive")
        lines = [
            f"Name: {name}",
            f"E-mail: {email_address}",
            f"Page: {page_url or '-'}",
            *([f"Department: {department}"] if department else []),
            "",
            text,
            "",
            f"-- \nCute Live Support, {base_url}/console/",
        ]
        m.set_content("\n".join(lines))
        self._check_headers(m)
        return m

    def reply(
        self,
        *,
        name: str,
        email_address: str,
        text: str,
        signature: str,
        original: str,
        written_at: int,
    ) -> email.message.EmailMessage:
        """An operator's answer to an offline message, to the visitor: From ``from_address``,
        Reply-To ``to_address`` (where the visitor's answer should go), signed with the
        operator's name, the visitor's message (written at ``written_at``, ms) quoted below.
        Checked as ``offline_message`` is."""
        first_line = next((line.strip() for line in original.splitlines() if line.strip()), "")
        topic = first_line if len(first_line) <= 60 else first_line[:59].rstrip() + "\u2026"
        m = email.message.EmailMessage()
        m["Subject"] = _no_encoded_words(f"Re: {topic or 'your message'}")
        m["From"] = self.sender
        m["To"] = _address(_no_encoded_words(name), email_address)
        m["Reply-To"] = self.to_address
        m["Date"] = email.utils.formatdate(localtime=True)
        m["Message-ID"] = email.utils.make_msgid(domain="cutelive")
        quoted = "\n".join("> " + line if line else ">" for line in original.splitlines())
        when = email.utils.formatdate(written_at / 1000, localtime=True)
        signed = f"{text}\n\n{signature}" if signature else text
        m.set_content(f"{signed}\n\nOn {when}, {name} wrote:\n{quoted}\n")
        self._check_headers(m)
        return m

    def to_visitor(
        self, *, email_address: str, subject: str, body: str, base_url: str
    ) -> email.message.EmailMessage:
        """A message to a visitor (a reply to a conversation, its transcript): From
        ``from_address``, Reply-To ``to_address``; whatever a visitor or an operator wrote is in
        the body, and the subject's encoded-word openers are broken up. Checked as
        ``offline_message`` is."""
        m = email.message.EmailMessage()
        m["Subject"] = _no_encoded_words(subject)
        m["From"] = self.sender
        m["To"] = _address("", email_address)
        m["Reply-To"] = self.to_address
        m["Date"] = email.utils.formatdate(localtime=True)
        m["Message-ID"] = email.utils.make_msgid(domain="cutelive")
        m.set_content(f"{body}\n\n-- \n{base_url}\n")
        self._check_headers(m)
        return m

    def _check_headers(self, m: email.message.EmailMessage) -> None:
        """The header block holds exactly the headers written, each once."""
        try:
            head = m.as_bytes(policy=email.policy.SMTP).split(b"\r\n\r\n", 1)[0]
        except (ValueError, UnicodeError, email.errors.MessageError):
            head = b"?"
        names = [
            line.split(b":", 1)[0].strip().lower()
            for line in head.split(b"\r\n")
            if line and not line[:1].isspace()
        ]
        if len(names) != len(set(names)) or not set(names) <= self.HEADERS:
            raise ApiError(
                "invalid_field",
                "the name or e-mail address cannot be put in an e-mail",
                field="name",
            )

    def deliver(self, recipient: str, message: bytes) -> None:
        """Hand a finished message to the SMTP server (blocking: run it off the loop).
        Returns when the server accepted it; raises what went wrong otherwise."""
        recipients = [addr for _name, addr in email.utils.getaddresses([recipient]) if addr]
        if self.security == "tls":
            smtp = smtplib.SMTP_SSL(self.host, self.port, timeout=20)
        else:
            smtp = smtplib.SMTP(self.host, self.port, timeout=20)
        try:
            if self.security == "starttls":
                smtp.starttls(context=ssl.create_default_context())
            if self.username:
                smtp.login(self.username, self.password)
            smtp.sendmail(self.sender, recipients, message)
        finally:
            try:
                smtp.quit()
            except (smtplib.SMTPException, OSError):
                pass


def message_bytes(m: email.message.EmailMessage) -> bytes:
    """A message as it is stored in the outbox and sent: CRLF lines, headers folded."""
    return m.as_bytes(policy=email.policy.SMTP)


def refused_for_good(exc: BaseException) -> bool:
    """Whether the SMTP server refused the message itself (5xx for every recipient, or for
    its content): trying again would be refused again. Anything else (no connection,
    a timeout, 4xx, a login problem an administrator can fix) is worth another try."""
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        codes = [code for code, _text in exc.recipients.values()]
        return bool(codes) and all(code >= 500 for code in codes)
    return isinstance(exc, smtplib.SMTPDataError) and exc.smtp_code >= 500


def failure_text(exc: BaseException) -> str:
    """What went wrong, in one line for the console."""
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        code, text = next(iter(exc.recipients.values()), (0, b""))
        detail = f"recipient refused: {code} {_text(text)}"
    elif isinstance(exc, smtplib.SMTPResponseException):
        detail = f"{exc.smtp_code} {_text(exc.smtp_error)}"
    elif isinstance(exc, TimeoutError):
        detail = "the SMTP server did not answer in time"
    elif isinstance(exc, OSError) and exc.strerror:
        detail = f"cannot reach the SMTP server: {exc.strerror.lower()}"
    else:
        detail = str(exc) or type(exc).__name__
    return " ".join(detail.split())[:300]


def _text(value: bytes | str) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def _no_encoded_words(text: str) -> str:
    """Break up RFC 2047 encoded-word openers (see ``Mailer.offline_message``)."""
    return text.replace("=?", "=\u200b?")


def _address(name: str, addr_spec: str) -> email.headerregistry.Address:
    try:
        return email.headerregistry.Address(display_name=name, addr_spec=addr_spec)
    except (ValueError, IndexError, email.errors.HeaderParseError):
        raise ApiError(
            "invalid_field", "'email' cannot be used as a reply address", field="email"
        ) from None
