"""The engine's deliveries through the real python-telegram-bot client to our fake Bot API."""

from __future__ import annotations

import asyncio
import re
from datetime import timedelta
from pathlib import Path

from drive import START, Drive
from playbook.approvals import Approvals
from playbook.channels.telegram import TelegramChannel
from playbook.fake_telegram import FakeBotApi
from playbook.store import SqlStore


def test_briefings_reach_intermediaries_on_telegram(store: SqlStore, tmp_path: Path) -> None:
    """Approved briefings arrive in each intermediary's chat, in their language, once each."""
    loop = asyncio.new_event_loop()
    with FakeBotApi() as api:
        telegram = TelegramChannel(api.token, base_url=api.base_url, timeout=5)
        drive = Drive(store, tmp_path)
        drive.loop = loop
        drive.channels["telegram"] = telegram
        try:
            incident = drive.activate()
            drive.run_until(START + timedelta(minutes=20))
            Approvals(drive.engine).approve(incident.id, "brief-intermediaries", actor="miriam",
                                            now=drive.clock.now())
            drive.send()
        finally:
            loop.run_until_complete(telegram.aclose())
            loop.close()
        by_chat = {str(m.chat_id): m.text for m in api.sent}
        stats = api.stats
    # Telegram intermediaries of the community: imam-karim 6001 (ar), amina-s 6002 (ar-EG),
    # hassan-r 6003 (fa-AF), awa-d 6010 (fr); the others are reached by e-mail.
    assert {"6001", "6002", "6003", "6010"} <= set(by_chat)
    assert "Market Square" in by_chat["6001"]
    assert re.sub(r"<[^>]+>", "", by_chat["6001"]).startswith("\u200f")  # reads right to left
    assert stats.duplicates == 0
    assert stats.rate_limited == 0
    rows = [r for r in drive.outbox(incident.id) if r.delivery.channel == "telegram"
            and r.delivery.step_id == "brief-intermediaries"]
    assert {(r.state, r.last_error) for r in rows} == {("sent", "")}
