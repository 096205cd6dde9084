"""The e-mail channel: one multipart message (plain text and HTML) per delivery, over SMTP.

smtplib blocks, so each send runs in a worker thread with its own short-lived connection; a crisis
sends few e-mails and a fresh connection cannot be left half-broken by the previous one. The
Message-ID is derived from the delivery's idempotency key, so a message that is sent twice (a
retry after an unknown outcome) carries the same id and mail clients and servers can fold the
duplicate.
"""

from __future__ import annotations

import asyncio
import hashlib
import html
import re
import smtplib
import ssl
from email.message import EmailMessage
from email.policy import SMTP as SMTP_POLICY
from email.utils import format_datetime, formatdate, getaddresses, parseaddr

from playbook.delivery import Delivery, Limits, plain_text
from playbook.errors import SendFailed
from playbook.phrases import with_ack_request
from playbook.render import exercise_banner, is_rtl

# Base64 or quoted-printable bodies pass every relay, even one without 8BITMIME.
_POLICY = SMTP_POLICY.clone(cte_type="7bit")
_POLICY_STATUS = re.compile(r"5\.7\.\d{1,3}\b")
_PRE = re.compile(r"(<pre\b.*?</pre>)", re.DOTALL | re.IGNORECASE)


def message_id(key: str, sender: str) -> str:
    """The Message-ID for a delivery key: the same key always gives the same id."""
    digest = hashlib.sha256(key.encode("utf-8")).hexdigest()[:40]
    address = parseaddr(sender)[1]
    domain = address.rpartition("@")[2] if "@" in address else "playbook.invalid"
    return f"<{digest}.playbook@{domain}>"


def html_document(text: str, lang: str, subject: str) -> str:
    """A whole HTML document around Telegram HTML: newlines as `<br>`, language and direction."""
    # Lines inside <pre> keep their own breaks; everywhere else HTML would collapse them.
    parts = _PRE.split(text)
    body = "".join(part if i % 2 else part.replace("\n", "<br>\n") for i, part in enumerate(parts))
    lang_attr = html.escape(lang, quote=True)
    direction = "rtl" if _rtl(lang) else "ltr"
    return (f'<!DOCTYPE html>\n<html lang="{lang_attr}" dir="{direction}">\n<head>'
            f'<meta charset="utf-8"><title>{html.escape(subject)}</title></head>\n'
            f'<body lang="{lang_attr}" dir="{direction}">\n{body}\n</body>\n</html>\n')


def _rtl(lang: str) -> bool:
    try:
        return is_rtl(lang)
    except Exception:  # babel's UnknownLocaleError: show the message left to right, still send
        return False


def _subject(delivery: Delivery) -> str:
    # A header must be one line; a stray newline would otherwise refuse the whole message.
    subject = " ".join(delivery.subject.split())
    if delivery.exercise:
        banner = exercise_banner(delivery.lang)
        if not subject.startswith(banner):
            subject = f"[{banner}] {subject}"
    return subject


class _Smtp(smtplib.SMTP):
    """smtplib's client, noting when DATA begins: from then on the server may have the message."""

    data_started = False

    def putcmd(self, cmd: str, args: str = "") -> None:
        if cmd.lower() == "data":
            self.data_started = True
        super().putcmd(cmd, args)


class EmailChannel:
    """Sends each delivery as one e-mail through one SMTP server."""

    name = "email"
    limits = Limits(per_second=10)

    def __init__(self, host: str, port: int, sender: str, *, username: str | None = None,
                 password: str | None = None, starttls: bool = False,
                 timeout: float = 10.0) -> None:
        self.host = host
        self.port = port
        self.sender = sender
        self.username = username
        self._password = password
        self.starttls = starttls
        self.timeout = timeout

    def __repr__(self) -> str:
        return f"EmailChannel({self.host!r}, {self.port!r}, {self.sender!r})"

    def message(self, delivery: Delivery) -> EmailMessage:
        """The e-mail for one delivery, exactly as it is sent."""
        subject = _subject(delivery)
        msg = EmailMessage(policy=_POLICY)
        msg["From"] = self.sender
        msg["To"] = delivery.address
        msg["Subject"] = subject
        msg["Date"] = (format_datetime(delivery.created_at)
                       if delivery.created_at.tzinfo is not None else formatdate())
        msg["Message-ID"] = message_id(delivery.key, self.sender)
        msg["X-Playbook-Incident"] = delivery.incident_id
        text = with_ack_request(delivery, buttons=False)
        msg.set_content(plain_text(text), subtype="plain", charset="utf-8")
        msg.add_alternative(html_document(text, delivery.lang, subject),
                            subtype="html", charset="utf-8")
        msg["Content-Language"] = delivery.lang  # after the body: set_content drops Content-*
        return msg

    async def send(self, delivery: Delivery) -> str:
        """Send one delivery; the receipt is its Message-ID."""
        recipient = _one_address(delivery.address)
        msg = self.message(delivery)
        await asyncio.to_thread(self._send_blocking, msg, recipient)
        return str(msg["Message-ID"])

    async def aclose(self) -> None:
        """Nothing to release: every send opens and closes its own connection."""

    def _send_blocking(self, msg: EmailMessage, recipient: str) -> None:
        smtp = _Smtp(timeout=self.timeout)
        try:
            smtp.connect(self.host, self.port)
            if self.starttls:
                smtp.starttls(context=ssl.create_default_context())
            if self.username is not None:
                smtp.login(self.username, self._password or "")
            smtp.send_message(msg, from_addr=parseaddr(self.sender)[1], to_addrs=[recipient])
        except (smtplib.SMTPException, OSError) as exc:
            smtp.close()
            raise self._failure(exc, smtp.data_started) from exc
        try:
            smtp.quit()
        except (smtplib.SMTPException, OSError):
            pass  # the server accepted the message; a failed goodbye changes nothing
        finally:
            smtp.close()

    def _failure(self, exc: BaseException, data_started: bool) -> SendFailed:
        server = f"SMTP server {self.host}:{self.port}"
        if isinstance(exc, smtplib.SMTPAuthenticationError):
            return SendFailed(f"{server} refused the login ({exc.smtp_code}): check the e-mail "
                              "username and password in the configuration", retryable=False)
        if isinstance(exc, smtplib.SMTPNotSupportedError):
            return SendFailed(f"{server} does not support what the configuration asks for "
                              f"({exc}): check starttls and username", retryable=False)
        if isinstance(exc, ssl.SSLCertVerificationError):
            return SendFailed(f"{server} presented a certificate that does not verify "
                              f"({exc.verify_message}): check the host name", retryable=False)
        if isinstance(exc, smtplib.SMTPRecipientsRefused):
            code, text = next(iter(exc.recipients.values()), (0, b""))
            reason = f"{server} refused the recipient: {code} {_text(text)}"
            if not 500 <= code < 600:
                return SendFailed(reason, retryable=True)
            # 5.7.x is policy (relay denied, not logged in): our server's settings are wrong,
            # and marking every recipient gone would silence a whole crisis.
            if _POLICY_STATUS.match(_text(text)):
                return SendFailed(f"{reason}: check that this server relays for the sender "
                                  "(username, password, sender address)", retryable=False)
            return SendFailed(reason, retryable=False, gone=True)
        if isinstance(exc, smtplib.SMTPResponseException):
            # 4xx is a temporary refusal by definition; 5xx (sender or content refused) is not.
            reason = f"{server} answered {exc.smtp_code} {_text(exc.smtp_error)}"
            if isinstance(exc, smtplib.SMTPSenderRefused):
                reason += ": check the sender address"
            return SendFailed(reason, retryable=not 500 <= exc.smtp_code < 600)
        if not isinstance(exc, (smtplib.SMTPServerDisconnected, OSError)):
            return SendFailed(f"{server}: {exc}: check the e-mail settings in the configuration",
                              retryable=False)
        if data_started:
            return SendFailed(f"{server} did not confirm the message ({_describe(exc)}); it may "
                              "have been delivered", retryable=True, outcome_unknown=True)
        return SendFailed(f"{server} could not be reached ({_describe(exc)})", retryable=True)


def _one_address(address: str) -> str:
    # A comma or a header break in a directory entry must not turn one delivery into several.
    found = getaddresses([address])
    if ("\r" in address or "\n" in address or len(found) != 1
            or "@" not in found[0][1] or found[0][1] != address.strip()):
        raise SendFailed("the recipient's e-mail address is not one plain address: fix the "
                         "directory entry", retryable=False)
    return found[0][1]


def _text(raw: bytes | str) -> str:
    text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else raw
    return " ".join(text.split())[:200]


def _describe(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError):
        return "timed out"
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
