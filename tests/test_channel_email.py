"""The e-mail channel against a real SMTP server (aiosmtpd) on the loopback interface."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from datetime import UTC, datetime
from email import message_from_bytes
from email.message import EmailMessage
from email.policy import default
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP as Server
from aiosmtpd.smtp import AuthResult, Envelope, LoginPassword, Session

from playbook.channels.email import EmailChannel, html_document
from playbook.delivery import Delivery, plain_text
from playbook.errors import SendFailed
from playbook.render import EXERCISE_BANNER

HOST = "127.0.0.1"
SENDER = "City comms <comms@city.example>"


def delivery(**changes: Any) -> Delivery:
    """A delivery to one mailbox, changed as a test needs."""
    base = Delivery(
        key="inc-1/brief/0/amina/en/email", incident_id="inc-1", exercise=False,
        step_id="brief", number=0, recipient_id="amina", recipient_name="Amina",
        lang="en", channel="email", address="amina@example.org",
        subject="Briefing: incident at Market Square",
        text="<b>Briefing</b>\nGraffiti at <a href=\"https://city.example/i\">the mosque</a>.",
        created_at=datetime(2025, 3, 1, 9, 30, tzinfo=UTC))
    return replace(base, **changes)


def free_port() -> int:
    """A port that nothing listens on (just now)."""
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


class Recorder:
    """Accepts every message and keeps its envelope."""

    def __init__(self) -> None:
        self.envelopes: list[Envelope] = []

    async def handle_DATA(self, server: Server, session: Session, envelope: Envelope) -> str:
        self.envelopes.append(envelope)
        return "250 OK"

    def only(self) -> EmailMessage:
        """The one message received, parsed."""
        assert len(self.envelopes) == 1
        content = self.envelopes[0].original_content
        assert isinstance(content, bytes)
        msg = message_from_bytes(content, policy=default)
        assert isinstance(msg, EmailMessage)
        return msg


class RefuseRecipient(Recorder):
    """Answers RCPT TO with a fixed reply."""

    def __init__(self, reply: str) -> None:
        super().__init__()
        self.reply = reply

    async def handle_RCPT(self, server: Server, session: Session, envelope: Envelope,
                          address: str, rcpt_options: list[str]) -> str:
        return self.reply


class RefuseSender(RefuseRecipient):
    """Answers MAIL FROM with a fixed reply."""

    async def handle_MAIL(self, server: Server, session: Session, envelope: Envelope,
                          address: str, mail_options: list[str]) -> str:
        return self.reply


class RefuseMessage(RefuseRecipient):
    """Accepts the recipient, then answers the message's end of data with a fixed reply."""

    async def handle_RCPT(self, server: Server, session: Session, envelope: Envelope,
                          address: str, rcpt_options: list[str]) -> str:
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Server, session: Session, envelope: Envelope) -> str:
        return self.reply


class Slow(Recorder):
    """Stalls in one phase (RCPT or DATA) longer than the client waits."""

    def __init__(self, phase: str) -> None:
        super().__init__()
        self.phase = phase

    async def handle_RCPT(self, server: Server, session: Session, envelope: Envelope,
                          address: str, rcpt_options: list[str]) -> str:
        if self.phase == "RCPT":
            await asyncio.sleep(2)
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Server, session: Session, envelope: Envelope) -> str:
        if self.phase == "DATA":
            await asyncio.sleep(2)
        return await super().handle_DATA(server, session, envelope)


def text_of(msg: EmailMessage, subtype: str) -> str:
    """The decoded text of one part, with the CRLF line ends of MIME text turned into LF."""
    part = msg.get_body((subtype,))
    assert isinstance(part, EmailMessage)
    content: str = part.get_content()
    return content.replace("\r\n", "\n")


@contextmanager
def smtp_server(handler: object, **kwargs: Any) -> Iterator[int]:
    """Run an SMTP server with `handler` on a loopback port; yield the port."""
    controller = Controller(handler, hostname=HOST, port=free_port(), **kwargs)
    controller.start()
    try:
        yield controller.port
    finally:
        controller.stop()


def send(channel: EmailChannel, item: Delivery) -> str:
    """Send one delivery and return the receipt."""
    async def run() -> str:
        try:
            return await channel.send(item)
        finally:
            await channel.aclose()
    return asyncio.run(run())


def failure(channel: EmailChannel, item: Delivery) -> SendFailed:
    """Send one delivery that must fail, and return the failure."""
    with pytest.raises(SendFailed) as caught:
        send(channel, item)
    return caught.value


def test_sends_plain_and_html_alternatives_with_headers() -> None:
    """One multipart/alternative message: plain text, HTML, the channel's headers."""
    recorder = Recorder()
    with smtp_server(recorder) as port:
        receipt = send(EmailChannel(HOST, port, SENDER), delivery())
    msg = recorder.only()
    assert recorder.envelopes[0].mail_from == "comms@city.example"
    assert recorder.envelopes[0].rcpt_tos == ["amina@example.org"]
    assert msg.get_content_type() == "multipart/alternative"
    assert text_of(msg, "plain").strip() == plain_text(delivery().text)
    assert "(https://city.example/i)" in text_of(msg, "plain")
    assert "<b>Briefing</b><br>" in text_of(msg, "html")
    assert msg["Subject"] == "Briefing: incident at Market Square"
    assert msg["Content-Language"] == "en"
    assert msg["X-Playbook-Incident"] == "inc-1"
    assert msg["To"] == "amina@example.org"
    assert receipt == msg["Message-ID"]


def test_arabic_body_is_intact_and_right_to_left() -> None:
    """An Arabic message arrives unchanged in both parts, its HTML body marked lang=ar dir=rtl."""
    text = "\u200fتحديث: <b>الوضع</b> في ساحة السوق\n\u200fاتصلوا على ١١٢"
    recorder = Recorder()
    with smtp_server(recorder) as port:
        send(EmailChannel(HOST, port, SENDER),
             delivery(lang="ar", text=text, subject="تحديث عاجل"))
    msg = recorder.only()
    assert text_of(msg, "plain").strip() == plain_text(text)
    assert '<body lang="ar" dir="rtl">' in text_of(msg, "html")
    assert "<b>الوضع</b> في ساحة السوق<br>" in text_of(msg, "html")
    assert msg["Subject"] == "تحديث عاجل"
    assert msg["Content-Language"] == "ar"


def test_exercise_subject_carries_the_localized_banner() -> None:
    """In an exercise the subject starts with the banner in the recipient's language."""
    recorder = Recorder()
    with smtp_server(recorder) as port:
        send(EmailChannel(HOST, port, SENDER),
             delivery(exercise=True, lang="es", subject="Actualización"))
    subject = recorder.only()["Subject"]
    assert subject == f"[{EXERCISE_BANNER['es']}] Actualización"


def test_actual_subject_has_no_banner() -> None:
    """Outside an exercise the subject is the delivery's subject, on one line."""
    channel = EmailChannel(HOST, 25, SENDER)
    msg = channel.message(delivery(subject="Update\nnumber 2"))
    assert msg["Subject"] == "Update number 2"


def test_message_id_is_stable_for_a_delivery() -> None:
    """Two sends of the same delivery carry the same Message-ID; another delivery another one."""
    recorder = Recorder()
    with smtp_server(recorder) as port:
        channel = EmailChannel(HOST, port, SENDER)
        first = send(channel, delivery())
        second = send(channel, delivery())
        other = send(channel, delivery(key="inc-1/brief/1/amina/en/email"))
    ids = [message_from_bytes(e.original_content or b"", policy=default)["Message-ID"]
           for e in recorder.envelopes]
    assert first == second == ids[0] == ids[1]
    assert other == ids[2] != first
    assert first.endswith("@city.example>")


def test_pre_blocks_keep_their_own_line_breaks() -> None:
    """Newlines become <br> in running text but not inside <pre>."""
    document = html_document("a\n<pre>x\ny</pre>\nb", "en", "s")
    assert "a<br>\n<pre>x\ny</pre><br>\nb" in document
    assert '<body lang="en" dir="ltr">' in document


def test_mailbox_refused_permanently_is_gone() -> None:
    """A 550 for the recipient: not retryable, the address is gone."""
    with smtp_server(RefuseRecipient("550 5.1.1 No such mailbox")) as port:
        error = failure(EmailChannel(HOST, port, SENDER), delivery())
    assert (error.retryable, error.gone, error.outcome_unknown) == (False, True, False)
    assert "550" in error.reason


def test_relay_refused_is_a_configuration_problem_not_a_gone_mailbox() -> None:
    """A 5.7.x policy refusal (relay denied) is not retryable and does not mark the address gone."""
    with smtp_server(RefuseRecipient("554 5.7.1 Relay access denied")) as port:
        error = failure(EmailChannel(HOST, port, SENDER), delivery())
    assert (error.retryable, error.gone) == (False, False)
    assert "relays" in error.reason


def test_mailbox_refused_temporarily_is_retryable() -> None:
    """A 451 for the recipient: retry later, the address stays."""
    with smtp_server(RefuseRecipient("451 4.2.0 Mailbox busy")) as port:
        error = failure(EmailChannel(HOST, port, SENDER), delivery())
    assert (error.retryable, error.gone, error.outcome_unknown) == (True, False, False)


@pytest.mark.parametrize(("handler", "retryable"), [
    (RefuseSender("553 5.1.8 Sender address rejected"), False),
    (RefuseSender("421 4.3.2 Try again later"), True),
    (RefuseMessage("554 5.6.0 Message content rejected"), False),
    (RefuseMessage("452 4.3.1 Insufficient storage"), True),
])
def test_sender_and_message_refusals_follow_the_reply_class(
        handler: Recorder, retryable: bool) -> None:
    """Refusing the sender or the message: 4xx retryable, 5xx not; the mailbox is never gone."""
    with smtp_server(handler) as port:
        error = failure(EmailChannel(HOST, port, SENDER), delivery())
    assert (error.retryable, error.gone, error.outcome_unknown) == (retryable, False, False)


def test_nothing_listening_is_retryable() -> None:
    """A refused connection is retryable and nothing was sent."""
    error = failure(EmailChannel(HOST, free_port(), SENDER, timeout=2), delivery())
    assert (error.retryable, error.gone, error.outcome_unknown) == (True, False, False)


def test_timeout_after_data_is_an_unknown_outcome() -> None:
    """A server that stalls after DATA may have the message: retryable, outcome unknown."""
    with smtp_server(Slow("DATA")) as port:
        error = failure(EmailChannel(HOST, port, SENDER, timeout=0.2), delivery())
    assert (error.retryable, error.outcome_unknown) == (True, True)


def test_timeout_before_data_is_a_known_outcome() -> None:
    """A server that stalls before DATA cannot have the message: retryable, outcome known."""
    with smtp_server(Slow("RCPT")) as port:
        error = failure(EmailChannel(HOST, port, SENDER, timeout=0.2), delivery())
    assert (error.retryable, error.outcome_unknown) == (True, False)


def test_bad_login_is_a_configuration_problem_without_the_password() -> None:
    """A refused login is not retryable, says what to check, and never shows the password."""
    def authenticator(server: Server, session: Session, envelope: Envelope,
                      mechanism: str, auth_data: object) -> AuthResult:
        ok = isinstance(auth_data, LoginPassword) and auth_data.password == b"right"
        return AuthResult(success=ok, handled=False)  # handled=False: the server answers 535

    recorder = Recorder()
    with smtp_server(recorder, authenticator=authenticator, auth_require_tls=False) as port:
        error = failure(EmailChannel(HOST, port, SENDER, username="comms",
                                     password="hunter2-wrong"), delivery())
        receipt = send(EmailChannel(HOST, port, SENDER, username="comms", password="right"),
                       delivery())
    assert (error.retryable, error.gone) == (False, False)
    assert "username and password" in error.reason
    assert "hunter2" not in error.reason
    assert "hunter2" not in repr(error)
    assert receipt == recorder.only()["Message-ID"]


def test_starttls_refused_by_server_is_a_configuration_problem() -> None:
    """Asking for STARTTLS from a server that does not offer it is not retryable."""
    with smtp_server(Recorder()) as port:
        error = failure(EmailChannel(HOST, port, SENDER, starttls=True), delivery())
    assert error.retryable is False
    assert "starttls" in error.reason


@pytest.mark.parametrize("address", ["a@example.org, b@example.org",
                                     "a@example.org\r\nBcc: b@example.org", "not an address"])
def test_address_must_be_one_mailbox(address: str) -> None:
    """An address that is not exactly one mailbox is refused before anything is sent."""
    recorder = Recorder()
    with smtp_server(recorder) as port:
        error = failure(EmailChannel(HOST, port, SENDER), delivery(address=address))
    assert error.retryable is False
    assert recorder.envelopes == []


def test_repr_hides_the_password() -> None:
    """The channel's repr names the server, never the password."""
    channel = EmailChannel(HOST, 25, SENDER, username="comms", password="s3cret")
    assert "s3cret" not in repr(channel)
    assert "127.0.0.1" in repr(channel)
