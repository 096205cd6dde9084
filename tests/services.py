"""`playbook run` as a real process, for the scale-out and resilience suites.

A city folder with a fan-out playbook (N intermediaries on Telegram, a task step a few seconds
in), the process's stderr collected line by line with the time each line came.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import pytest

from playbook.config import load_settings
from playbook.directoryfile import load_directory
from playbook.engine import Engine
from playbook.loader import load_checked
from playbook.store import SqlStore
from stores import open_store

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
    at: {later}
"""


def setup(tmp: Path, db_url: str, base_url: str | None = None, *, people: int = N,
          later: str = "8s", lease: str = "5s", late_after: str = "3s") -> Path:
    """A city folder: the fan-out playbook, `people` intermediaries, a config.

    With a Bot API `base_url` the intermediaries are on Telegram; without, they have e-mail
    addresses, which the console writes one file per recipient (no SMTP host configured).
    """
    (tmp / "protocols").mkdir()
    (tmp / "protocols" / "fan_out.yaml").write_text(PLAYBOOK.replace("{later}", later),
                                                    encoding="utf-8")
    (tmp / "message_templates" / "briefing").mkdir(parents=True)
    (tmp / "message_templates" / "briefing" / "en.j2").write_text(
        "<b>Briefing</b> for {{ city.name }}: please share the city's advice.\n", "utf-8")
    (tmp / "staff.yaml").write_text(
        "staff:\n  - {id: lee, name: Lee, roles: [lead], languages: [en], email: lee@x.example}\n",
        encoding="utf-8")
    if base_url is None:
        rows = ["id,name,communities,languages,email"]
        rows += [f"p{i:04d},Person {i},everyone,en,p{i:04d}@x.example" for i in range(people)]
    else:
        rows = ["id,name,communities,languages,telegram_chat_id"]
        rows += [f"p{i:04d},Person {i},everyone,en,{10_000 + i}" for i in range(people)]
    (tmp / "intermediaries.csv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    telegram = f'[telegram]\nbase_url = "{base_url}"\n' if base_url else ""
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
lease = "{lease}"
late_after = "{late_after}"
{telegram}""", encoding="utf-8")
    return config


def activate(config: Path, request: pytest.FixtureRequest) -> tuple[SqlStore, str]:
    """Open an incident of the fan-out playbook now, as the command line would.

    The store is closed when the test ends, passed or failed: a pooled connection left to
    the garbage collector would warn in whichever test runs next.
    """
    settings = load_settings(config)
    checked = load_checked(config.parent / "protocols" / "fan_out.yaml",
                           city=settings.city_values(), timezone=settings.zone)
    store = open_store(settings.database.url)
    request.addfinalizer(store.dispose)
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

    def times(self, text: str) -> int:
        """How many lines so far contain `text`."""
        return sum(1 for _, line in list(self.lines) if text in line)

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


def start(config: Path) -> Service:
    """Start `playbook run --config CONFIG` and collect what it writes to stderr."""
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


def wait(what: Callable[[], object], seconds: float) -> None:
    """Poll until `what()` is true; fail after `seconds`."""
    deadline = time.monotonic() + seconds
    while not what():
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting")
        time.sleep(0.02)


def telegram_sent(store: SqlStore, incident: str) -> int:
    """How many of the incident's Telegram rows are sent."""
    with store.begin() as tx:
        return sum(1 for r in tx.outbox(incident)
                   if r.delivery.channel == "telegram" and r.state == "sent")


LEADS, FOLLOWS = "this process leads", "another process leads"
"""What `playbook run` says when it takes the schedule's lead, and when another process has it."""
