"""The Telegram channel: one delivery becomes one or more `sendMessage` calls through PTB's Bot.

Telegram refuses texts over 4,096 characters, so long messages are split with `split_html`, a
pure function that keeps every part well-formed HTML. PTB's exceptions are translated here into
`SendFailed` with the retry semantics the dispatcher needs; the bot token never appears in any
message, repr or exception chain this module produces.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
from collections.abc import Awaitable, Callable
from datetime import timedelta

from telegram import Bot, InlineKeyboardButton, InlineKeyboardMarkup, LinkPreviewOptions
from telegram.constants import ParseMode
from telegram.error import (
    BadRequest,
    ChatMigrated,
    Forbidden,
    InvalidToken,
    NetworkError,
    RetryAfter,
    TelegramError,
    TimedOut,
)
from telegram.request import HTTPXRequest

from playbook.delivery import Delivery, Limits
from playbook.errors import SendFailed
from playbook.phrases import ACK_PREFIX, phrase, with_ack_request

# Opt in to PTB's future timedelta durations: without it, PTB 22 warns (a deprecation) from
# inside RetryAfter's constructor on every 429, which nothing outside PTB can silence.
os.environ.setdefault("PTB_TIMEDELTA", "true")

TELEGRAM_LIMIT = 4096
"""Characters per message, counted as Telegram does: UTF-16 code units."""
DEFAULT_URL = "https://api.telegram.org/bot"
_NO_PREVIEW = LinkPreviewOptions(is_disabled=True)
_RESUMABLE = 1000
"""How many half-sent split messages to remember, so a retry resumes instead of repeating."""


class TelegramChannel:
    """Sends deliveries to Telegram chats (`delivery.address`: a chat id or `@channel`)."""

    name = "telegram"
    limits = Limits(per_second=30, per_chat_interval=1.0, per_group_per_minute=20)

    def __init__(self, token: str, *, base_url: str | None = None, timeout: float = 10.0,
                 connections: int = 128,
                 sleep: Callable[[float], Awaitable[None]] = asyncio.sleep) -> None:
        self._token = token
        self._sleep = sleep
        self._base_url = base_url or DEFAULT_URL
        self._timeout = timeout
        self._connections = connections
        self._bot: Bot | None = None
        self._ready = False
        self._starting = asyncio.Lock()
        self._resume: dict[str, list[int]] = {}

    def __repr__(self) -> str:
        return f"TelegramChannel(base_url={self._scrub(self._base_url)!r})"

    async def send(self, delivery: Delivery) -> str:
        """Send the text as HTML without link previews; the receipt is the message id(s)."""
        parts = self._parts(delivery)
        # Progress survives a failure (even a cancellation) so a retry resumes, not repeats.
        done = self._resume.setdefault(delivery.key, [])
        if len(self._resume) > _RESUMABLE:
            self._resume.pop(next(iter(self._resume)))
        try:
            bot = await self._started()
            for number, part in enumerate(parts[len(done):], start=len(done)):
                if number:
                    # Telegram counts each part against the chat's own limit.
                    await self._sleep(self._pause(delivery))
                message = await bot.send_message(
                    delivery.address, part, parse_mode=ParseMode.HTML,
                    link_preview_options=_NO_PREVIEW,
                    reply_markup=_buttons(delivery) if number == len(parts) - 1 else None)
                done.append(message.message_id)
        except TelegramError as exc:
            failure = self._failure(exc, started=self._ready)
            if not failure.retryable:
                self._resume.pop(delivery.key, None)
            if len(parts) > 1:
                failure.reason = f"part {len(done) + 1} of {len(parts)}: {failure.reason}"
                failure.args = (failure.reason,)
            raise failure from (None if self._leaks(exc) else exc)
        self._resume.pop(delivery.key, None)
        return ",".join(str(message_id) for message_id in done)

    async def ready(self) -> None:
        """Connect (getMe) before the dispatcher reserves the first slot."""
        try:
            await self._started()
        except TelegramError as exc:
            raise self._failure(exc, started=False) from (None if self._leaks(exc) else exc)

    async def aclose(self) -> None:
        """Close the Bot's connections; a later send starts a new one."""
        bot, self._bot, self._ready = self._bot, None, False
        if bot is not None:
            await bot.shutdown()

    async def _started(self) -> Bot:
        if self._ready and self._bot is not None:
            return self._bot
        async with self._starting:
            if self._bot is None:
                t = self._timeout
                request = HTTPXRequest(connection_pool_size=self._connections, read_timeout=t,
                                       write_timeout=t, connect_timeout=t, pool_timeout=t)
                self._bot = Bot(self._token, base_url=self._base_url, request=request)
            if not self._ready:
                await self._bot.initialize()  # getMe: checks the token once
                self._ready = True
            return self._bot

    def _pause(self, delivery: Delivery) -> float:
        group, private = self.limits.per_group_per_minute, self.limits.per_chat_interval
        return 60.0 / group if delivery.is_group and group else private or 0.0

    def _parts(self, delivery: Delivery) -> list[str]:
        text = with_ack_request(delivery, buttons=True)
        banner = text.partition("\n")[0] if delivery.exercise else ""
        try:
            if _units(text) <= TELEGRAM_LIMIT or not banner or "<" in banner:
                return split_html(text)
            # Every part of an exercise must say so, not just the first.
            head = f"{banner}\n\n"
            parts = split_html(text, TELEGRAM_LIMIT - _units(head))
            return parts[:1] + [head + part for part in parts[1:]]
        except ValueError as exc:
            raise SendFailed(f"cannot split the message for Telegram: {exc}",
                             retryable=False) from exc

    def _failure(self, exc: TelegramError, *, started: bool) -> SendFailed:
        text = self._scrub(exc.message)
        if isinstance(exc, RetryAfter):
            wait = exc.retry_after
            seconds = wait.total_seconds() if isinstance(wait, timedelta) else float(wait)
            return SendFailed(f"Telegram flood control: retry after {seconds:g} s",
                              retryable=True, retry_after=seconds)
        if isinstance(exc, ChatMigrated):
            return SendFailed(f"the group became a supergroup with chat id {exc.new_chat_id}; "
                              "update the address in the directory", retryable=False, gone=True)
        if isinstance(exc, InvalidToken):
            return SendFailed("Telegram rejected the bot token; check [telegram] token in the "
                              "configuration", retryable=False)
        if isinstance(exc, Forbidden):
            return SendFailed(f"Telegram refused: {text}", retryable=False, gone=True)
        if isinstance(exc, BadRequest):
            return SendFailed(f"Telegram refused the message: {text}", retryable=False,
                              gone="chat not found" in text.lower())
        if isinstance(exc, TimedOut):
            # A pool or connect timeout means nothing left; getMe sends nothing either. Any
            # other timeout may come after Telegram accepted the message.
            unsent = (not started or "Pool timeout" in text
                      or type(exc.__cause__).__name__ == "ConnectTimeout")
            return SendFailed(f"Telegram did not answer in time: {text}", retryable=True,
                              outcome_unknown=not unsent)
        if isinstance(exc, NetworkError):
            return SendFailed(f"network error talking to Telegram: {text}", retryable=True)
        return SendFailed(f"Telegram error: {text}", retryable=False)

    def _scrub(self, text: str) -> str:
        return text.replace(self._token, "[token]") if self._token else text

    def _leaks(self, exc: BaseException) -> bool:
        """Whether the exception or anything it chains to mentions the token."""
        seen: BaseException | None = exc
        for _ in range(10):
            if seen is None:
                return False
            if self._token and (self._token in str(seen) or self._token in repr(seen)):
                return True
            seen = seen.__cause__ or seen.__context__
        return True  # a chain this deep is not worth the risk


_ATOM = re.compile(r"<[^<>]*>|&(?:#\d+|#x[0-9a-fA-F]+|[A-Za-z]+);|.", re.DOTALL)
_START = re.compile(r"<([A-Za-z][\w-]*)")
_END = re.compile(r"</([A-Za-z][\w-]*)\s*>")


def _buttons(delivery: Delivery) -> InlineKeyboardMarkup | None:
    """The buttons under a message: the engine's own, or Received / Shared under a briefing.

    `meta["buttons"]` holds (label, `b:<token>`) rows whose meaning stays on the server.

    The callback data carries only the server-side code (`ack:<code>:r`, 15 bytes): a forged or
    stale code matches no briefing and changes nothing.
    """
    if "buttons" in delivery.meta:
        rows = json.loads(delivery.meta["buttons"])
        return InlineKeyboardMarkup([[InlineKeyboardButton(label, callback_data=data)
                                      for label, data in row] for row in rows])
    token = delivery.meta.get("ack_token")
    if not token:
        return None
    return InlineKeyboardMarkup([
        [InlineKeyboardButton(phrase("button_received", delivery.lang),
                              callback_data=f"{ACK_PREFIX}{token}:r")],
        [InlineKeyboardButton(phrase("button_shared", delivery.lang),
                              callback_data=f"{ACK_PREFIX}{token}:s")]])


def _units(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


def split_html(text: str, limit: int = TELEGRAM_LIMIT) -> list[str]:
    """Split Telegram HTML into parts of at most `limit` UTF-16 units, each well-formed.

    Breaks after a blank line, else a line, else a space, else between characters (a better
    kind of break wins if it keeps at least half of the part); never inside a tag or an
    entity. Tags open at a break are closed at the end of the part and reopened at the start
    of the next. The length counted includes the markup, so a part fits however Telegram
    counts it. `ValueError` if the markup alone cannot fit.
    """
    if _units(text) <= limit:
        return [text]
    atoms = _ATOM.findall(text)
    stacks, ranks = _walk(atoms)
    parts: list[str] = []
    start = 0
    while start < len(atoms):
        prefix = "".join(tag for _, tag in stacks[start])
        size = _units(prefix)
        best: list[int | None] = [None] * 4
        has_text = False
        end = start
        while end < len(atoms) and size + _units(atoms[end]) <= limit:
            size += _units(atoms[end])
            has_text = has_text or _is_text(atoms[end])
            end += 1
            closing = sum(len(name) + 3 for name, _ in stacks[end])
            if has_text and ranks[end] >= 0 and size + closing <= limit:
                best[ranks[end]] = end
        found = [position for position in reversed(best) if position is not None]
        if not found:
            raise ValueError(f"a part of at most {limit} characters cannot hold the markup")
        cut = next((p for p in found if 2 * (p - start) >= end - start), max(found))
        closing_tags = "".join(f"</{name}>" for name, _ in reversed(stacks[cut]))
        parts.append(prefix + "".join(atoms[start:cut]) + closing_tags)
        start = cut
    return parts


def _is_text(atom: str) -> bool:
    return not atom.isspace() and not (len(atom) > 1 and atom[0] == "<")


def _walk(atoms: list[str]) -> tuple[list[tuple[tuple[str, str], ...]], list[int]]:
    """For each position between atoms: the open tags there, and how good a break it is.

    Rank 3 after a blank line (and at the end), 2 after a newline, 1 after other whitespace,
    0 elsewhere; -1 right after a start tag (it would leave an empty element behind) and
    where no text follows (the next part would be empty).
    """
    stack: tuple[tuple[str, str], ...] = ()
    stacks = [stack]
    ranks = [-1]
    last = ("", "")  # the last two text atoms, ignoring tags
    for atom in atoms:
        start, end = _START.match(atom), _END.match(atom)
        rank = ranks[-1]
        if end and stack and stack[-1][0] == end.group(1).lower():
            stack = stack[:-1]
        elif start:
            stack = (*stack, (start.group(1).lower(), atom))
            rank = -1
        else:
            last = (last[1], atom)
            rank = (3 if last == ("\n", "\n") else 2 if atom == "\n"
                    else 1 if atom.isspace() else 0)
        stacks.append(stack)
        ranks.append(rank)
    ranks[-1] = 3
    position = len(atoms) - 1
    while position > 0 and not _is_text(atoms[position]):
        ranks[position] = -1
        position -= 1
    return stacks, ranks
