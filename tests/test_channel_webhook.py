"""The webhook channel against a real HTTP server on the loopback interface, and its signature."""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from playbook.channels.webhook import WebhookChannel, body, sign, verify
from playbook.delivery import Delivery
from playbook.errors import SendFailed

SECRET = b"shared-secret-0123456789"


@dataclass(frozen=True)
class Reply:
    """What the server answers to one request."""

    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0
    hang_up: bool = False


@dataclass
class Received:
    """One request as the server saw it."""

    path: str
    headers: dict[str, str]
    body: bytes


class Receiver(ThreadingHTTPServer):
    """An HTTP server that answers with scripted replies, in order, and records each request."""

    def __init__(self, replies: list[Reply]) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.replies = replies
        self.received: list[Received] = []
        self.stopping = threading.Event()

    @property
    def url(self) -> str:
        """The base URL of this server."""
        return f"http://127.0.0.1:{self.server_address[1]}"


class _Handler(BaseHTTPRequestHandler):
    server: Receiver

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length", "0"))
        self.server.received.append(
            Received(self.path, dict(self.headers.items()), self.rfile.read(length)))
        reply = self.server.replies.pop(0) if self.server.replies else Reply()
        if reply.delay:
            self.server.stopping.wait(reply.delay)  # let the test's teardown cut the wait short
        if reply.hang_up:
            self.close_connection = True
            return
        try:
            self.send_response(reply.status)
            for name, value in reply.headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", "0")
            self.end_headers()
        except OSError:
            pass  # the client gave up waiting, as the slow-server test intends

    def log_message(self, format: str, *args: Any) -> None:
        """Keep test output quiet."""


@contextmanager
def receiver(*replies: Reply) -> Iterator[Receiver]:
    """Run a scripted HTTP server on a loopback port."""
    server = Receiver(list(replies))
    thread = threading.Thread(target=server.serve_forever, args=(0.02,), daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.stopping.set()
        server.shutdown()
        server.server_close()
        thread.join(5)


def delivery(address: str, **changes: Any) -> Delivery:
    """A delivery to one webhook, changed as a test needs."""
    base = Delivery(
        key="inc-1/update/2/ngo-7/ar/webhook", incident_id="inc-1", exercise=True,
        step_id="update", number=2, recipient_id="ngo-7", recipient_name="Relief network",
        lang="ar", channel="webhook", address=address, subject="تحديث",
        text="<b>تمرين</b>\n\u200fالوضع في ساحة السوق &amp; المحيط",
        created_at=datetime(2025, 3, 1, 9, 30, tzinfo=UTC))
    return replace(base, **changes)


def send(channel: WebhookChannel, *items: Delivery) -> list[str]:
    """Send deliveries in order through one channel, then close it; return the receipts."""
    async def run() -> list[str]:
        try:
            return [await channel.send(item) for item in items]
        finally:
            await channel.aclose()
    return asyncio.run(run())


def failure(channel: WebhookChannel, item: Delivery) -> SendFailed:
    """Send one delivery that must fail, and return the failure."""
    with pytest.raises(SendFailed) as caught:
        send(channel, item)
    return caught.value


def test_posts_signed_json_with_headers() -> None:
    """The body is sorted compact UTF-8 JSON, signed so `verify` accepts it, with the headers."""
    with receiver(Reply(headers={"X-Request-Id": "req-42"}), Reply()) as server:
        item = delivery(server.url + "/hooks/city")
        receipts = send(WebhookChannel(SECRET), item, item)
    assert receipts == ["req-42", ""]
    request = server.received[0]
    assert request.path == "/hooks/city"
    assert request.body == body(item)
    assert verify(SECRET, request.headers["X-Playbook-Timestamp"], request.body,
                  request.headers["X-Playbook-Signature"], now=time.time())
    assert abs(int(request.headers["X-Playbook-Timestamp"]) - time.time()) < 60
    assert request.headers["Content-Type"] == "application/json"
    assert request.headers["Idempotency-Key"] == item.key
    assert "تمرين".encode() in request.body  # not \\u-escaped
    assert b": " not in request.body
    assert b", " not in request.body
    document = json.loads(request.body)
    assert list(document) == sorted(document)
    assert document == {
        "incident_id": "inc-1", "exercise": True, "step_id": "update", "number": 2,
        "recipient_id": "ngo-7", "lang": "ar", "subject": "تحديث", "text": item.text,
        "text_plain": "تمرين\n\u200fالوضع في ساحة السوق & المحيط",
        "created_at": "2025-03-01T09:30:00+00:00", "key": item.key,
    }


def test_tampered_body_fails_verification() -> None:
    """A changed body, a wrong secret, a stale or future or malformed timestamp all fail."""
    now = 1_750_000_000
    content = b'{"text":"stay indoors"}'
    signature = sign(SECRET, now, content)
    assert verify(SECRET, now, content, signature, now=now + 299)
    assert not verify(SECRET, now, b'{"text":"go outside"}', signature, now=now)
    assert not verify(b"other-secret", now, content, signature, now=now)
    assert not verify(SECRET, now, content, signature, now=now + 301)
    assert not verify(SECRET, now, content, signature, now=now - 301)
    assert not verify(SECRET, "soon", content, signature, now=now)
    assert not verify(SECRET, now, content, "sha256=ü" + signature[8:], now=now)
    assert signature.startswith("sha256=")
    assert len(signature) == len("sha256=") + 64


@pytest.mark.parametrize(("reply", "retryable", "retry_after", "gone"), [
    (Reply(429, {"Retry-After": "7"}), True, 7.0, False),
    (Reply(503, {"Retry-After": "2"}), True, 2.0, False),
    (Reply(503), True, None, False),
    (Reply(500), True, None, False),
    (Reply(502), True, None, False),
    (Reply(408), True, None, False),
    (Reply(410), False, None, True),
    (Reply(400), False, None, False),
    (Reply(401), False, None, False),
    (Reply(404), False, None, False),
    (Reply(301, {"Location": "http://127.0.0.1:1/elsewhere"}), False, None, False),
])
def test_status_codes_map_to_failures(reply: Reply, retryable: bool,
                                      retry_after: float | None, gone: bool) -> None:
    """Each non-2xx answer becomes the failure the dispatcher needs, outcome always known."""
    with receiver(reply) as server:
        error = failure(WebhookChannel(SECRET), delivery(server.url + "/hook"))
    assert (error.retryable, error.retry_after, error.gone) == (retryable, retry_after, gone)
    assert error.outcome_unknown is False
    assert str(reply.status) in error.reason
    assert len(server.received) == 1  # a redirect is not followed


def test_retry_after_as_a_date() -> None:
    """Retry-After given as an HTTP date becomes the seconds until then."""
    later = format_datetime(datetime.now(UTC) + timedelta(seconds=90), usegmt=True)
    with receiver(Reply(429, {"Retry-After": later})) as server:
        error = failure(WebhookChannel(SECRET), delivery(server.url))
    assert error.retry_after is not None
    assert 80 < error.retry_after <= 90


def test_nothing_listening_is_retryable_with_a_known_outcome() -> None:
    """A refused connection is retryable and the receiver cannot have the message."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    error = failure(WebhookChannel(SECRET, timeout=2), delivery(f"http://127.0.0.1:{port}/"))
    assert (error.retryable, error.outcome_unknown, error.gone) == (True, False, False)


def test_slow_receiver_is_an_unknown_outcome() -> None:
    """No answer within the timeout after the request was sent: retryable, outcome unknown."""
    with receiver(Reply(delay=5)) as server:
        started = time.monotonic()
        error = failure(WebhookChannel(SECRET, timeout=0.2), delivery(server.url))
        waited = time.monotonic() - started
    assert (error.retryable, error.outcome_unknown) == (True, True)
    assert waited < 3
    assert len(server.received) == 1


def test_receiver_hanging_up_is_an_unknown_outcome() -> None:
    """A connection closed without an answer after the request: retryable, outcome unknown."""
    with receiver(Reply(hang_up=True)) as server:
        error = failure(WebhookChannel(SECRET), delivery(server.url))
    assert (error.retryable, error.outcome_unknown) == (True, True)


@pytest.mark.parametrize("address", ["ftp://127.0.0.1/x", "mailto:desk@example.org",
                                     "not a url", "http://", "/relative/path"])
def test_only_http_addresses_are_sent(address: str) -> None:
    """An address that is not an http(s) URL with a host is refused, not retried."""
    error = failure(WebhookChannel(SECRET), delivery(address))
    assert (error.retryable, error.gone) == (False, False)


def test_failures_never_show_the_url_path_or_the_secret() -> None:
    """A token in the URL and the signing secret stay out of reasons and reprs."""
    channel = WebhookChannel(SECRET)
    assert "shared-secret" not in repr(channel)
    with receiver(Reply(500)) as server:
        error = failure(channel, delivery(server.url + "/hooks/T0KEN-abc?key=Q7"))
    assert "T0KEN" not in error.reason
    assert "Q7" not in error.reason
    assert "shared-secret" not in error.reason
    assert "127.0.0.1" in error.reason
