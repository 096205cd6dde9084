"""The bot's inbound side through the real python-telegram-bot client and our fake Bot API."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from drive import START, Drive
from playbook.approvals import Approvals
from playbook.bot import TelegramBot
from playbook.channels.telegram import TelegramChannel
from playbook.events import Event
from playbook.fake_telegram import FakeBotApi, Sent
from playbook.phrases import PHRASES
from playbook.ports import AckRow
from playbook.store import SqlStore

STEP = "brief-intermediaries"


class Line:
    """A briefed incident, the fake Bot API, and the bot polling it, in one event loop."""

    def __init__(self, drive: Drive, api: FakeBotApi, bot: TelegramBot, incident_id: str,
                 loop: asyncio.AbstractEventLoop) -> None:
        self.drive, self.api, self.bot, self.incident_id, self.loop = (
            drive, api, bot, incident_id, loop)

    def until(self, condition: Callable[[], bool], timeout: float = 10.0) -> bool:
        """Let the bot run until `condition` holds (or time runs out)."""
        deadline = time.monotonic() + timeout
        while not condition():
            if time.monotonic() > deadline:
                return False
            self.loop.run_until_complete(asyncio.sleep(0.02))
        return True

    def settle(self) -> None:
        """Let the bot take every pushed update (the fake confirms them by the next offset)."""
        self.until(lambda: not self.api._updates, timeout=5.0)
        self.loop.run_until_complete(asyncio.sleep(0.2))

    def acks(self) -> dict[str, AckRow]:
        with self.drive.store.begin() as tx:
            return {a.recipient_id: a for a in tx.acks(self.incident_id)}

    def events(self, kind: str) -> list[Event]:
        return list(self.drive.events(self.incident_id, kind))

    def briefing(self, chat: int) -> Sent:
        return next(m for m in self.api.sent if m.chat_id == chat and m.reply_markup)

    def replies(self, chat: int) -> list[str]:
        return [m.text for m in self.api.sent if m.chat_id == chat and not m.reply_markup]


@pytest.fixture
def line(store: SqlStore, tmp_path: Path) -> Iterator[Line]:
    """The hate-incident briefing sent on Telegram to Riverton's intermediaries; bot running."""
    loop = asyncio.new_event_loop()
    with FakeBotApi() as api:
        telegram = TelegramChannel(api.token, base_url=api.base_url, timeout=5)
        drive = Drive(store, tmp_path)
        drive.loop = loop
        drive.channels["telegram"] = telegram
        bot = TelegramBot(drive.engine, api.token, drive.clock, hotline="+43 1 555 0100",
                          base_url=api.base_url, timeout=5)
        try:
            incident = drive.activate()
            drive.run_until(START + timedelta(minutes=20))
            Approvals(drive.engine).approve(incident.id, STEP, actor="miriam",
                                            now=drive.clock.now())
            drive.send()
            loop.run_until_complete(bot.start())
            yield Line(drive, api, bot, incident.id, loop)
        finally:
            loop.run_until_complete(bot.stop())
            loop.run_until_complete(telegram.aclose())
            loop.close()


def test_briefings_carry_buttons_in_the_readers_language(line: Line) -> None:
    """Each briefing asks for confirmation with two buttons whose data fits in 64 bytes."""
    karim = line.briefing(6001)
    assert karim.reply_markup is not None
    buttons = [row[0] for row in karim.reply_markup["inline_keyboard"]]
    assert [b["text"] for b in buttons] == [PHRASES["button_received"]["ar"],
                                            PHRASES["button_shared"]["ar"]]
    token = line.acks()["intermediary:imam-karim"].token
    assert [b["callback_data"] for b in buttons] == [f"ack:{token}:r", f"ack:{token}:s"]
    assert all(len(b["callback_data"].encode()) <= 64 for b in buttons)
    assert PHRASES["ack_buttons"]["ar"] in karim.text


def test_a_tap_confirms_and_a_forged_or_foreign_tap_changes_nothing(line: Line) -> None:
    """Received is recorded for its own chat only; forged and borrowed buttons do nothing."""
    karim = line.acks()["intermediary:imam-karim"]
    line.api.push_callback_query(6001, f"ack:{karim.token}:s")
    assert line.until(lambda: line.acks()["intermediary:imam-karim"].relayed_at is not None)
    assert line.until(lambda: len(line.api.answers) == 1)
    assert line.api.answers[0]["text"] == PHRASES["thanks_relayed"]["ar"]
    [acked] = line.events("acked")
    assert acked.data["via"] == "telegram"

    line.api.push_callback_query(6001, "ack:ABCDEFGH:r")               # forged
    line.api.push_callback_query(6010, f"ack:{karim.token}:r")         # someone else's chat
    line.api.push_callback_query(6010, "ack:" + "A" * 60)              # nonsense
    assert line.until(lambda: len(line.api.answers) == 4)
    assert [a["text"] for a in line.api.answers[1:]] == [
        PHRASES["button_stale"]["ar"], PHRASES["button_stale"]["fr"],
        PHRASES["button_stale"]["fr"]]
    assert len(line.events("acked")) == 1
    assert line.acks()["intermediary:awa-d"].acked_at is None


def test_concern_command_is_logged_forwarded_and_thanked(line: Line) -> None:
    """`/concern` from an intermediary is logged, reaches the liaison, and is thanked in French."""
    line.api.push_message(6010, "/concern Des parents ont peur d'envoyer les enfants à l'école")
    assert line.until(lambda: len(line.events("concern")) == 1)
    [event] = line.events("concern")
    assert event.data["from"] == "intermediary:awa-d"
    assert event.data["text"].startswith("Des parents")
    assert line.until(lambda: PHRASES["thanks_concern"]["fr"] in line.replies(6010))
    line.drive.send()
    assert any("Des parents" in m.text for m in line.api.sent if m.chat_id == 5003)  # yusuf


def test_a_reply_to_a_briefing_is_a_concern_about_it(line: Line) -> None:
    """Replying to the briefing logs a concern that names the briefing's step."""
    briefing = line.briefing(6003)
    line.api.push_message(6003, "مردم از رفتن به مسجد می‌ترسند", reply_to=briefing.message_id)
    assert line.until(lambda: len(line.events("concern")) == 1)
    [event] = line.events("concern")
    assert event.step_id == STEP
    assert line.until(lambda: PHRASES["thanks_concern"]["fa-AF"] in line.replies(6003))


def test_residents_may_write_and_an_empty_concern_gets_help(line: Line) -> None:
    """A resident's concern is logged as theirs; `/concern` alone explains itself, logs nothing."""
    line.api.add_chat(424242)
    line.api.push_message(424242, "/concern", language_code="uk")
    assert line.until(lambda: any("/concern" in t for t in line.replies(424242)))
    assert not line.events("concern")
    line.api.push_message(424242, "/concern На вулиці погрожують людям", language_code="uk")
    assert line.until(lambda: len(line.events("concern")) == 1)
    [event] = line.events("concern")
    assert event.data["from"] == "resident:telegram:424242"
    assert line.until(lambda: PHRASES["thanks_concern"]["uk"] in line.replies(424242))
