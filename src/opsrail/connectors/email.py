"""E-mail over SMTP: one operation, ``email.send``, with a Message-ID derived from the engine's idempotency key.

SMTP has no idempotency key, but mail has a stable identity: the ``Message-ID`` header. The connector derives it
from the step's idempotency key (``<{sha256(key)[:32]}@opsrail>``), so a retried step sends the very same message
and receivers that dedupe on Message-ID (mailing lists, ticketing systems, most mail stores) show it once.

Errors: an SMTP 4xx reply (greylisting, mailbox busy, "try again later"), a refused or dropped connection and a
timeout are retryable; a 5xx reply (no such user, relaying denied, bad credentials) is permanent. The transport is
``aiosmtplib``: STARTTLS on port 587 (required, not opportunistic), implicit TLS on port 465, plain only where asked
(``starttls: false``, and by default on ports 25 and 1025).
"""

from __future__ import annotations

import email.utils
import hashlib
import logging
import re
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from email.headerregistry import Address
from email.message import EmailMessage
from typing import Annotated, Any, Protocol

import aiosmtplib
from pydantic import AfterValidator, Field

from opsrail.connectors._sdk import Connector, ConnectorError, Model, OperationSpec, secret
from opsrail.engine import CallContext
from opsrail.model import InvalidInput

log = logging.getLogger("opsrail.connectors.email")

# An addr-spec in ASCII (no SMTPUTF8): a dot-atom local part and a domain of two or more DNS labels.
_LOCAL = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*"
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_ADDR_SPEC = re.compile(rf"^{_LOCAL}@{_LABEL}(?:\.{_LABEL})+$")


def mailbox(value: str) -> str:
    """One address, ``ops@example.com`` or ``Ops Team <ops@example.com>``, normalised; ``ValueError`` otherwise."""
    value = value.strip()
    if not value or "\r" in value or "\n" in value:
        raise ValueError("not an e-mail address")
    pairs = email.utils.getaddresses([value])
    if len(pairs) != 1:
        raise ValueError(f"{value!r} is not one e-mail address (quote a name holding a comma)")
    name, addr = pairs[0]
    if len(addr) > 254 or not _ADDR_SPEC.match(addr):
        raise ValueError(f"{value!r} is not an e-mail address")
    return str(Address(display_name=name, addr_spec=addr)) if name else addr


def addr_spec(value: str) -> str:
    """The bare address of a validated mailbox, as the SMTP envelope wants it."""
    return email.utils.getaddresses([value])[0][1]


def _one_line(value: str) -> str:
    if "\r" in value or "\n" in value:
        raise ValueError("must be one line")
    return value


def message_id(idempotency_key: str) -> str:
    """The Message-ID of the mail a step sends: the same for every attempt of the step."""
    return f"<{hashlib.sha256(idempotency_key.encode('utf-8')).hexdigest()[:32]}@opsrail>"


Mailbox = Annotated[str, AfterValidator(mailbox)]


class SendEmail(Model):
    to: list[Mailbox] = Field(min_length=1, max_length=100)
    subject: Annotated[str, AfterValidator(_one_line)] = Field(min_length=1, max_length=900)
    text: str = Field(min_length=1, description="the plain-text body")
    html: str | None = Field(default=None, description="an HTML alternative to the text")
    cc: list[Mailbox] = Field(default_factory=list, max_length=100)
    reply_to: Mailbox | None = None


class Sent(Model):
    message_id: str
    refused: dict[str, str] = Field(
        default_factory=dict, description="recipients the server refused while accepting the others: address -> reply"
    )


class Sender(Protocol):
    """How a message leaves: ``aiosmtplib.send`` by default; tests may pass their own."""

    async def __call__(
        self,
        message: EmailMessage,
        /,
        *,
        sender: str,
        recipients: Sequence[str],
        hostname: str,
        port: int,
        username: str | None,
        password: str | None,
        use_tls: bool,
        start_tls: bool,
        timeout: float,
        local_hostname: str | None,
    ) -> tuple[dict[str, aiosmtplib.SMTPResponse], str]: ...


def _flag(value: Any) -> bool:
    if isinstance(value, str):
        return value.strip().lower() in {"1", "true", "yes", "on"}
    return bool(value)


def _reply(code: int, message: str) -> str:
    return f"{code} {' '.join(message.split())}"[:300]


def smtp_error(exc: Exception, what: str) -> ConnectorError:
    """An ``aiosmtplib`` (or socket) failure as a :class:`ConnectorError`: 4xx and lost connections are retryable."""
    if isinstance(exc, aiosmtplib.SMTPRecipientsRefused):
        codes = [r.code for r in exc.recipients]
        replies = "; ".join(f"{r.recipient}: {_reply(r.code, r.message)}" for r in exc.recipients)
        return ConnectorError(
            f"email: {what}: every recipient refused: {replies}",
            retryable=any(code < 500 for code in codes),
            status=max(codes, default=None),
            code="recipients_refused",
        )
    if isinstance(exc, aiosmtplib.SMTPResponseException):
        return ConnectorError(
            f"email: {what}: server answered {_reply(exc.code, exc.message)}",
            retryable=exc.code < 500,
            status=exc.code,
            code=f"smtp_{exc.code}",
        )
    if isinstance(exc, TimeoutError):
        return ConnectorError(f"email: {what}: timed out: {exc}", retryable=True, code="timeout")
    if isinstance(exc, OSError):  # refused, reset or dropped connections (aiosmtplib's are ConnectionErrors)
        return ConnectorError(f"email: {what}: connection failed: {exc}", retryable=True, code="connection")
    # SMTPNotSupported, no AUTH offered, an address the server cannot take: sending again will not help.
    return ConnectorError(f"email: {what}: {exc}", retryable=False, code="smtp")


class EmailConnector(Connector):
    """Settings: ``host`` (required), ``port`` (587), ``username``, ``password`` or ``password_file``, ``starttls``
    (true unless port 25 or 1025), ``tls`` (implicit TLS; true on port 465), ``from_address`` (required),
    ``timeout_s`` (30), ``local_hostname`` (the name given in EHLO; default this host's FQDN)."""

    name = "email"
    summary = "E-mail over SMTP, one Message-ID per step so a retried step is the same mail"

    def __init__(self, config: Mapping[str, Any], *, sender: Sender | None = None) -> None:
        self.host = str(config.get("host") or "")
        if not self.host:
            raise InvalidInput("email: no SMTP host", hint="set host (and port, default 587)")
        try:
            self.port = int(config.get("port") or 587)
            self.timeout_s = float(config.get("timeout_s") or 30.0)
        except (TypeError, ValueError):
            raise InvalidInput("email: port and timeout_s must be numbers") from None
        self.tls = _flag(config.get("tls", self.port == 465))
        self.starttls = _flag(config.get("starttls", not self.tls and self.port not in (25, 1025)))
        if self.tls and self.starttls:
            raise InvalidInput("email: tls and starttls exclude each other", hint="tls for port 465, starttls for 587")
        self.username = str(config.get("username") or "") or None
        self.password = secret(config, "password", self.name)
        if bool(self.username) != bool(self.password):
            raise InvalidInput("email: give both username and password (or password_file), or neither")
        try:
            self.from_address = mailbox(str(config.get("from_address") or ""))
        except ValueError:
            raise InvalidInput(
                "email: from_address must be an e-mail address", hint="e.g. Opsrail <ops@example.com>"
            ) from None
        self.local_hostname = str(config.get("local_hostname") or "") or None
        self.sender: Sender = sender or aiosmtplib.send

    def operations(self) -> list[OperationSpec]:
        async def send(a: SendEmail, call: CallContext) -> Sent:
            return await self.send(a, call.idempotency_key)

        return [OperationSpec("send", "send an e-mail (text, optional HTML alternative)", SendEmail, Sent, send)]

    def compose(self, mail: SendEmail, idempotency_key: str) -> EmailMessage:
        message = EmailMessage()
        message["From"] = self.from_address
        message["To"] = ", ".join(mail.to)
        if mail.cc:
            message["Cc"] = ", ".join(mail.cc)
        if mail.reply_to:
            message["Reply-To"] = mail.reply_to
        message["Subject"] = mail.subject
        message["Date"] = email.utils.format_datetime(datetime.now(UTC))
        message["Message-ID"] = message_id(idempotency_key)
        message["Auto-Submitted"] = "auto-generated"  # RFC 3834: no vacation auto-replies to a robot
        message.set_content(mail.text)
        if mail.html is not None:
            message.add_alternative(mail.html, subtype="html")
        return message

    async def send(self, mail: SendEmail, idempotency_key: str) -> Sent:
        message = self.compose(mail, idempotency_key)
        recipients = list(dict.fromkeys(addr_spec(a) for a in [*mail.to, *mail.cc]))
        try:
            refused, _reply_text = await self.sender(
                message,
                sender=addr_spec(self.from_address),
                recipients=recipients,
                hostname=self.host,
                port=self.port,
                username=self.username,
                password=self.password,
                use_tls=self.tls,
                start_tls=self.starttls,
                timeout=self.timeout_s,
                local_hostname=self.local_hostname,
            )
        except (aiosmtplib.SMTPException, OSError, ValueError) as exc:
            raise smtp_error(exc, f"sending to {self.host}:{self.port}") from None
        sent = Sent(
            message_id=str(message["Message-ID"]),
            refused={address: _reply(reply.code, reply.message) for address, reply in refused.items()},
        )
        if sent.refused:
            log.warning(
                "email: %s accepted for some recipients only; refused: %s",
                sent.message_id,
                sent.refused,
                extra={"connector": self.name},
            )
        return sent

    async def check(self) -> dict[str, Any]:
        """Connect, EHLO (after STARTTLS when configured), log in when configured, QUIT."""
        client = aiosmtplib.SMTP(
            hostname=self.host,
            port=self.port,
            use_tls=self.tls,
            start_tls=self.starttls,
            timeout=self.timeout_s,
            local_hostname=self.local_hostname,
        )
        where = f"{self.host}:{self.port}"
        try:
            await client.connect()
            await client.ehlo()
            steps = ["TLS" if self.tls else "STARTTLS" if self.starttls else "plain", "EHLO"]
            if self.username and self.password:
                await client.login(self.username, self.password)
                steps.append(f"login as {self.username}")
            await client.quit()
        except (aiosmtplib.SMTPException, OSError, ValueError) as exc:
            return {"ok": False, "detail": str(smtp_error(exc, f"checking {where}"))}
        finally:
            if client.is_connected:
                client.close()
        return {"ok": True, "detail": f"{where}: {', '.join(steps)} ok"}
