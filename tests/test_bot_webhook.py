"""Webhook mode: Telegram posts updates to the bot, which checks the secret-token header."""

from __future__ import annotations

import asyncio
import logging
import socket
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from drive import SETTINGS, Drive, checked
from playbook.bot import TelegramBot, Webhook
from playbook.desk import Desk
from playbook.fake_telegram import FakeBotApi
from playbook.store import SqlStore

ANNA = 5001
SECRET = "s3cret-" + "x" * 25
TOKEN = "987654:WEBHOOK-TOKEN-never-logged"


class Hook:
    """The fake Bot API posting to the bot's own webhook listener on loopback."""

    def __init__(self, drive: Drive, api: FakeBotApi, bot: TelegramBot, url: str,
                 loop: asyncio.AbstractEventLoop) -> None:
        self.drive, self.api, self.bot, self.url, self.loop = drive, api, bot, url, loop

    def until(self, condition: Callable[[], bool], timeout: float = 10.0) -> bool:
        """Let the bot run until `condition` holds (or time runs out)."""
        deadline = time.monotonic() + timeout
        while not condition():
            if time.monotonic() > deadline:
                return False
            self.loop.run_until_complete(asyncio.sleep(0.02))
        return True

    def post(self, body: dict[str, object], secret: str | None) -> int:
        """POST an update straight to the listener, as a forger would; the HTTP status."""
        headers = {"X-Telegram-Bot-Api-Secret-Token": secret} if secret is not None else {}

        async def send() -> int:
            async with httpx.AsyncClient() as client:
                answer = await client.post(self.url, json=body, headers=headers)
                return answer.status_code

        return self.loop.run_until_complete(send())

    def logged(self) -> int:
        with self.drive.store.begin() as tx:
            return sum(1 for i in tx.incidents() for e in tx.events(i.id) if e.kind == "logged")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def hook(store: SqlStore, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> Iterator[Hook]:
    """The bot in webhook mode behind the fake Bot API, every log record captured."""
    caplog.set_level(logging.DEBUG)
    loop = asyncio.new_event_loop()
    with FakeBotApi(TOKEN, enforce_limits=False) as api:
        drive = Drive(store, tmp_path)
        pb = checked()
        desk = Desk(drive.engine, {pb.playbook.id: (pb.playbook, pb.templates)},
                    city=SETTINGS.city_values(), timezone=SETTINGS.city.timezone,
                    now=drive.clock.now)
        port = _free_port()
        url = f"http://127.0.0.1:{port}/telegram"
        bot = TelegramBot(drive.engine, api.token, drive.clock, hotline="+43 1 555 0100",
                          desk=desk, base_url=api.base_url, timeout=5,
                          webhook=Webhook(url, SECRET, "127.0.0.1", port, "telegram"))
        api.add_chat(ANNA)
        try:
            loop.run_until_complete(bot.start())
            yield Hook(drive, api, bot, url, loop)
        finally:
            loop.run_until_complete(bot.stop())
            loop.close()


def test_updates_arrive_by_webhook_with_the_secret_and_are_answered(hook: Hook) -> None:
    """setWebhook carries the secret; the fake's posts are accepted and the bot answers."""
    assert hook.api.webhook == hook.url
    hook.api.push_message(ANNA, "/log The webhook works")
    assert hook.until(lambda: hook.logged() == 0 and any(
        "No incident is open" in m.text for m in hook.api.sent))
    hook.api.push_message(ANNA, "/playbooks")
    assert hook.until(lambda: any("hate-incident" in m.text for m in hook.api.sent))
    assert hook.api.stats.webhook_posts >= 2


def test_a_post_without_the_right_secret_is_refused_and_changes_nothing(hook: Hook) -> None:
    """A forged POST (no header, wrong header) gets 403 and no answer, no log entry."""
    update = {"update_id": 99, "message": {
        "message_id": 1, "date": 0, "chat": {"id": ANNA, "type": "private"},
        "from": {"id": ANNA, "is_bot": False, "first_name": "Anna"}, "text": "/playbooks",
        "entities": [{"type": "bot_command", "offset": 0, "length": 10}]}}
    assert hook.post(update, None) == 403
    assert hook.post(update, "wrong-secret") == 403
    hook.loop.run_until_complete(asyncio.sleep(0.3))
    assert hook.api.sent == []
    assert hook.post(update, SECRET) == 200  # the same update with the secret is answered
    assert hook.until(lambda: len(hook.api.sent) == 1)
    assert hook.post(update, SECRET) == 200  # and its replay is not
    hook.loop.run_until_complete(asyncio.sleep(0.3))
    assert len(hook.api.sent) == 1


def test_the_token_never_reaches_the_logs(hook: Hook, caplog: pytest.LogCaptureFixture) -> None:
    """Start-up, webhook posts, answers and errors log nothing that holds the token."""
    hook.api.fail_next("500", method="sendMessage")
    hook.api.push_message(ANNA, "/playbooks")
    hook.api.push_message(ANNA, "/playbooks")
    assert hook.until(lambda: len(hook.api.sent) >= 1)
    hook.loop.run_until_complete(asyncio.sleep(0.3))
    assert caplog.records
    secret = TOKEN.split(":")[1]
    for record in caplog.records:
        assert secret not in record.getMessage()
        assert secret not in str(record.exc_info or "")
