"""Putting it together from the settings, and the long-running service (`playbook run`).

The service runs the scheduler and the dispatcher until SIGINT or SIGTERM, then finishes and
records the batch in flight before it exits.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
import signal
import socket
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TextIO

from playbook import links
from playbook.bot import TelegramBot, Webhook
from playbook.channels.cap import CapChannel
from playbook.channels.console import ConsoleChannel, FileChannel
from playbook.channels.email import EmailChannel
from playbook.channels.telegram import TelegramChannel
from playbook.channels.webhook import WebhookChannel
from playbook.clock import Clock, SystemClock
from playbook.config import Settings
from playbook.delivery import Channel, Delivery
from playbook.desk import Desk, Library
from playbook.directory import Directory
from playbook.directoryfile import load_directory
from playbook.dispatch import Dispatcher, DispatchSettings
from playbook.duration import parse_duration
from playbook.engine import Engine, EngineSettings
from playbook.errors import BadInput, RuntimeFailure
from playbook.leader import Leadership
from playbook.loader import load_checked
from playbook.migrations import migrate
from playbook.model import Playbook
from playbook.ports import Tx
from playbook.render import TemplateLibrary
from playbook.scheduler import Scheduler
from playbook.store import SqlStore, redact


@dataclass
class Parts:
    """Everything a command needs, built once from the settings."""

    settings: Settings
    store: SqlStore
    directory: Directory
    engine: Engine
    channels: dict[str, Channel]
    notes: list[str] = field(default_factory=list)

    def dispatcher(self, clock: Clock, worker: str | None = None,
                   only: str | None = None) -> Dispatcher:
        """A dispatcher over this installation's channels (for one incident, with `only`)."""
        dispatcher = Dispatcher(self.store, self.channels, clock,
                                worker=worker or f"{socket.gethostname()}:{os.getpid()}",
                                settings=DispatchSettings(
                                    max_attempts=self.settings.engine.max_attempts,
                                    lease=parse_duration(self.settings.engine.lease)),
                                on_gone=self._gone, only=only)
        self.engine.on_enqueue = dispatcher.wake.set
        return dispatcher


    def _gone(self, tx: Tx, delivery: Delivery, reason: str, now: datetime) -> None:
        if delivery.channel == "telegram":
            links.gone(self.engine, tx, delivery.recipient_id, delivery.address,
                       delivery.incident_id, reason, now)


def load_library(settings: Settings) -> tuple[Library, list[str]]:
    """Every valid playbook in the protocols folder by id; the broken ones' problems."""
    folder = settings.base_dir / settings.paths.protocols
    library: dict[str, tuple[Playbook, TemplateLibrary]] = {}
    problems: list[str] = []
    files = sorted([*folder.rglob("*.yaml"), *folder.rglob("*.yml")]) if folder.is_dir() else []
    for path in files:
        try:
            checked = load_checked(path, city=settings.city_values(), timezone=settings.zone,
                                   templates_root=settings.templates_root())
        except BadInput as exc:
            problems.append(str(exc.problems[0]))
            continue
        library.setdefault(checked.playbook.id, (checked.playbook, checked.templates))
    return library, problems


def webhook(settings: Settings) -> Webhook | None:
    """Webhook mode's settings, or None for long polling; the secret must be set."""
    telegram = settings.telegram
    if telegram.mode != "webhook":
        return None
    secret = os.environ.get(telegram.secret_env, "")
    if not re.fullmatch(r"[A-Za-z0-9_-]{16,256}", secret):
        raise BadInput.one("[telegram] secret_env", f"${telegram.secret_env} must hold the "
                           "webhook secret: 16 to 256 letters, digits, _ or -",
                           f"export {telegram.secret_env}=$(openssl rand -hex 32)")
    return Webhook(telegram.webhook_url, secret, telegram.listen, telegram.port, telegram.path)


def quiet_transport_logs() -> None:
    """Keep transport logs at WARNING: httpx logs request URLs, which carry the bot token."""
    logging.getLogger("httpx").setLevel(logging.WARNING)
    logging.getLogger("httpcore").setLevel(logging.WARNING)


def build(settings: Settings, *, out: TextIO | None = None,
          directory: Directory | None = None) -> Parts:
    """Open (and migrate) the database, read the directory, set up the channels."""
    quiet_transport_logs()
    store = SqlStore(settings.database_url())
    migrate(store)
    if directory is None:
        directory = load_directory(settings.directory_files())
    engine = Engine(store, directory, EngineSettings(
        approval_timeout=parse_duration(settings.engine.approval_timeout),
        late_after=parse_duration(settings.engine.late_after),
        cap_sender=settings.output.cap_sender))
    with store.begin() as tx:
        links.relink(engine, tx.links())
    channels, notes = build_channels(settings, out)
    return Parts(settings, store, directory, engine, channels, notes)


def build_channels(settings: Settings, out: TextIO | None = None,
                   ) -> tuple[dict[str, Channel], list[str]]:
    """The configured channels; an unconfigured one writes to the console, and says so."""
    console = ConsoleChannel(out, settings.path(settings.output.console_dir))
    channels: dict[str, Channel] = {
        "console": console, "file": FileChannel(settings.path(settings.output.files_dir)),
        "cap": CapChannel(settings.path(settings.output.cap_dir), settings.output.cap_sender),
    }
    notes = []
    token = settings.telegram_token()
    if token:
        channels["telegram"] = TelegramChannel(token, base_url=settings.telegram.base_url or None)
    else:
        channels["telegram"] = ConsoleChannel(out, console.folder, standing_in_for="telegram")
        notes.append("telegram: no token configured — Telegram messages go to the console")
    if settings.email.host:
        channels["email"] = EmailChannel(
            settings.email.host, settings.email.port, settings.email.sender,
            username=settings.email.username or None,
            password=os.environ.get(settings.email.password_env) or None,
            starttls=settings.email.starttls)
    else:
        channels["email"] = ConsoleChannel(out, console.folder, standing_in_for="email")
        notes.append("email: no SMTP host configured — e-mails go to the console")
    secret = os.environ.get(settings.webhook.secret_env)
    if secret:
        channels["webhook"] = WebhookChannel(secret.encode("utf-8"))
    else:
        notes.append(f"webhook: ${settings.webhook.secret_env} is not set — webhooks are off")
    return channels, notes


RETRY_TICK = timedelta(seconds=2)
"""How soon a tick that found the database away is tried again."""


class Service:
    """`playbook run`: the scheduler wakes the engine, the dispatcher sends, until a signal.

    Several may run on one PostgreSQL database: all of them send, one leads the schedule.
    """

    def __init__(self, parts: Parts, clock: Clock | None = None,
                 log: Callable[[str], None] | None = None, lead_every: float = 2.0) -> None:
        self.parts = parts
        self.clock = clock or SystemClock()
        self.dispatcher = parts.dispatcher(self.clock)
        self.scheduler: Scheduler | None = None
        self.leadership = Leadership(parts.store)
        self.lead_every = lead_every
        self.stop = asyncio.Event()
        self.log = log or (lambda line: print(line, file=sys.stderr, flush=True))

    async def _tick(self) -> datetime | None:
        engine = self.parts.engine
        try:
            fired = engine.tick(self.clock.now())
            if fired:
                self.log(f"fired {fired} step(s)")
                self.dispatcher.wake.set()
            return engine.next_wake()
        except RuntimeFailure as exc:
            # What was due stays due in the database: look again shortly.
            self.log(f"schedule: {exc}; trying again in {RETRY_TICK.total_seconds():.0f} s")
            return self.clock.now() + RETRY_TICK

    def _bot(self) -> TelegramBot | None:
        """The Telegram bot, when a token is configured."""
        settings = self.parts.settings
        token = settings.telegram_token()
        if not token:
            return None
        library, problems = load_library(settings)
        for problem in problems:
            self.log(f"telegram: playbook left out of /activate: {problem}")
        desk = Desk(self.parts.engine, library, city=settings.city_values(),
                    timezone=settings.city.timezone, now=self.clock.now)
        languages = sorted({lang for pb, _ in library.values() for lang in pb.languages})
        return TelegramBot(self.parts.engine, token, self.clock, hotline=settings.city.hotline,
                           desk=desk, base_url=settings.telegram.base_url or None,
                           webhook=webhook(settings), languages=languages)

    async def run(self) -> None:
        """Run until SIGINT or SIGTERM (or `stop` is set); finish and record what is in flight."""
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(sig, self.stop.set)
        for note in self.parts.notes:
            self.log(note)
        self.log(f"playbook run: database {redact(self.parts.store.url)}, "
                 f"channels {', '.join(sorted(self.parts.channels))}")
        bot = self._bot()  # before anything starts: a bad webhook secret stops us cleanly
        sending = asyncio.create_task(self.dispatcher.run(self.stop, on_error=self._db_down))
        leading = asyncio.create_task(self._lead(bot))
        stopping = asyncio.create_task(self.stop.wait())
        try:
            if bot is not None and bot.webhook is not None:
                await self._start_bot(bot)  # every process answers the webhook it is sent
            # A task that ends by itself has failed: stop, so that systemd starts us again.
            await asyncio.wait([stopping, sending, leading], return_when=asyncio.FIRST_COMPLETED)
        finally:
            self.stop.set()
            await asyncio.wait([stopping, leading])
            if bot is not None:
                await bot.stop()
            await asyncio.wait([sending])  # the batch in flight is sent and recorded
            await self.dispatcher.aclose()
            self.parts.store.dispose()
            for sig in (signal.SIGINT, signal.SIGTERM):
                with contextlib.suppress(NotImplementedError, RuntimeError):
                    loop.remove_signal_handler(sig)
            self.log(f"stopped: {self.dispatcher.stats.sent} sent, "
                     f"{self.dispatcher.stats.retried} to retry, {self.dispatcher.stats.dead} dead")
        for task in (sending, leading):
            if task.exception() is not None:
                raise RuntimeFailure(f"playbook run stopped on an error: {task.exception()}")

    def _peek(self) -> datetime | None:
        try:
            return self.parts.engine.next_wake()
        except RuntimeFailure:
            return None  # the next tick says so, and tries again

    def _db_down(self, exc: RuntimeFailure) -> None:
        self.log(f"sending: {exc}; waiting for the database")

    async def _start_bot(self, bot: TelegramBot) -> None:
        await bot.start()
        how = f"webhook {bot.webhook.url}" if bot.webhook else "long polling"
        self.log(f"telegram: the bot is answering ({how})")

    async def _lead(self, bot: TelegramBot | None) -> None:
        """Run the schedule (and poll Telegram) while this process holds the lead.

        Telegram gives updates to one poller only, so a polling bot follows the schedule's
        leader; a webhook is answered by whichever process the reverse proxy picks. Nothing
        here gives up: a database or Bot API that cannot be reached is asked again next round.
        """
        polls = bot is not None and bot.webhook is None
        leads, polling, first = False, False, True
        try:
            while not self.stop.is_set():
                held = self.leadership.hold()
                if held and not leads:
                    self.scheduler = Scheduler(self._tick, self._peek)
                    await self.scheduler.start()
                    if self.leadership.shared:
                        self.log("schedule: this process leads (it runs the schedule)")
                elif leads and not held:
                    self._follow()
                    self.log("schedule: lost the lead (its database connection broke); "
                             "sending only until it is back")
                elif first and not held:
                    self.log("schedule: another process leads; this one sends, and takes over "
                             "the schedule if that one stops")
                leads, first = held, False
                if polls and bot is not None and held != polling:
                    polling = await self._poll(bot, held)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.stop.wait(), self.lead_every)
        finally:
            self._follow()
            self.leadership.release()

    async def _poll(self, bot: TelegramBot, start: bool) -> bool:
        """Start or stop polling Telegram; whether it polls now."""
        if not start:
            await bot.stop_receiving()
            return False
        try:
            await self._start_bot(bot)
            return True
        except RuntimeFailure as exc:
            self.log(f"{exc}; trying again in {self.lead_every:.0f} s")
            return False

    def _follow(self) -> None:
        if self.scheduler is not None:
            self.scheduler.shutdown()
            self.scheduler = None
