"""`playbook run` rides out what a city's servers see: a database away, a Bot API unreachable.

The process must neither die nor sit there doing nothing: it waits, says so, and carries on
when the other side is back (or exits, so that systemd restarts it, if it cannot go on).
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from playbook.fake_telegram import FakeBotApi
from services import LEADS, TOKEN, activate, setup, start, telegram_sent, wait
from stores import PG_ADMIN, fresh_url

PEOPLE = 60


@pytest.fixture
def pg_url(tmp_path: Path) -> Iterator[str]:
    """A fresh PostgreSQL database (skipped where unreachable)."""
    yield from fresh_url("postgresql", tmp_path)


def _connections(database: str, allowed: bool) -> None:
    admin = sa.create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.exec_driver_sql(
            f'ALTER DATABASE "{database}" ALLOW_CONNECTIONS {str(allowed).lower()}')
        if not allowed:
            conn.execute(sa.text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                                 "WHERE datname = :name"), {"name": database})
    admin.dispose()


def test_a_database_outage_is_waited_out_and_the_lead_taken_back(
        pg_url: str, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    """With PostgreSQL refusing connections the service waits; after it, it leads and sends."""
    database = pg_url.rsplit("/", 1)[1]
    with FakeBotApi(TOKEN, enforce_limits=False) as api:
        config = setup(tmp_path, pg_url, api.base_url, people=PEOPLE)
        service = start(config)
        try:
            wait(lambda: service.said(LEADS), 30)
            _connections(database, allowed=False)
            try:
                wait(lambda: service.said("lost the lead")
                     and service.said("waiting for the database"), 20)
            finally:
                _connections(database, allowed=True)
            wait(lambda: service.times(LEADS) == 2, 20)
            store, incident = activate(config, request)
            wait(lambda: telegram_sent(store, incident) == PEOPLE, 30)
            assert service.process.poll() is None
        finally:
            code = service.stop()
    assert code == 0
    assert len({s.chat_id for s in api.sent}) == PEOPLE
    assert api.stats.duplicates == 0


def test_the_schedule_runs_while_the_bot_api_cannot_be_reached(
        tmp_path: Path, request: pytest.FixtureRequest) -> None:
    """Telegram unreachable at start: the bot is retried, the schedule's steps fire on time."""
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    config = setup(tmp_path, f"sqlite:///{tmp_path / 'playbook.db'}",
                   f"http://127.0.0.1:{port}/bot", people=PEOPLE)
    service = start(config)
    try:
        wait(lambda: service.said("the bot cannot start"), 30)
        store, incident = activate(config, request)

        def fired() -> bool:
            with store.begin() as tx:
                return any(r.step_id == "later" and r.state == "fired"
                           for r in tx.schedule(incident))
        wait(fired, 30)
        assert service.times("the bot cannot start") >= 2  # asked again, not given up
        assert service.process.poll() is None
    finally:
        code = service.stop()
    assert code == 0
    with store.begin() as tx:
        later = next(r for r in tx.schedule(incident) if r.step_id == "later")
    assert later.fired_at is not None
    assert (later.fired_at - later.due_at).total_seconds() < 2.0  # a 1 s peek, a busy machine
