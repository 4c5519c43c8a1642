"""Notification e-mail through the configured SMTP server, sent off the event loop."""

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
    """Sends notification e-mail through the configured SMTP server, off the event loop."""

    def __init__(self, config: Config):
        self.host = config.mail_smtp_host
        self.port = config.mail_smtp_port
        self.security = config.mail_smtp_security
        self.username = config.mail_smtp_username
        self.password = config.mail_smtp_password
        self.from_address = config.mail_from_address
        self.to_address = config.mail_to_address

    @property
    def enabled(self) -> bool:
        return bool(self.host and self.to_address)

    #: The only headers a notification may have; anything else means an injection attempt.
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

    def offline_message(
        self, *, name: str, email_address: str, text: str, page_url: str, base_url: str
    ) -> email.message.EmailMessage:
        """The notification for an offline message; raises ApiError if it cannot be made safe.

        Visitors control the name and address. The validator refuses control characters, and
        the email package would decode an RFC 2047 encoded word (``=?utf-8?q?=0D=0A...?=``)
        back into a line break on output, so encoded-word openers are broken up here, and the
        finished header block is checked to hold exactly the headers written.
        """
        shown_name = name.replace("=?", "=\u200b?")
        m = email.message.EmailMessage()
        m["Subject"] = f"Offline message from {shown_name}"
        m["From"] = self.from_address or f"cutelive@{socket.gethostname()}"
        m["To"] = self.to_address
        try:
            m["Reply-To"] = email.headerregistry.Address(
                display_name=shown_name, addr_spec=email_address
            )
        except (ValueError, IndexError, email.errors.HeaderParseError):
            raise ApiError(
                "invalid_field", "'email' cannot be used as a reply address", field="email"
            ) from None
        m["Date"] = email.utils.formatdate(localtime=True)
        m["Message-ID"] = email.utils.make_msgid(domain="cutelive")
        lines = [
            f"Name: {name}",
            f"E-mail: {email_address}",
            f"Page: {page_url or '-'}",
            "",
            text,
            "",
            f"-- \nCute Live Support, {base_url}/console/",
        ]
        m.set_content("\n".join(lines))
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
        return m

    def send(self, m: email.message.EmailMessage) -> None:
        if self.security == "tls":
            smtp = smtplib.SMTP_SSL(self.host, self.port, timeout=20)
        else:
            smtp = smtplib.SMTP(self.host, self.port, timeout=20)
        try:
            if self.security == "starttls":
                smtp.starttls(context=ssl.create_default_context())
            if self.username:
                smtp.login(self.username, self.password)
            smtp.send_message(m)
        finally:
            try:
                smtp.quit()
            except smtplib.SMTPException:
                pass
