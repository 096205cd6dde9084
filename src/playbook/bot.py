"""The Telegram bot's inbound side: confirmation buttons, `/concern`, and replies to briefings.

python-telegram-bot polls for updates and hands each to a handler here; the handler turns it into
one call of `listening` (acknowledge, concern) and answers in the sender's language. Who is
writing is decided by the chat: an intermediary or a staff member from the directory, else a
resident. A button pressed in any chat but the one its briefing went to changes nothing.
"""

from __future__ import annotations

import asyncio
import logging
import re
from dataclasses import dataclass
from datetime import timedelta

from telegram import Message, Update, User
from telegram.error import RetryAfter
from telegram.ext import (
    Application,
    CallbackQueryHandler,
    CommandHandler,
    ContextTypes,
    MessageHandler,
    filters,
)
from telegram.request import HTTPXRequest

from playbook import listening
from playbook.clock import Clock
from playbook.engine import Engine
from playbook.errors import BadInput
from playbook.phrases import ACK_PREFIX, phrase

log = logging.getLogger(__name__)
_BUTTON = re.compile(re.escape(ACK_PREFIX) + r"([A-Z2-9]{8}):([rs])")


@dataclass(frozen=True)
class Sender:
    """Who wrote: a directory id (`intermediary:karim`) or `resident:telegram:<user id>`."""

    id: str
    name: str
    locale: str


class TelegramBot:
    """Polls Telegram and records what intermediaries and residents send back."""

    def __init__(self, engine: Engine, token: str, clock: Clock, *, hotline: str,
                 base_url: str | None = None, poll_interval: float = 0.0,
                 timeout: float = 10.0) -> None:
        self.engine = engine
        self.clock = clock
        self.hotline = hotline
        self.poll_interval = poll_interval
        request = HTTPXRequest(read_timeout=timeout, connect_timeout=timeout)
        polling = HTTPXRequest(read_timeout=timeout + 30, connect_timeout=timeout)
        builder = Application.builder().token(token).request(request).get_updates_request(
            polling)
        if base_url:
            builder = builder.base_url(base_url)
        self.app = builder.build()
        self.app.add_handler(CallbackQueryHandler(self._button, pattern=f"^{ACK_PREFIX}"))
        self.app.add_handler(CommandHandler("concern", self._concern))
        self.app.add_handler(MessageHandler(filters.REPLY & filters.TEXT & ~filters.COMMAND,
                                            self._reply))
        self.app.add_error_handler(self._error)

    async def start(self) -> None:
        """Connect (getMe) and start polling for updates."""
        await self.app.initialize()
        await self.app.start()
        assert self.app.updater is not None
        await self.app.updater.start_polling(poll_interval=self.poll_interval, timeout=10,
                                             allowed_updates=["message", "callback_query"])

    async def stop(self) -> None:
        """Stop polling; the updates already handled are confirmed to Telegram."""
        if self.app.updater is not None and self.app.updater.running:
            await self.app.updater.stop()
        if self.app.running:
            await self.app.stop()
        await self.app.shutdown()

    def sender(self, chat_id: int, user: User | None) -> Sender:
        """Who is writing from this chat."""
        directory = self.engine.directory
        for kind, people in (("intermediary", directory.intermediaries),
                             ("staff", directory.staff)):
            for entry in people:
                if entry.telegram_chat_id == str(chat_id):
                    return Sender(f"{kind}:{entry.id}", entry.name, entry.languages[0])
        user_id = user.id if user else chat_id
        return Sender(f"resident:telegram:{user_id}", user.full_name if user else "resident",
                      (user.language_code if user else None) or "en")

    async def _button(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        query = update.callback_query
        if query is None:
            return
        chat = query.message.chat.id if query.message else query.from_user.id
        who = self.sender(chat, query.from_user)
        found = _BUTTON.fullmatch(query.data or "")
        answer = phrase("button_stale", who.locale)
        if found:
            relayed = found.group(2) == "s"
            try:
                listening.acknowledge(self.engine, found.group(1), relayed=relayed,
                                      via="telegram", actor=who.id, now=self.clock.now(),
                                      only_for=who.id)
                answer = phrase("thanks_relayed" if relayed else "thanks_ack", who.locale)
            except BadInput:
                pass  # a forged, stale or someone else's button: nothing changes
        await query.answer(answer)

    async def _concern(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        message = update.effective_message
        if message is None:
            return
        who = self.sender(message.chat.id, message.from_user)
        text = " ".join(context.args or [])
        if not text.strip():
            await _say(message, phrase("concern_empty", who.locale, command="/concern"))
            return
        await self._record(update, who, text)

    async def _reply(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        message = update.effective_message
        if message is None or message.reply_to_message is None:
            return
        who = self.sender(message.chat.id, message.from_user)
        with self.engine.store.begin() as tx:
            briefing = tx.replied_to("telegram", str(message.chat.id),
                                     str(message.reply_to_message.message_id))
        if briefing is None:
            await _say(message, phrase("concern_empty", who.locale, command="/concern"))
            return
        await self._record(update, who, message.text or "", briefing.incident_id,
                           briefing.step_id)

    async def _record(self, update: Update, who: Sender, text: str,
                      incident_id: str | None = None, step_id: str = "") -> None:
        message = update.effective_message
        assert message is not None
        logged = listening.concern(self.engine, text, sender=who.id, name=who.name,
                                   via="telegram", now=self.clock.now(), incident_id=incident_id,
                                   step_id=step_id, ref=f"telegram:{update.update_id}")
        await _say(message, phrase("thanks_concern", who.locale) if logged else
                   phrase("no_incident", who.locale, hotline=self.hotline))

    async def _error(self, update: object, context: ContextTypes.DEFAULT_TYPE) -> None:
        # Log the kind only: PTB's errors can carry request URLs, and those carry the token.
        log.warning("telegram bot: %s while handling an update", type(context.error).__name__)


async def _say(message: Message, text: str, tries: int = 3) -> None:
    """Answer in the sender's chat, waiting out Telegram's flood control (1 message/s a chat)."""
    for attempt in range(tries):
        try:
            await message.reply_text(text)
            return
        except RetryAfter as exc:
            if attempt == tries - 1:
                raise
            wait = exc.retry_after
            await asyncio.sleep(wait.total_seconds() if isinstance(wait, timedelta)
                                else float(wait))
