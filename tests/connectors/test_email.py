"""The e-mail connector against a real SMTP server (aiosmtpd on 127.0.0.1): delivery and headers, a Message-ID that
is stable for one idempotency key, 4xx retryable and 5xx permanent, a server that is down, AUTH over a plain
connection with good and bad credentials, and the health check."""

from __future__ import annotations

import asyncio
import email
import email.policy
import socket
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

from opsrail.connectors import ConnectorError, bind
from opsrail.connectors.email import EmailConnector, message_id
from opsrail.engine import CallContext, OperationFailed, Operations
from opsrail.model import InvalidInput

USER, PASSWORD = "opsrail", "s3cret-pass"


@dataclass
class Delivered:
    mail_from: str
    rcpt_tos: list[str]
    message: EmailMessage


@dataclass
class Mailbox:
    """An aiosmtpd handler: collects what it accepts; answers DATA with ``data_reply``, RCPT with ``rcpt_replies``."""

    data_reply: str = "250 2.0.0 Message accepted"
    rcpt_replies: dict[str, str] = field(default_factory=dict)
    delivered: list[Delivered] = field(default_factory=list)

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, rcpt_options: list[str]
    ) -> str:
        reply = self.rcpt_replies.get(address, "250 2.1.5 OK")
        if reply.startswith("250"):
            envelope.rcpt_tos.append(address)
        return reply

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        if self.data_reply.startswith("250"):
            content = envelope.original_content or b""
            parsed = email.message_from_bytes(content, policy=email.policy.default)
            assert isinstance(parsed, EmailMessage)
            self.delivered.append(Delivered(str(envelope.mail_from), list(envelope.rcpt_tos), parsed))
        return self.data_reply


class BoundController(Controller):
    """An aiosmtpd controller serving on a socket bound beforehand: the port is ours before the server starts."""

    def __init__(self, handler: Mailbox, sock: socket.socket, **kwargs: Any) -> None:
        self.sock = sock
        super().__init__(handler, hostname="127.0.0.1", port=sock.getsockname()[1], server_hostname="mx.test", **kwargs)

    def _create_server(self) -> Any:
        return self.loop.create_server(self._factory_invoker, sock=self.sock, ssl=self.ssl_context)


def authenticate(server: SMTP, session: Session, envelope: Envelope, mechanism: str, auth_data: Any) -> AuthResult:
    good = isinstance(auth_data, LoginPassword) and (auth_data.login, auth_data.password) == (
        USER.encode(),
        PASSWORD.encode(),
    )
    return AuthResult(success=good, handled=False)  # not handled: the server answers 535 itself


Serve = Callable[..., int]


@pytest.fixture
def smtp_server() -> Iterator[Serve]:
    """``smtp_server(mailbox, auth=False)`` starts an SMTP server on a free port and returns the port."""
    with ExitStack() as stack:

        def start(mailbox: Mailbox, *, auth: bool = False) -> int:
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind(("127.0.0.1", 0))
            options: dict[str, Any] = {}
            if auth:
                options = {"authenticator": authenticate, "auth_required": True, "auth_require_tls": False}
            controller = BoundController(mailbox, sock, **options)
            controller.start()
            stack.callback(controller.stop)
            return int(sock.getsockname()[1])

        yield start


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def connector(port: int, **config: Any) -> EmailConnector:
    settings = {
        "host": "127.0.0.1",
        "port": port,
        "starttls": False,
        "from_address": "Opsrail <ops@opsrail.example>",
        "timeout_s": 5,
        "local_hostname": "opsrail.test",
        **config,
    }
    return EmailConnector(settings)


def send(mailer: EmailConnector, params: dict[str, Any], key: str = "run-1:mail") -> Any:
    operations = Operations()
    bind(operations, mailer)
    run_id, _, step = key.partition(":")
    return asyncio.run(operations.call("action", "email.send", params, CallContext(run_id, step, 1, key)))


MAIL = {"to": ["Finance <finance@acme.example>"], "subject": "Invoice INV-7 on hold", "text": "Provisioning slipped."}


def test_a_message_is_delivered_with_its_headers_and_a_message_id_stable_for_the_key(smtp_server: Serve) -> None:
    mailbox = Mailbox()
    mailer = connector(smtp_server(mailbox))
    params = {
        **MAIL,
        "to": ["Finance <finance@acme.example>", "ar@acme.example"],
        "cc": ['"Doe, Jane" <jane@acme.example>'],
        "reply_to": "support@opsrail.example",
        "html": "<p>Provisioning <b>slipped</b>.</p>",
    }
    result = send(mailer, params)
    assert result == {"message_id": message_id("run-1:mail"), "refused": {}}
    assert result["message_id"].endswith("@opsrail>") and len(result["message_id"]) == len("<@opsrail>") + 32

    [delivered] = mailbox.delivered
    assert delivered.mail_from == "ops@opsrail.example"
    assert delivered.rcpt_tos == ["finance@acme.example", "ar@acme.example", "jane@acme.example"]
    message = delivered.message
    assert message["From"] == "Opsrail <ops@opsrail.example>"
    assert message["To"] == "Finance <finance@acme.example>, ar@acme.example"
    assert message["Cc"] == '"Doe, Jane" <jane@acme.example>'
    assert message["Reply-To"] == "support@opsrail.example"
    assert message["Subject"] == "Invoice INV-7 on hold"
    assert message["Message-ID"] == result["message_id"] and message["Auto-Submitted"] == "auto-generated"
    assert message["Date"]
    text = message.get_body(preferencelist=("plain",))
    html = message.get_body(preferencelist=("html",))
    assert text is not None and text.get_content().strip() == "Provisioning slipped."
    assert html is not None and "<b>slipped</b>" in html.get_content()

    again = send(mailer, params)  # the step retried: the same mail, the same Message-ID
    other = send(mailer, params, key="run-2:mail")
    assert again["message_id"] == result["message_id"] != other["message_id"]
    assert [d.message["Message-ID"] for d in mailbox.delivered] == [result["message_id"]] * 2 + [other["message_id"]]


@pytest.mark.parametrize(
    ("reply", "retryable"),
    [("550 5.7.1 Message rejected as spam", False), ("451 4.3.0 Try again later", True)],
)
def test_data_refused_with_5xx_is_permanent_and_with_4xx_retryable(
    smtp_server: Serve, reply: str, retryable: bool
) -> None:
    mailbox = Mailbox(data_reply=reply)
    with pytest.raises(ConnectorError) as caught:
        send(connector(smtp_server(mailbox)), MAIL)
    code = int(reply[:3])
    assert caught.value.retryable is retryable and caught.value.status == code and caught.value.code == f"smtp_{code}"
    assert reply[4:] in str(caught.value) and mailbox.delivered == []


def test_recipients_refused(smtp_server: Serve) -> None:
    mailbox = Mailbox(rcpt_replies={"nobody@acme.example": "550 5.1.1 No such user", "busy@acme.example": "450 busy"})
    mailer = connector(smtp_server(mailbox))
    partly = send(mailer, {**MAIL, "to": ["finance@acme.example", "nobody@acme.example"]})
    assert partly["refused"] == {"nobody@acme.example": "550 5.1.1 No such user"}
    assert mailbox.delivered[0].rcpt_tos == ["finance@acme.example"]
    with pytest.raises(ConnectorError, match="No such user") as caught:
        send(mailer, {**MAIL, "to": ["nobody@acme.example"]})
    assert not caught.value.retryable and caught.value.code == "recipients_refused"
    with pytest.raises(ConnectorError) as caught:
        send(mailer, {**MAIL, "to": ["busy@acme.example", "nobody@acme.example"]})
    assert caught.value.retryable  # one of them may take it later


def test_a_server_that_is_down_is_retryable() -> None:
    mailer = connector(free_port())
    with pytest.raises(ConnectorError) as caught:
        send(mailer, MAIL)
    assert caught.value.retryable and caught.value.code == "connection"
    health = asyncio.run(mailer.check())
    assert not health["ok"] and "connection failed" in health["detail"]


@pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS:UserWarning")  # on purpose, locally
def test_login_over_a_plain_connection(smtp_server: Serve, tmp_path: Path) -> None:
    mailbox = Mailbox()
    port = smtp_server(mailbox, auth=True)
    secret_file = tmp_path / "smtp-password"
    secret_file.write_text(PASSWORD + "\n")
    good = connector(port, username=USER, password_file=str(secret_file))
    assert send(good, MAIL)["message_id"] == message_id("run-1:mail") and len(mailbox.delivered) == 1
    health = asyncio.run(good.check())
    assert health == {"ok": True, "detail": f"127.0.0.1:{port}: plain, EHLO, login as {USER} ok"}

    bad = connector(port, username=USER, password="wrong")
    with pytest.raises(ConnectorError) as caught:
        send(bad, MAIL)
    assert not caught.value.retryable and caught.value.status == 535
    assert not asyncio.run(bad.check())["ok"]

    anonymous = connector(port)  # the server requires AUTH before MAIL
    with pytest.raises(ConnectorError) as caught:
        send(anonymous, MAIL)
    assert not caught.value.retryable and caught.value.status == 530
    assert len(mailbox.delivered) == 1


def test_check_connects_says_ehlo_and_quits(smtp_server: Serve) -> None:
    port = smtp_server(Mailbox())
    assert asyncio.run(connector(port).check()) == {"ok": True, "detail": f"127.0.0.1:{port}: plain, EHLO ok"}


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        ({"to": ["not-an-address"]}, "to.0"),
        ({"to": ["a@acme.example, b@acme.example"]}, "to.0"),
        ({"to": []}, "to"),
        ({"cc": ["finance@acme"]}, "cc.0"),
        ({"subject": "Hi\r\nBcc: everyone@acme.example"}, "subject"),
        ({"bcc": ["x@acme.example"]}, "bcc"),
    ],
)
def test_invalid_input_is_refused_before_connecting(change: dict[str, Any], problem: str) -> None:
    with pytest.raises(OperationFailed, match=f"invalid input: {problem}") as caught:
        send(connector(free_port()), {**MAIL, **change})
    assert not caught.value.retryable


def test_settings() -> None:
    assert EmailConnector({"host": "smtp.example.com", "from_address": "ops@example.com"}).starttls
    local = EmailConnector({"host": "localhost", "port": 1025, "from_address": "ops@example.com"})
    assert not local.starttls and not local.tls
    implicit = EmailConnector({"host": "smtp.example.com", "port": 465, "from_address": "ops@example.com"})
    assert implicit.tls and not implicit.starttls
    with pytest.raises(InvalidInput, match="no SMTP host"):
        EmailConnector({"from_address": "ops@example.com"})
    with pytest.raises(InvalidInput, match="from_address"):
        EmailConnector({"host": "smtp.example.com", "from_address": "ops"})
    with pytest.raises(InvalidInput, match="both username and password"):
        EmailConnector({"host": "smtp.example.com", "from_address": "ops@example.com", "username": "ops"})
