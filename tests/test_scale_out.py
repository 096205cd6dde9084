"""Several `playbook run` processes on one PostgreSQL database: shared sending, one scheduler.

Real processes, a real database and the real python-telegram-bot client against the fake Bot
API on loopback (each request takes 20 ms, so a batch is in flight long enough to share).
"""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from playbook.fake_telegram import FakeBotApi
from services import FOLLOWS, LEADS, TOKEN, N, activate, setup, start, telegram_sent, wait
from stores import fresh_url


@pytest.fixture
def pg_url(tmp_path: Path) -> Iterator[str]:
    """A fresh PostgreSQL database (scale-out is PostgreSQL's; skipped where unreachable)."""
    yield from fresh_url("postgresql", tmp_path)


@pytest.fixture
def api() -> Iterator[FakeBotApi]:
    """The fake Bot API, limits off: the processes' own pacing is what is measured."""
    with FakeBotApi(TOKEN, enforce_limits=False, latency=0.02) as server:
        yield server





def test_three_processes_share_the_outbox_and_send_each_message_once(
        pg_url: str, api: FakeBotApi, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    """Three services on one database all send a 600-message fan-out; nobody gets two."""
    config = setup(tmp_path, pg_url, api.base_url)
    services = [start(config)]
    wait(lambda: services[0].said(LEADS), 30)
    services += [start(config), start(config)]
    try:
        wait(lambda: all(s.said(FOLLOWS) for s in services[1:]), 30)
        store, incident = activate(config, request)

        wait(lambda: telegram_sent(store, incident) == N, 60)
    finally:
        stopping = time.monotonic()
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
    assert sum(shares) == sum(1 for r in rows if r.state == "sent")
    # One led until the stop (then the leader let go, and another may have taken over).
    assert [(s.said(LEADS) or stopping) < stopping for s in services] == [True, False, False]
    print(f"\nshares of {len(rows)} messages by process: {shares}")


def test_a_follower_takes_over_the_schedule_within_seconds_of_the_leader_dying(
        pg_url: str, api: FakeBotApi, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    """SIGKILL the leader: another process leads within 3 s and fires the next step on time."""
    config = setup(tmp_path, pg_url, api.base_url)
    leader = start(config)
    wait(lambda: leader.said(LEADS), 30)
    follower = start(config)
    try:
        wait(lambda: follower.said(FOLLOWS), 30)
        store, incident = activate(config, request)
        wait(lambda: len(api.sent) >= 50, 30)
        killed = time.monotonic()
        leader.stop(signal.SIGKILL)
        wait(lambda: follower.said(LEADS), 10)
        took_over = (follower.said(LEADS) or 0.0) - killed

        def later_fired() -> bool:
            with store.begin() as tx:
                return any(r.step_id == "later" and r.state == "fired"
                           for r in tx.schedule(incident))
        wait(later_fired, 30)
        wait(lambda: telegram_sent(store, incident) == N, 60)
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
    assert (later.fired_at - later.due_at).total_seconds() < 2.0  # a 1 s peek, a busy machine
    assert late == []
    assert set(counts) == {"sent"}
    assert len({s.chat_id for s in api.sent}) == N
    print(f"\ntook over the schedule {took_over:.2f} s after the leader was killed")
