"""Several `playbook run` processes on one PostgreSQL database: shared sending, one scheduler.

Real processes, a real database and the real python-telegram-bot client against the fake Bot
API on loopback (each request takes 20 ms, so a batch is in flight long enough to share).
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import pytest

from playbook.config import load_settings
from playbook.directoryfile import load_directory
from playbook.engine import Engine
from playbook.fake_telegram import FakeBotApi
from playbook.loader import load_checked
from playbook.store import SqlStore
from stores import fresh_url, open_store

N = 600
TOKEN = "4242:SCALE"
PLAYBOOK = """\
id: fan-out
title: Fan-out
kind: other
languages: [en]
roles:
  lead: {title: Lead, duties: [Lead], approves: true}
steps:
  - id: brief
    message: briefing
    to: {intermediaries: {community: everyone}}
    at: 0m
  - id: later
    task: Check the fan-out
    role: lead
    at: 8s
"""


@pytest.fixture
def pg_url(tmp_path: Path) -> Iterator[str]:
    """A fresh PostgreSQL database (scale-out is PostgreSQL's; skipped where unreachable)."""
    yield from fresh_url("postgresql", tmp_path)


@pytest.fixture
def api() -> Iterator[FakeBotApi]:
    """The fake Bot API, limits off: the processes' own pacing is what is measured."""
    with FakeBotApi(TOKEN, enforce_limits=False, latency=0.02) as server:
        yield server


def _setup(tmp: Path, db_url: str, base_url: str) -> Path:
    (tmp / "protocols").mkdir()
    (tmp / "protocols" / "fan_out.yaml").write_text(PLAYBOOK, encoding="utf-8")
    (tmp / "message_templates" / "briefing").mkdir(parents=True)
    (tmp / "message_templates" / "briefing" / "en.j2").write_text(
        "<b>Briefing</b> for {{ city.name }}: please share the city's advice.\n", "utf-8")
    (tmp / "staff.yaml").write_text(
        "staff:\n  - {id: lee, name: Lee, roles: [lead], languages: [en], email: lee@x.example}\n",
        encoding="utf-8")
    rows = ["id,name,communities,languages,telegram_chat_id"]
    rows += [f"p{i:04d},Person {i},everyone,en,{10_000 + i}" for i in range(N)]
    (tmp / "intermediaries.csv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    config = tmp / "playbook.toml"
    config.write_text(f"""
[city]
name = "Riverton"
[database]
url = "{db_url}"
[directory]
staff = "staff.yaml"
intermediaries = "intermediaries.csv"
[engine]
lease = "5s"
late_after = "1s"
[telegram]
base_url = "{base_url}"
""", encoding="utf-8")
    return config


def _activate(config: Path) -> tuple[SqlStore, str]:
    settings = load_settings(config)
    checked = load_checked(config.parent / "protocols" / "fan_out.yaml",
                           city=settings.city_values(), timezone=settings.zone)
    store = open_store(settings.database.url)
    engine = Engine(store, load_directory(settings.directory_files()))
    incident = engine.activate(checked.playbook, checked.templates, city=settings.city_values(),
                               timezone="UTC", params={}, actor="lee", now=datetime.now(UTC))
    return store, incident.id


@dataclass
class Service:
    """One `playbook run` process and the lines it wrote to stderr, with when they came."""

    process: subprocess.Popen[str]
    lines: list[tuple[float, str]] = field(default_factory=list)
    reader: threading.Thread | None = None

    def said(self, text: str) -> float | None:
        """When the process first wrote a line containing `text` (monotonic seconds)."""
        return next((at for at, line in list(self.lines) if text in line), None)

    def sent(self) -> int:
        """How many messages the process said it sent when it stopped."""
        line = next(line for _, line in self.lines if line.startswith("stopped:"))
        return int(re.match(r"stopped: (\d+) sent", line)[1])  # type: ignore[index]

    def stop(self, how: signal.Signals = signal.SIGTERM) -> int:
        """Signal the process (SIGTERM: finish what it holds) and wait until it ends."""
        if self.process.poll() is None:
            self.process.send_signal(how)
        code = self.process.wait(timeout=30)
        if self.reader is not None:
            self.reader.join(10)
        assert self.process.stderr is not None
        self.process.stderr.close()
        return code


def _start(config: Path) -> Service:
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "PLAYBOOK_TELEGRAM_TOKEN": TOKEN}
    env.pop("PLAYBOOK_DATABASE_URL", None)
    process = subprocess.Popen([sys.executable, "-m", "playbook", "run", "--config",
                                str(config)], cwd=config.parent, env=env, text=True,
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    service = Service(process)

    def read() -> None:
        assert process.stderr is not None
        for line in process.stderr:
            service.lines.append((time.monotonic(), line.rstrip()))

    service.reader = threading.Thread(target=read, daemon=True)
    service.reader.start()
    return service


def _wait(what: Callable[[], object], seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while not what():
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting")
        time.sleep(0.02)


def _telegram_sent(store: SqlStore, incident: str) -> int:
    with store.begin() as tx:
        return sum(1 for r in tx.outbox(incident)
                   if r.delivery.channel == "telegram" and r.state == "sent")


LEADS, FOLLOWS = "this process leads", "another process leads"


def test_three_processes_share_the_outbox_and_send_each_message_once(
        pg_url: str, api: FakeBotApi, tmp_path: Path) -> None:
    """Three services on one database all send a 600-message fan-out; nobody gets two."""
    config = _setup(tmp_path, pg_url, api.base_url)
    services = [_start(config)]
    _wait(lambda: services[0].said(LEADS), 30)
    services += [_start(config), _start(config)]
    try:
        _wait(lambda: all(s.said(FOLLOWS) for s in services[1:]), 30)
        store, incident = _activate(config)

        _wait(lambda: _telegram_sent(store, incident) == N, 60)
    finally:
        codes = [s.stop() for s in services]
    assert codes == [0, 0, 0]
    assert len(api.sent) == N
    assert len({s.chat_id for s in api.sent}) == N
    assert api.stats.duplicates == 0
    with store.begin() as tx:
        rows = tx.outbox(incident)
    assert sum(r.reclaimed for r in rows) == 0
    shares = [s.sent() for s in services]
    assert all(shares), shares  # every process sent a share
    assert sum(shares) == len(rows)
    assert sum(1 for s in services if s.said(LEADS)) == 1
    print(f"\nshares of {len(rows)} messages by process: {shares}")
    store.dispose()


def test_a_follower_takes_over_the_schedule_within_seconds_of_the_leader_dying(
        pg_url: str, api: FakeBotApi, tmp_path: Path) -> None:
    """SIGKILL the leader: another process leads within 3 s and fires the next step on time."""
    config = _setup(tmp_path, pg_url, api.base_url)
    leader = _start(config)
    _wait(lambda: leader.said(LEADS), 30)
    follower = _start(config)
    try:
        _wait(lambda: follower.said(FOLLOWS), 30)
        store, incident = _activate(config)
        _wait(lambda: len(api.sent) >= 50, 30)
        killed = time.monotonic()
        leader.stop(signal.SIGKILL)
        _wait(lambda: follower.said(LEADS), 10)
        took_over = (follower.said(LEADS) or 0.0) - killed

        def later_fired() -> bool:
            with store.begin() as tx:
                return any(r.step_id == "later" and r.state == "fired"
                           for r in tx.schedule(incident))
        _wait(later_fired, 30)
        _wait(lambda: _telegram_sent(store, incident) == N, 60)
    finally:
        leader.stop(signal.SIGKILL)
        code = follower.stop()
    assert code == 0
    assert took_over < 3.0
    with store.begin() as tx:
        schedule = {r.step_id: r for r in tx.schedule(incident)}
        late = [e for e in tx.events(incident) if e.kind == "late"]
        counts = tx.outbox_counts(incident)
    later = schedule["later"]
    assert later.fired_at is not None
    assert (later.fired_at - later.due_at).total_seconds() < 1.0
    assert late == []
    assert set(counts) == {"sent"}
    assert len({s.chat_id for s in api.sent}) == N
    print(f"\ntook over the schedule {took_over:.2f} s after the leader was killed")
    store.dispose()
