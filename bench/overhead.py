"""Engine overhead: activation to the last recorded row, against a bare python-telegram-bot loop.

Run: .venv/bin/python bench/overhead.py [--quick]      (prints the section's figures)
Child mode (one measurement in a fresh process):
     .venv/bin/python bench/overhead.py child SIZE ROUNDS [sqlite|postgresql]
Server mode (the fake Bot API in a process of its own, limits off; prints its URL):
     .venv/bin/python bench/overhead.py serve

Limits are off on both sides (the fake's and our Pacer's), so what is measured is the work
around each request: the engine's render, enqueue, claim, send and record, against a loop that
only calls `Bot.send_message` with the same texts to the same chats, as many at a time.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import PG_URL, Figure, Section, in_child, report
from fanout import database, pg_reachable

SIZES = {False: 2_000, True: 300}
"""Recipients for the full and the quick run."""
ROUNDS = {False: 3, True: 1}
"""Each side runs this many times, alternating; the best of each counts."""
GOAL = 0.8
CONCURRENCY = 32
"""`DispatchSettings.concurrency`'s default: the baseline sends as many at a time."""
TOKEN = "123456:BENCH"
PLAYBOOK = """\
id: overhead-bench
title: Overhead benchmark
kind: other
languages: [en]
roles:
  lead: {title: Lead, duties: [Lead], approves: true}
steps:
  - id: brief
    message: briefing
    to: {intermediaries: {community: everyone}}
    at: 0m
"""
TEMPLATE = ("<b>Update from {{ city.name }}</b>\n\nAvoid Market Square until further notice. "
            "Please share the city's advice with your community.\n")


@contextmanager
def fake_server() -> Iterator[str]:
    """The fake Bot API, limits off, in a process of its own: it does not share our GIL."""
    server = subprocess.Popen([sys.executable, __file__, "serve"], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    try:
        assert server.stdout is not None
        yield server.stdout.readline().strip()
    finally:
        server.communicate(timeout=30)  # closing its stdin stops it


def serve() -> None:
    """Serve until standard input closes."""
    from playbook.fake_telegram import FakeBotApi

    with FakeBotApi(TOKEN, enforce_limits=False) as api:
        print(api.base_url, flush=True)
        sys.stdin.read()


def _directory(size: int) -> Any:
    from playbook.directory import Directory, Intermediary, Staff

    return Directory(
        staff=(Staff(id="lee", name="Lee", roles=("lead",), languages=("en",),
                     telegram_chat_id="5001"),),
        intermediaries=tuple(
            Intermediary(id=f"p{i:06d}", name=f"Person {i}", languages=("en",),
                         communities=("everyone",), telegram_chat_id=str(100_000 + i))
            for i in range(size)))


def ours(folder: Path, url: str, base_url: str, size: int) -> tuple[float, list[tuple[str, str]]]:
    """Activate, then drain the outbox: seconds, and the (chat, text) pairs that were sent."""
    from playbook.channels.telegram import TelegramChannel
    from playbook.clock import SystemClock
    from playbook.delivery import Limits
    from playbook.dispatch import Dispatcher
    from playbook.engine import Engine
    from playbook.loader import load_checked
    from playbook.migrations import migrate
    from playbook.store import SqlStore

    city = {"name": "Riverton"}
    checked = load_checked(folder / "protocols" / "overhead.yaml", city=city,
                           timezone=ZoneInfo("UTC"))
    store = SqlStore(url)
    migrate(store)
    engine = Engine(store, _directory(size))
    channel = TelegramChannel(TOKEN, base_url=base_url)
    channel.limits = Limits()  # the fake's limits are off, and so are ours
    dispatcher = Dispatcher(store, {"telegram": channel}, SystemClock())

    async def main() -> float:
        try:
            started = time.perf_counter()
            incident = engine.activate(checked.playbook, checked.templates, city=city,
                                       timezone="UTC", params={}, actor="lee",
                                       now=datetime.now(UTC))
            await dispatcher.drain()
            seconds = time.perf_counter() - started
        finally:
            await dispatcher.aclose()
        with store.begin() as tx:
            rows = tx.outbox(incident.id)
        if {r.state for r in rows} != {"sent"} or len(rows) != size + 1:
            raise RuntimeError(f"not everything was sent: {len(rows)} rows")
        sent.extend((r.delivery.address, r.delivery.text) for r in rows)
        return seconds

    sent: list[tuple[str, str]] = []
    try:
        return asyncio.run(main()), sent
    finally:
        store.dispose()


def bare(base_url: str, messages: list[tuple[str, str]]) -> float:
    """`Bot.send_message` for each message, CONCURRENCY at a time: seconds."""
    from telegram import Bot, LinkPreviewOptions
    from telegram.constants import ParseMode
    from telegram.request import HTTPXRequest

    from playbook.channels.telegram import TelegramChannel  # noqa: F401  (PTB_TIMEDELTA set)

    no_preview = LinkPreviewOptions(is_disabled=True)

    async def main() -> float:
        t = 10.0  # TelegramChannel's HTTP settings
        request = HTTPXRequest(connection_pool_size=128, read_timeout=t, write_timeout=t,
                               connect_timeout=t, pool_timeout=t)
        gate = asyncio.Semaphore(CONCURRENCY)
        started = time.perf_counter()
        bot = Bot(TOKEN, base_url=base_url, request=request)

        async def one(chat: str, text: str) -> None:
            async with gate:
                await bot.send_message(chat, text, parse_mode=ParseMode.HTML,
                                       link_preview_options=no_preview)

        async with bot:  # getMe, as the channel's first send does
            await asyncio.gather(*(one(chat, text) for chat, text in messages))
        return time.perf_counter() - started

    return asyncio.run(main())


def measure(size: int, rounds: int, kind: str) -> dict[str, Any]:
    """The child's work: alternate rounds of ours and the bare loop against one fake server."""
    mine: list[float] = []
    theirs: list[float] = []
    messages: list[tuple[str, str]] = []
    with tempfile.TemporaryDirectory(prefix="pb-overhead-") as tmp, fake_server() as base_url:
        folder = Path(tmp)
        (folder / "protocols").mkdir()
        (folder / "protocols" / "overhead.yaml").write_text(PLAYBOOK, encoding="utf-8")
        (folder / "message_templates" / "briefing").mkdir(parents=True)
        (folder / "message_templates" / "briefing" / "en.j2").write_text(TEMPLATE, "utf-8")
        for n in range(rounds):
            run_dir = folder / f"round{n}"
            run_dir.mkdir()
            with database(kind, run_dir) as url:
                seconds, messages = ours(folder, url, base_url, size)
            mine.append(seconds)
            theirs.append(bare(base_url, messages))
    return {"size": size, "db": kind, "messages": len(messages), "ours": mine, "bare": theirs}


def _rates(result: Mapping[str, Any]) -> tuple[float, float]:
    n = int(result["messages"])
    return n / min(result["ours"]), n / min(result["bare"])


def run(quick: bool) -> Section:
    """SQLite always, PostgreSQL when it answers; each in a fresh child process."""
    size, rounds = SIZES[quick], ROUNDS[quick]
    results: list[dict[str, Any]] = [
        in_child("overhead", "child", str(size), str(rounds), "sqlite")]
    pg_note = ""
    if pg_reachable():
        results.append(in_child("overhead", "child", str(size), str(rounds), "postgresql"))
    else:
        pg_note = f" PostgreSQL was not reachable at {PG_URL}, so it is left out."
    section = Section(
        title="Engine overhead",
        method=(
            f"One activation of a playbook whose one message step (at `0m`, no approval needed "
            f"for intermediaries) goes to {size:,} intermediaries on Telegram, plus the lead's "
            "role briefing, then `Dispatcher.drain()` over the real `TelegramChannel` "
            "(python-telegram-bot) with default settings (claims of 100, "
            f"{CONCURRENCY} sends at a time). The fake Bot API runs in a process of its own "
            "with its limits off, and the channel's `limits` are emptied so our Pacer does "
            "not hold anything back either: what is left is the engine's own work around each "
            "request — render, enqueue, claim, send, record (one outbox update and one "
            "hash-chained log entry per row). Time: from the call to `Engine.activate` to the "
            "end of `drain()`, when the last row is recorded as sent. Baseline, in the same "
            "process against the same server: python-telegram-bot's `Bot.send_message` for "
            f"the same texts to the same chats, {CONCURRENCY} at a time (an "
            "`asyncio.Semaphore` over one `asyncio.gather`), the same HTTP pool (128), its "
            f"`getMe` included as the channel's is. {rounds} round(s) each, alternating; the "
            "best of each counts. Each database in a fresh child process (SQLite in a "
            "temporary folder; PostgreSQL in a fresh database, dropped afterwards)." + pg_note),
        table=[["database", "messages", "engine s (each round)", "bare PTB s (each round)",
                "engine msg/s", "bare msg/s", "ratio"]])
    for r in results:
        mine, theirs = _rates(r)
        ratio = mine / theirs
        section.table.append([
            str(r["db"]), f"{int(r['messages']):,}",
            ", ".join(f"{s:.2f}" for s in r["ours"]), ", ".join(f"{s:.2f}" for s in r["bare"]),
            f"{mine:,.0f}", f"{theirs:,.0f}", f"{ratio:.2f}"])
        section.figures.append(Figure(
            f"engine end-to-end / bare PTB send loop ({r['db']}, {int(r['messages']):,} "
            "messages)", f"{ratio:.2f} ({mine:,.0f} vs {theirs:,.0f} msg/s)", f">= {GOAL}",
            ratio >= GOAL))
    return section


def main(argv: list[str]) -> None:
    if argv[:1] == ["serve"]:
        serve()
        return
    if argv[:1] == ["child"]:
        print(json.dumps(measure(int(argv[1]), int(argv[2]),
                                 argv[3] if len(argv) > 3 else "sqlite")))
        return
    report(run("--quick" in argv))


if __name__ == "__main__":
    main(sys.argv[1:])
