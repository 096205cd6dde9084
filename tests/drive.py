"""Driving the real engine on a virtual clock: the example city, its directory, real channels."""

from __future__ import annotations

import asyncio
import io
from collections.abc import Mapping
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from conftest import ROOT
from playbook.channels.cap import CapChannel
from playbook.channels.console import ConsoleChannel, FileChannel
from playbook.clock import VirtualClock
from playbook.config import load_settings
from playbook.delivery import Channel
from playbook.directory import Directory
from playbook.directoryfile import load_directory
from playbook.dispatch import Dispatcher
from playbook.engine import Engine, EngineSettings
from playbook.events import Event
from playbook.loader import CheckedPlaybook, load_checked
from playbook.ports import IncidentRow, OutboxRow
from playbook.store import SqlStore

CAP_SENDER = "alerts@riverton.example"
SETTINGS = load_settings(ROOT / "examples" / "playbook.toml")
ZONE = ZoneInfo(SETTINGS.city.timezone)
START = datetime(2026, 5, 4, 9, 0, tzinfo=ZONE)
HATE_PARAMS = {"what": "vandalism", "location": "Market Square", "community": "muslim_community",
               "support_point": "Riverside Community Centre, 12 Rose Street"}


def example_directory() -> Directory:
    """Riverton's directory from examples/directory/."""
    return load_directory(SETTINGS.directory_files())


def checked(name: str = "hate_incident") -> CheckedPlaybook:
    """A protocol from protocols/, checked."""
    return load_checked(ROOT / "protocols" / f"{name}.yaml", city=SETTINGS.city_values(),
                        timezone=ZONE)


class Drive:
    """An engine, a dispatcher and a virtual clock over one store."""

    def __init__(self, store: SqlStore, tmp_path: Path, directory: Directory | None = None,
                 settings: EngineSettings | None = None, start: datetime = START) -> None:
        self.store = store
        self.clock = VirtualClock(start)
        self.engine = Engine(store, directory or example_directory(),
                             settings or EngineSettings(cap_sender=CAP_SENDER))
        self.console = io.StringIO()
        console = ConsoleChannel(self.console)
        self.channels: dict[str, Channel] = {
            "console": console, "telegram": console, "email": console,
            "file": FileChannel(tmp_path / "public"),
            "cap": CapChannel(tmp_path / "cap", CAP_SENDER),
        }
        self.dispatcher = Dispatcher(store, self.channels, self.clock)

    def activate(self, pb: CheckedPlaybook | None = None, params: Mapping[str, Any] | None = None,
                 **kwargs: Any) -> IncidentRow:
        """Activate and send what is due at once."""
        pb = pb or checked()
        incident = self.engine.activate(
            pb.playbook, pb.templates, city=SETTINGS.city_values(),
            timezone=SETTINGS.city.timezone, params=HATE_PARAMS if params is None else params,
            actor=kwargs.pop("actor", "anna"), now=self.clock.now(), **kwargs)
        self.send()
        return incident

    loop: asyncio.AbstractEventLoop | None = None
    """Set for channels whose connections live in one event loop (Telegram)."""

    def send(self) -> None:
        """Dispatch everything ready now."""
        if self.loop is None:
            asyncio.run(self.dispatcher.drain())
        else:
            self.loop.run_until_complete(self.dispatcher.drain())

    def run_until(self, moment: datetime) -> None:
        """Jump from one due time to the next up to `moment`, firing and sending at each."""
        while (wake := self.engine.next_wake()) is not None and wake <= moment:
            self.clock.set(wake)
            self.engine.tick(self.clock.now())
            self.send()
        self.clock.set(moment)
        self.engine.tick(moment)
        self.send()

    def after(self, delta: timedelta) -> datetime:
        """The moment `delta` after the start."""
        return START + delta

    def events(self, incident_id: str, kind: str | None = None) -> list[Event]:
        """The incident's log, optionally of one kind."""
        with self.store.begin() as tx:
            found = tx.events(incident_id)
        return [e for e in found if kind is None or e.kind == kind]

    def outbox(self, incident_id: str) -> list[OutboxRow]:
        """The incident's outbox rows."""
        with self.store.begin() as tx:
            return tx.outbox(incident_id)


def variant(tmp_path: Path, *changes: tuple[str, str]) -> CheckedPlaybook:
    """The hate-incident protocol with text replaced, checked, in a folder of its own."""
    source = (ROOT / "protocols" / "hate_incident.yaml").read_text(encoding="utf-8")
    for old, new in changes:
        assert old in source, old
        source = source.replace(old, new)
    folder = tmp_path / "variant"
    (folder / "protocols").mkdir(parents=True, exist_ok=True)
    if not (folder / "message_templates").exists():
        (folder / "message_templates").symlink_to(ROOT / "message_templates")
    path = folder / "protocols" / "hate_incident.yaml"
    path.write_text(source, encoding="utf-8")
    return load_checked(path, city=SETTINGS.city_values(), timezone=ZONE)
