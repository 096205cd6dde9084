"""The webhook channel: each delivery POSTed as signed JSON to the recipient's URL.

The receiver checks `X-Playbook-Signature`, an HMAC-SHA256 of `"<timestamp>.<body>"` with the
shared secret, and refuses stale timestamps, so a captured request can neither be altered nor
replayed later; `sign` and `verify` are exported for receivers written in Python. The
`Idempotency-Key` header lets a receiver drop the duplicate that a retry after an unknown outcome
may produce.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

import httpx

from playbook.delivery import Delivery, Limits, plain_text
from playbook.errors import SendFailed

SIGNATURE_PREFIX = "sha256="


def body(delivery: Delivery) -> bytes:
    """The JSON document sent for a delivery: UTF-8, keys sorted, no spaces."""
    document = {
        "incident_id": delivery.incident_id, "exercise": delivery.exercise,
        "step_id": delivery.step_id, "number": delivery.number,
        "recipient_id": delivery.recipient_id, "lang": delivery.lang,
        "subject": delivery.subject, "text": delivery.text,
        "text_plain": plain_text(delivery.text),
        "created_at": delivery.created_at.isoformat(), "key": delivery.key,
    }
    return json.dumps(document, ensure_ascii=False, sort_keys=True,
                      separators=(",", ":")).encode("utf-8")


def sign(secret: bytes, timestamp: int, body: bytes) -> str:
    """The signature header value for a body sent at `timestamp` (unix seconds)."""
    mac = hmac.new(secret, f"{timestamp}.".encode("ascii") + body, hashlib.sha256)
    return SIGNATURE_PREFIX + mac.hexdigest()


def verify(secret: bytes, timestamp: int | str, body: bytes, signature: str, *, now: float,
           tolerance: float = 300) -> bool:
    """Whether `signature` signs `body` at `timestamp`, no more than `tolerance` s from `now`.

    For receivers: pass the raw request body and the two headers exactly as received.
    """
    try:
        moment = int(timestamp)
    except ValueError:
        return False
    if abs(now - moment) > tolerance:
        return False
    expected = sign(secret, moment, body).encode("ascii")
    return hmac.compare_digest(expected, signature.encode("utf-8", "replace"))


class WebhookChannel:
    """POSTs each delivery to the URL in its address, signed with one shared secret."""

    name = "webhook"
    limits = Limits(per_second=20)

    def __init__(self, secret: bytes, *, timeout: float = 10.0,
                 transport: httpx.AsyncBaseTransport | None = None) -> None:
        self._secret = secret
        # Redirects are not followed: a signed body must not be re-sent to an address nobody
        # configured, and a moved receiver is for the directory to record.
        self._client = httpx.AsyncClient(timeout=timeout, transport=transport,
                                         follow_redirects=False)

    def __repr__(self) -> str:
        return "WebhookChannel()"

    async def send(self, delivery: Delivery) -> str:
        """POST one delivery; the receipt is the receiver's `X-Request-Id`, or ""."""
        url = _url(delivery.address)
        where = f"webhook at {url.host}"  # never the whole URL: its path or query may be a token
        content = body(delivery)
        timestamp = int(time.time())
        headers = {
            "Content-Type": "application/json",
            "Idempotency-Key": delivery.key,
            "X-Playbook-Timestamp": str(timestamp),
            "X-Playbook-Signature": sign(self._secret, timestamp, content),
        }
        try:
            response = await self._client.post(url, content=content, headers=headers)
        except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
            raise SendFailed(f"{where} could not be reached ({_describe(exc)})",
                             retryable=True) from exc
        except (httpx.LocalProtocolError, httpx.UnsupportedProtocol) as exc:
            raise SendFailed(f"{where} cannot be sent this request ({_describe(exc)})",
                             retryable=False) from exc
        except httpx.TransportError as exc:
            # The request left (or was leaving); the receiver may have acted on it.
            raise SendFailed(f"{where} did not answer ({_describe(exc)}); it may have received "
                             "the message", retryable=True, outcome_unknown=True) from exc
        if response.is_success:
            return str(response.headers.get("X-Request-Id", ""))
        raise _failure(response, where)

    async def aclose(self) -> None:
        """Close the connection pool."""
        await self._client.aclose()


def _url(address: str) -> httpx.URL:
    try:
        url = httpx.URL(address)
    except httpx.InvalidURL as exc:
        raise SendFailed("the webhook address is not a URL: fix the directory entry",
                         retryable=False) from exc
    if url.scheme not in ("http", "https") or not url.host:
        raise SendFailed("the webhook address must be an http(s) URL with a host: fix the "
                         "directory entry", retryable=False)
    return url


def _failure(response: httpx.Response, where: str) -> SendFailed:
    status = response.status_code
    reason = f"{where} answered {status} {response.reason_phrase}".rstrip()
    if status in (429, 503):
        return SendFailed(reason, retryable=True, retry_after=_retry_after(response))
    if status >= 500 or status == 408:
        return SendFailed(reason, retryable=True)
    if status == 410:
        return SendFailed(f"{reason}: the receiver is gone", retryable=False, gone=True)
    if status in (401, 403):
        return SendFailed(f"{reason}: check that the receiver has the same secret",
                          retryable=False)
    if 300 <= status < 400:
        return SendFailed(f"{reason}: the receiver moved; update the directory entry",
                          retryable=False)
    return SendFailed(reason, retryable=False)


def _retry_after(response: httpx.Response) -> float | None:
    value = str(response.headers.get("Retry-After", "")).strip()
    if not value:
        return None
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


def _describe(exc: httpx.HTTPError) -> str:
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
