"""One rendered message to one recipient on one channel, and the protocol every channel speaks.

The dispatcher hands a `Delivery` to a `Channel`; the channel either returns a receipt or raises
`SendFailed`. Channels never touch the database: retries, leases and the log are the dispatcher's.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from html.parser import HTMLParser
from typing import Protocol


@dataclass(frozen=True)
class Limits:
    """What a channel's provider allows; the dispatcher paces sends to stay inside it."""

    per_second: float | None = None
    """Messages per second over the whole channel (Telegram: about 30)."""
    per_chat_interval: float | None = None
    """Seconds between two messages to one private chat (Telegram: 1)."""
    per_group_per_minute: int | None = None
    """Messages per minute to one group or channel chat (Telegram: 20)."""


@dataclass(frozen=True)
class Delivery:
    """One message, already rendered, to one recipient in one language on one channel."""

    key: str
    """Idempotency key: incident, step, occurrence, recipient, language, channel."""
    incident_id: str
    exercise: bool
    step_id: str
    number: int
    recipient_id: str
    recipient_name: str
    lang: str
    channel: str
    address: str
    """Where it goes on that channel: a chat id, an e-mail address, a URL, a feed folder."""
    subject: str
    """One line: what this is about (e-mail subject, CAP headline)."""
    text: str
    """The message in Telegram's HTML subset; in an exercise it starts with the banner."""
    created_at: datetime
    meta: Mapping[str, str] = field(default_factory=dict)
    """Channel-specific extras, e.g. for CAP: msg_type, references, event, category."""

    @property
    def is_group(self) -> bool:
        """Telegram group and channel chats have negative ids (or an @name) and slower limits."""
        return self.address.startswith(("-", "@"))


class Channel(Protocol):
    """How a message leaves. `send` returns a receipt (a provider message id, or "").

    A channel that must connect first may also have `async def ready(self) -> None` (raising
    `SendFailed`): the dispatcher awaits it before it reserves a paced slot, so a slow first
    connection does not bunch the first sends together.
    """

    name: str
    limits: Limits

    async def send(self, delivery: Delivery) -> str:
        """Deliver one message, or raise `playbook.errors.SendFailed`."""
        ...

    async def aclose(self) -> None:
        """Release connections; called once at shutdown."""
        ...


def plain_text(html: str) -> str:
    """The text of a Telegram-HTML message for channels that cannot show markup."""
    parser = _Text()
    parser.feed(html)
    parser.close()
    return "".join(parser.parts)


class _Text(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.href: str | None = None
        self.anchor_start = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "a":
            self.href = dict(attrs).get("href")
            self.anchor_start = len(self.parts)

    def handle_endtag(self, tag: str) -> None:
        if tag == "a" and self.href:
            shown = "".join(self.parts[self.anchor_start:])
            if self.href not in shown:
                self.parts.append(f" ({self.href})")
            self.href = None

    def handle_data(self, data: str) -> None:
        self.parts.append(data)
