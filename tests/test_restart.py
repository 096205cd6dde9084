"""SIGKILL `playbook run` in the middle of a 1,000-delivery fan-out, restart it: nothing lost.

The real service runs as a subprocess on SQLite and on PostgreSQL; the console channel writes
one file per recipient, so every copy a recipient received can be counted.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

from playbook.config import load_settings
from playbook.directoryfile import load_directory
from playbook.engine import Engine
from playbook.loader import load_checked
from playbook.store import SqlStore
from services import setup
from stores import open_store

N = 1000
def _activate(config: Path) -> tuple[SqlStore, str, datetime]:
    settings = load_settings(config)
    checked = load_checked(config.parent / "protocols" / "fan_out.yaml",
                           city=settings.city_values(), timezone=settings.zone)
    store = open_store(settings.database.url)
    engine = Engine(store, load_directory(settings.directory_files()))
    now = datetime.now(UTC)
    incident = engine.activate(checked.playbook, checked.templates, city=settings.city_values(),
                               timezone="UTC", params={}, actor="lee", now=now)
    return store, incident.id, now


def _service(config: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    env.pop("PLAYBOOK_DATABASE_URL", None)
    return subprocess.Popen([sys.executable, "-m", "playbook", "run", "--config", str(config)],
                            cwd=config.parent, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)


def _copies(folder: Path) -> dict[str, int]:
    if not folder.is_dir():
        return {}
    return {p.name: p.read_text(encoding="utf-8").count("── ") for p in folder.glob("*.txt")}


def _wait(what: Callable[[], bool], seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while not what():
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting")
        time.sleep(0.01)


def test_sigkill_mid_fan_out_loses_nothing(db_url: str, tmp_path: Path) -> None:
    """After SIGKILL and restart every recipient has the message; duplicates ≤ in flight."""
    config = setup(tmp_path, db_url, people=N, later="4s", lease="2s", late_after="1s")
    store, incident, started = _activate(config)
    outbox = tmp_path / "outbox"
    first = _service(config)
    try:
        _wait(lambda: len(_copies(outbox)) >= 150, 60)
        first.send_signal(signal.SIGKILL)
    finally:
        first.kill()
        first.communicate()
    at_kill = len(_copies(outbox))
    with store.begin() as tx:
        counts = tx.outbox_counts(incident)
    assert at_kill < N, "the fan-out finished before the kill; the test proves nothing"
    in_flight = counts.get("sending", 0)
    # Wait until the task step has fallen due while nothing runs.
    time.sleep(max(0.0, (started + timedelta(seconds=4.5) - datetime.now(UTC)).total_seconds()))
    second = _service(config)
    try:
        def done() -> bool:
            with store.begin() as tx:
                counts = tx.outbox_counts(incident)
                return (set(counts) == {"sent"} and counts["sent"] > N
                        and tx.has_event(incident, "late"))
        _wait(done, 90)
        second.send_signal(signal.SIGTERM)
        _, err = second.communicate(timeout=30)
    finally:
        if second.returncode is None:
            second.kill()
            second.communicate()
    assert second.returncode == 0, err.decode()
    assert b"stopped:" in err
    copies = _copies(outbox)
    people = {k: v for k, v in copies.items() if k.startswith("p")}
    assert len(people) == N  # nobody lost
    duplicates = sum(v - 1 for v in people.values())
    with store.begin() as tx:
        rows = tx.outbox(incident)
        late = [e for e in tx.events(incident) if e.kind == "late"]
    reclaimed = sum(r.reclaimed for r in rows)
    assert duplicates <= reclaimed <= in_flight
    assert [e.step_id for e in late] == ["later"]
    print(f"\n[{store.dialect}] killed at {at_kill}/{N} delivered, {in_flight} in flight; "
          f"{duplicates} duplicate(s), {reclaimed} reclaimed")
    store.dispose()
