"""The Telegram bot: the comms team's console and the intermediaries' line.

python-telegram-bot receives updates (long polling, or a webhook that checks Telegram's secret
header) and hands each to a handler here. Who writes is decided by the chat: a staff member or
an intermediary from the directory, else a stranger (a resident). Staff commands go to the
`Desk` and the activation `Wizard`; intermediaries join with an invite code, choose their
language, confirm briefings and send concerns (`listening`). Every update is handled once,
even if Telegram delivers it again; every button is a server-side token bound to one person
(`buttons`); a stranger gets a polite answer and changes nothing. Answers are in the sender's
language (`i18n`). The token never reaches a log: only error kinds are logged.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from functools import partial
from typing import Any

from telegram import (
    CallbackQuery,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    InputFile,
    Message,
    Update,
    User,
)
from telegram.constants import ParseMode
from telegram.error import BadRequest, NetworkError, RetryAfter, TelegramError, TimedOut
from telegram.ext import (
    Application,
    ApplicationHandlerStop,
    CallbackQueryHandler,
    CommandHandler,
    ContextTypes,
    MessageHandler,
    TypeHandler,
    filters,
)
from telegram.request import HTTPXRequest

from playbook import buttons, drilldesk, links, listening
from playbook.channels.telegram import split_html
from playbook.clock import Clock
from playbook.desk import ONCE, Ask, Button, Desk, Reply
from playbook.directory import Staff
from playbook.engine import Engine
from playbook.errors import BadInput, RuntimeFailure
from playbook.fanout import esc
from playbook.i18n import N_, Translator, autonym, translator
from playbook.phrases import ACK_PREFIX, phrase
from playbook.wizard import Wizard

log = logging.getLogger(__name__)
_BUTTON = re.compile(re.escape(ACK_PREFIX) + r"([A-Z2-9]{8}):([rs])")
STAFF_COMMANDS = ("playbooks", "activate", "status", "tasks", "approvals", "log", "escalate",
                  "standdown", "report", *drilldesk.CONTROLS)
REFUSAL = N_("This bot serves the city's crisis communication team and its community "
             "partners, and I cannot take requests from this chat. To tell the city about a "
             "concern, send /concern followed by your message. For information call "
             "%(hotline)s.")
"""What a stranger hears, whatever they asked."""
Handler = Callable[[Update, ContextTypes.DEFAULT_TYPE], Awaitable[None]]


@dataclass(frozen=True)
class Sender:
    """Who wrote: a directory id (`intermediary:karim`) or `resident:telegram:<user id>`."""

    id: str
    name: str
    locale: str
    staff: Staff | None = None

    @property
    def intermediary(self) -> bool:
        """Whether the sender is one of the city's trusted intermediaries."""
        return self.id.startswith("intermediary:")


@dataclass(frozen=True)
class Webhook:
    """Webhook mode: where Telegram posts updates, and the secret it must send with them."""

    url: str
    secret: str
    listen: str = "127.0.0.1"
    port: int = 8443
    path: str = "telegram"


class TelegramBot:
    """Receives Telegram updates for one engine and answers them."""

    def __init__(self, engine: Engine, token: str, clock: Clock, *, hotline: str,
                 desk: Desk | None = None, base_url: str | None = None,
                 poll_interval: float = 0.0, timeout: float = 10.0,
                 webhook: Webhook | None = None, languages: Sequence[str] = ()) -> None:
        self.engine = engine
        self.clock = clock
        self.hotline = hotline
        self.desk = desk
        self.wizard = Wizard(desk) if desk else None
        self.poll_interval = poll_interval
        self.webhook = webhook
        self.languages = tuple(languages) or ("en", "ar", "uk", "fr")
        self.asking: dict[str, Ask] = {}
        request = HTTPXRequest(read_timeout=timeout, connect_timeout=timeout)
        polling = HTTPXRequest(read_timeout=timeout + 30, connect_timeout=timeout)
        builder = Application.builder().token(token).request(request).get_updates_request(
            polling)
        if base_url:
            builder = builder.base_url(base_url)
        self.app = builder.build()
        add = self.app.add_handler
        add(TypeHandler(Update, self._once), group=-1)
        add(CallbackQueryHandler(self._ack_button, pattern=f"^{ACK_PREFIX}"))
        add(CallbackQueryHandler(self._button, pattern=f"^{buttons.PREFIX}"))
        add(CallbackQueryHandler(self._stale_button))
        add(CommandHandler("start", self._start))
        add(CommandHandler(["help", "cancel"], self._help))
        add(CommandHandler("language", self._language))
        add(CommandHandler("concern", self._concern))
        add(CommandHandler(list(STAFF_COMMANDS), self._staff_command))
        add(MessageHandler(filters.REPLY & filters.TEXT & ~filters.COMMAND, self._reply))
        add(MessageHandler(filters.TEXT & ~filters.COMMAND, self._text))
        add(MessageHandler(filters.COMMAND, self._unknown_command))
        self.app.add_error_handler(self._error)

    async def start(self) -> None:
        """Connect (getMe) and start receiving updates: polling, or the webhook."""
        try:
            await self._begin()
        except TelegramError as exc:
            raise RuntimeFailure(f"telegram: the bot cannot start: {exc}") from exc

    async def _begin(self) -> None:
        hide_token(self.app.bot.token)
        if not self.app.running:
            await self.app.initialize()
            await self.app.start()
        assert self.app.updater is not None
        allowed = ["message", "callback_query"]
        if self.app.updater.running:
            return
        if self.webhook is None:
            await self.app.updater.start_polling(poll_interval=self.poll_interval, timeout=10,
                                                 allowed_updates=allowed)
            return
        hook = self.webhook
        await self.app.updater.start_webhook(
            listen=hook.listen, port=hook.port, url_path=hook.path, webhook_url=hook.url,
            secret_token=hook.secret, allowed_updates=allowed)

    async def stop_receiving(self) -> None:
        """Stop polling, but stay ready to start again (another process leads now)."""
        if self.app.updater is not None and self.app.updater.running:
            await self.app.updater.stop()

    async def stop(self) -> None:
        """Stop receiving; the updates already handled are confirmed to Telegram."""
        if self.app.updater is not None and self.app.updater.running:
            await self.app.updater.stop()
        if self.app.running:
            await self.app.stop()
        await self.app.shutdown()

    def sender(self, chat_id: int, user: User | None) -> Sender:
        """Who is writing from this chat."""
        directory = self.engine.directory
        for member in directory.staff:
            if member.telegram_chat_id == str(chat_id):
                return Sender(f"staff:{member.id}", member.name, member.languages[0], member)
        for entry in directory.intermediaries:
            if entry.telegram_chat_id == str(chat_id) and entry.active:
                return Sender(f"intermediary:{entry.id}", entry.name, entry.languages[0])
        user_id = user.id if user else chat_id
        return Sender(f"resident:telegram:{user_id}", user.full_name if user else "resident",
                      (user.language_code if user else None) or "en")

    # every update

    async def _once(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        """Telegram may deliver an update again (a retry, a restart): act on it only once."""
        with self.engine.store.begin() as tx:
            first = tx.first_sight(update.update_id, self.clock.now())
        if not first:
            raise ApplicationHandlerStop

    # buttons

    async def _ack_button(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        query = update.callback_query
        if query is None:
            return
        who = self._who(update)
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
        await _answer(query, answer)

    async def _button(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        query = update.callback_query
        if query is None:
            return
        who = self._who(update)
        t = translator(who.locale)
        with self.engine.store.begin() as tx:
            row = buttons.press(tx, query.data or "", who.id, self.clock.now(),
                                once=ONCE | {"lang"})
        if row is None:
            await _answer(query, t.gettext("This button no longer works."))
            return
        await _answer(query)
        if row.action == "lang" and who.intermediary and query.message:
            lang = str(row.payload.get("lang", ""))
            links.choose_language(self.engine, who.id, str(query.message.chat.id), lang,
                                  self.clock.now())
            t = translator(lang)
            replies = [Reply(t.gettext("From now on you receive briefings in %(language)s, "
                                       "when the city has them in it.")
                             % t.isolate({"language": autonym(lang)}))]
        elif who.staff is None or self.desk is None or self.wizard is None:
            replies = [Reply(self._refusal(t))]
        elif row.action.startswith("act."):
            replies = self.wizard.press(who.staff, t, row.action, row.payload)
        elif row.action in (*drilldesk.CONTROLS, "end.go", "inject.answer", "report"):
            replies = self._drill_press(who.staff, t, row.action, row.payload)
        else:
            replies = self.desk.press(who.staff, t, row.action, row.payload)
        await self._send(update, who, replies)

    def _drill_press(self, staff: Staff, t: Translator, action: str,
                     payload: Mapping[str, Any]) -> list[Reply]:
        """The drill's buttons: controls, the "no play" confirmation, inject answers."""
        assert self.desk is not None
        incident = str(payload.get("incident", ""))
        try:
            if action in drilldesk.CONTROLS:
                return drilldesk.control(self.desk, staff, t, action, incident)
            if action == "end.go":
                return drilldesk.end_now(self.desk, staff, t, incident)
            if action == "report":
                return drilldesk.report(self.desk, staff, t, incident)
            return drilldesk.ask_answer(t, payload)
        except BadInput as exc:
            return [Reply("⚠ " + esc("; ".join(p.message for p in exc.problems)))]

    async def _stale_button(self, update: Update,
                            context: ContextTypes.DEFAULT_TYPE) -> None:
        if update.callback_query is not None:
            who = self._who(update)
            await _answer(update.callback_query,
                          translator(who.locale).gettext("This button no longer works."))

    # commands

    async def _start(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        message = update.effective_message
        if message is None:
            return
        who = self._who(update)
        t = translator(who.locale)
        code = (context.args or [""])[0]
        if code and who.staff is None:
            joined = links.join(self.engine, code, str(message.chat.id), self.clock.now())
            if joined is None:
                await self._send(update, who, [Reply(t.gettext(
                    "This invite code is unknown, used or expired. Ask your contact at the "
                    "city for a new one."))])
                return
            who = self._who(update)
            t = translator(who.locale)
            await self._send(update, who, [Reply(t.gettext(
                "Welcome, %(name)s. You are now connected to the city's crisis "
                "communication team. When something happens in your community, briefings "
                "arrive here; please confirm each one with its buttons.")
                % t.isolate({"name": esc(joined.name)})), self._language_menu(who, t)])
            return
        if who.staff is not None and self.desk is not None:
            await self._send(update, who, self.desk.start(who.staff, t))
        elif who.intermediary:
            await self._send(update, who, [Reply(t.gettext(
                "You are connected. Briefings arrive here; /language changes their language; "
                "/concern followed by a message tells the city what your community worries "
                "about."))])
        else:
            await self._send(update, who, [Reply(self._refusal(t))])

    async def _help(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        who = self._who(update)
        self.asking.pop(who.id, None)
        await self._start(update, context)

    async def _language(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        who = self._who(update)
        t = translator(who.locale)
        if not who.intermediary:
            await self._send(update, who, [Reply(self._refusal(t) if who.staff is None else
                                                 t.gettext("Staff languages are set in the "
                                                           "staff directory."))])
            return
        await self._send(update, who, [self._language_menu(who, t)])

    def _language_menu(self, who: Sender, t: Translator) -> Reply:
        entry = self.engine.directory.contact(who.id)
        mine = tuple(entry.languages) if entry else ()
        offered = list(dict.fromkeys((*mine, *self.languages)))[:12]
        rows = tuple((Button(autonym(lang), "lang", {"lang": lang}),) for lang in offered)
        return Reply(t.gettext("In which language do you want to receive briefings?"), rows)

    async def _staff_command(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        message = update.effective_message
        if message is None or not message.text:
            return
        who = self._who(update)
        t = translator(who.locale)
        if who.staff is None or self.desk is None or self.wizard is None:
            await self._send(update, who, [Reply(self._refusal(t))])
            return
        self.asking.pop(who.id, None)
        command = message.text.split()[0].lstrip("/").split("@")[0].lower()
        args = " ".join(context.args or [])
        desk, staff = self.desk, who.staff
        try:
            if command == "activate":
                replies = self.wizard.begin(staff, t)
            elif command == "log":
                replies = desk.log(staff, t, args)
            elif command in ("escalate", "standdown"):
                event = "stand_down" if command == "standdown" else "escalate"
                replies = desk.event(staff, t, event, args.strip())
            elif command == "playbooks":
                replies = desk.playbooks(staff, t)
            elif command in drilldesk.CONTROLS:
                replies = drilldesk.control(desk, staff, t, command, args.strip())
            elif command == "report":
                replies = drilldesk.report(desk, staff, t, args.strip())
            else:
                replies = {"status": desk.status, "tasks": desk.tasks,
                           "approvals": desk.approvals}[command](staff, t, args.strip())
        except BadInput as exc:
            replies = [Reply("⚠ " + esc("; ".join(p.message for p in exc.problems)))]
        await self._send(update, who, replies)

    async def _unknown_command(self, update: Update,
                               context: ContextTypes.DEFAULT_TYPE) -> None:
        who = self._who(update)
        t = translator(who.locale)
        await self._send(update, who, [Reply(t.gettext(
            "I do not know this command. /help lists what I can do.") if who.staff or
            who.intermediary else self._refusal(t))])

    # intermediaries and residents

    async def _concern(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        message = update.effective_message
        if message is None:
            return
        who = self._who(update)
        text = " ".join(context.args or [])
        if not text.strip():
            await _say(message, phrase("concern_empty", who.locale, command="/concern"))
            return
        await self._record(update, who, text)

    async def _reply(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        message = update.effective_message
        if message is None or message.reply_to_message is None:
            return
        who = self._who(update)
        with self.engine.store.begin() as tx:
            briefing = tx.replied_to("telegram", str(message.chat.id),
                                     str(message.reply_to_message.message_id))
        if briefing is None:
            await self._text(update, context)
            return
        await self._record(update, who, message.text or "", briefing.incident_id,
                           briefing.step_id)

    async def _text(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        """Plain text: the answer to the question a staff member was asked, or a hint."""
        message = update.effective_message
        if message is None:
            return
        who = self._who(update)
        t = translator(who.locale)
        ask = self.asking.pop(who.id, None)
        if who.staff is not None and ask is not None and self.desk and self.wizard:
            text = message.text or ""
            if ask.action == "inject.answer":
                replies = drilldesk.answer(self.desk, who.staff, t, ask.payload, text)
            elif ask.action.startswith("act."):
                replies = self.wizard.answer(who.staff, t, ask, text)
            else:
                replies = self.desk.answer(who.staff, t, ask, text)
            await self._send(update, who, replies)
        elif who.staff is not None:
            await self._send(update, who, [Reply(t.gettext(
                "To write in the incident log, send /log followed by the text. /help lists "
                "the commands."))])
        else:
            await _say(message, phrase("concern_empty", who.locale, command="/concern"))

    async def _record(self, update: Update, who: Sender, text: str,
                      incident_id: str | None = None, step_id: str = "") -> None:
        message = update.effective_message
        assert message is not None
        logged = listening.concern(self.engine, text, sender=who.id, name=who.name,
                                   via="telegram", now=self.clock.now(), incident_id=incident_id,
                                   step_id=step_id, ref=f"telegram:{update.update_id}")
        await _say(message, phrase("thanks_concern", who.locale) if logged else
                   phrase("no_incident", who.locale, hotline=self.hotline))

    # helpers

    def _who(self, update: Update) -> Sender:
        chat = update.effective_chat
        user = update.effective_user
        return self.sender(chat.id if chat else (user.id if user else 0), user)

    def _refusal(self, t: Translator) -> str:
        return t.gettext(REFUSAL) % t.isolate({"hotline": self.hotline})

    async def _send(self, update: Update, who: Sender, replies: Sequence[Reply]) -> None:
        """Send the replies in the sender's chat, buttons as server-side tokens."""
        chat = update.effective_chat
        if chat is None:
            return
        for reply in replies:
            markup = None
            if reply.buttons:
                with self.engine.store.begin() as tx:
                    now = self.clock.now()
                    markup = InlineKeyboardMarkup([[InlineKeyboardButton(
                        b.label, callback_data=buttons.make(tx, who.id, b.action, b.payload,
                                                            now)) for b in row]
                        for row in reply.buttons])
            if reply.document is not None:
                name, content = reply.document
                await _retry(partial(self.app.bot.send_document, chat.id,
                                     InputFile(content, filename=name), caption=reply.text,
                                     parse_mode=ParseMode.HTML))
                continue
            parts = split_html(reply.text)
            for number, part in enumerate(parts):
                await _retry(partial(self.app.bot.send_message, chat.id, part,
                                     parse_mode=ParseMode.HTML,
                                     reply_markup=markup if number == len(parts) - 1 else None))
            if reply.ask is not None:
                self.asking[who.id] = reply.ask

    async def _error(self, update: object, context: ContextTypes.DEFAULT_TYPE) -> None:
        # Log the kind only: PTB's errors can carry request URLs, and those carry the token.
        log.warning("telegram bot: %s while handling an update", type(context.error).__name__)


class _Redact(logging.Filter):
    """Replaces the token in a record that would show it."""

    def __init__(self, token: str) -> None:
        super().__init__()
        self.token = token

    def filter(self, record: logging.LogRecord) -> bool:
        text = record.getMessage()
        if self.token in text:
            record.msg, record.args = text.replace(self.token, "[token]"), None
        return True


def hide_token(token: str) -> None:
    """Keep the token out of the logs: transport logs stay at WARNING, and are redacted.

    httpx logs each request's URL, and Telegram's URLs carry the token.
    """
    for name in ("httpx", "httpcore"):
        logger = logging.getLogger(name)
        if logger.getEffectiveLevel() < logging.WARNING:
            logger.setLevel(logging.WARNING)
        if not any(isinstance(f, _Redact) and f.token == token for f in logger.filters):
            logger.addFilter(_Redact(token))


async def _retry(send: Callable[[], Awaitable[object]], tries: int = 4) -> None:
    """Send an answer, waiting out flood control (1 message/s a chat) and brief outages.

    A timed-out answer is not repeated: Telegram may have delivered it, and an answer twice is
    worse than a user asking again.
    """
    for attempt in range(tries):
        try:
            await send()
            return
        except RetryAfter as exc:
            if attempt == tries - 1:
                raise
            wait = exc.retry_after
            await asyncio.sleep(wait.total_seconds() if isinstance(wait, timedelta)
                                else float(wait))
        except (TimedOut, BadRequest):
            raise  # may have arrived, or never will
        except NetworkError:
            if attempt == tries - 1:
                raise
            await asyncio.sleep(0.2 * 2 ** attempt)


async def _answer(query: CallbackQuery, text: str | None = None) -> None:
    """Stop the button's spinner; if Telegram fails to hear it, the tap still counts."""
    try:
        await _retry(partial(query.answer, text))
    except TelegramError as exc:
        log.warning("telegram bot: %s answering a button", type(exc).__name__)


async def _say(message: Message, text: str) -> None:
    """Answer in the sender's chat as plain text."""
    await _retry(partial(message.reply_text, text))
