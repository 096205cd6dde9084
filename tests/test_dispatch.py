"""The outbox and the dispatcher: exactly-once enqueue, leases, retries, dead letters, pacing."""

from __future__ import annotations

import asyncio
import itertools
from collections import Counter
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa

from playbook.clock import SystemClock, VirtualClock
from playbook.delivery import Delivery, Limits
from playbook.dispatch import Dispatcher, DispatchSettings, Pacer
from playbook.errors import SendFailed
from playbook.events import verify
from playbook.ports import IncidentRow
from playbook.store import SqlStore
from playbook.tables import outbox

T0 = datetime(2026, 5, 4, 8, 0, tzinfo=UTC)


class Recorder:
    """A channel that records what it sends and fails as scripted."""

    name = "telegram"
    limits = Limits()

    def __init__(self, failures: list[SendFailed] | None = None, forever: SendFailed | None = None,
                 delay: float = 0.0) -> None:
        self.failures = list(failures or [])
        self.forever = forever
        self.delay = delay
        self.sent: Counter[str] = Counter()

    async def send(self, delivery: Delivery) -> str:
        """Fail as scripted, else record."""
        if self.delay:
            await asyncio.sleep(self.delay)
        if self.forever is not None:
            raise self.forever
        if self.failures:
            raise self.failures.pop(0)
        self.sent[delivery.key] += 1
        return f"m{self.sent.total()}"

    async def aclose(self) -> None:
        """Nothing to close."""


def _incident(store: SqlStore, incident_id: str = "2026-0001") -> str:
    with store.begin() as tx:
        tx.insert_incident(IncidentRow(incident_id, "pb", "t", "other", "v", {}, "actual", {},
                                       T0, "anna"))
    return incident_id


def _deliveries(incident_id: str, n: int, chats: int | None = None) -> list[Delivery]:
    return [Delivery(f"{incident_id}/s/1/r{i}/en/telegram", incident_id, False, "s", 1,
                     f"intermediary:r{i}", f"R{i}", "en", "telegram",
                     str(1000 + i % (chats or n)), "subject", "text", T0) for i in range(n)]


def _dispatcher(store: SqlStore, channel: Recorder, clock: VirtualClock,
                worker: str = "w1", **settings: int) -> Dispatcher:
    return Dispatcher(store, {"telegram": channel}, clock, worker=worker,
                      settings=DispatchSettings(**settings))  # type: ignore[arg-type]


def test_enqueue_is_exactly_once(store: SqlStore) -> None:
    """Enqueueing the same deliveries again adds nothing."""
    incident = _incident(store)
    with store.begin() as tx:
        assert tx.enqueue(_deliveries(incident, 50), T0) == 50
    with store.begin() as tx:
        assert tx.enqueue(_deliveries(incident, 60), T0) == 10
        assert tx.outbox_counts(incident) == {"queued": 60}


def test_retryable_failures_back_off_then_succeed(store: SqlStore) -> None:
    """Two retryable failures are retried after 5 s and 10 s; the third attempt is sent."""
    incident = _incident(store)
    with store.begin() as tx:
        tx.enqueue(_deliveries(incident, 1), T0)
    clock = VirtualClock(T0)
    channel = Recorder([SendFailed("500", retryable=True), SendFailed("500", retryable=True)])
    dispatcher = _dispatcher(store, channel, clock)
    attempts = []
    for wait in (0, 5, 10):
        clock.set(clock.now() + timedelta(seconds=wait))
        asyncio.run(dispatcher.drain())
        with store.begin() as tx:
            attempts.append(tx.outbox(incident)[0].state)
    assert attempts == ["queued", "queued", "sent"]
    assert channel.sent.total() == 1


def test_a_retry_is_not_sent_before_its_time(store: SqlStore) -> None:
    """A row waiting for its backoff is not claimed early."""
    incident = _incident(store)
    with store.begin() as tx:
        tx.enqueue(_deliveries(incident, 1), T0)
    clock = VirtualClock(T0)
    channel = Recorder([SendFailed("429", retryable=True, retry_after=30)])
    dispatcher = _dispatcher(store, channel, clock)
    waited: list[float] = []

    async def no_wait(seconds: float) -> None:
        waited.append(seconds)

    dispatcher.sleep = no_wait
    asyncio.run(dispatcher.drain())
    clock.set(T0 + timedelta(seconds=29))
    assert asyncio.run(dispatcher.drain()) == 0
    clock.set(T0 + timedelta(seconds=30))
    assert asyncio.run(dispatcher.drain()) == 1
    assert len(waited) == 1  # the channel as a whole also held back after the 429
    assert 29 < waited[0] <= 30


def test_dead_letter_after_max_attempts(store: SqlStore) -> None:
    """A delivery that keeps failing becomes a dead letter with its reason, logged."""
    incident = _incident(store)
    with store.begin() as tx:
        tx.enqueue(_deliveries(incident, 1), T0)
    clock = VirtualClock(T0)
    dispatcher = _dispatcher(store, Recorder(forever=SendFailed("502 bad gateway",
                                                                retryable=True)), clock,
                             max_attempts=3)
    for _ in range(5):
        asyncio.run(dispatcher.drain())
        clock.set(clock.now() + timedelta(hours=1))
    with store.begin() as tx:
        row = tx.outbox(incident)[0]
        kinds = [e.kind for e in tx.events(incident)]
    assert (row.state, row.attempts) == ("dead", 3)
    assert row.last_error == "502 bad gateway (gave up after 3 attempts)"
    assert kinds == ["failed", "failed", "dead"]


def test_a_blocked_recipient_is_marked_inactive(store: SqlStore) -> None:
    """A `gone` failure is not retried, and the log marks the channel inactive."""
    incident = _incident(store)
    with store.begin() as tx:
        tx.enqueue(_deliveries(incident, 1), T0)
    dispatcher = _dispatcher(store, Recorder(forever=SendFailed(
        "Forbidden: bot was blocked by the user", retryable=False, gone=True)), VirtualClock(T0))
    asyncio.run(dispatcher.drain())
    with store.begin() as tx:
        kinds = [e.kind for e in tx.events(incident)]
        assert tx.outbox(incident)[0].attempts == 1
    assert kinds == ["dead", "channel_inactive"]


def test_an_expired_lease_is_reclaimed_and_counted(store: SqlStore) -> None:
    """Rows claimed by a worker that died are sent again after the lease, and counted."""
    incident = _incident(store)
    with store.begin() as tx:
        tx.enqueue(_deliveries(incident, 20), T0)
        crashed = tx.claim(T0, "dead-worker", T0 + timedelta(seconds=60), 5)
    assert len(crashed) == 5
    clock = VirtualClock(T0 + timedelta(seconds=30))
    channel = Recorder()
    dispatcher = _dispatcher(store, channel, clock, worker="w2")
    assert asyncio.run(dispatcher.drain()) == 15  # the leased five are not touched yet
    clock.set(T0 + timedelta(seconds=61))
    assert asyncio.run(dispatcher.drain()) == 5
    with store.begin() as tx:
        rows = tx.outbox(incident)
    assert sum(r.reclaimed for r in rows) == 5
    assert {r.state for r in rows} == {"sent"}
    assert channel.sent.total() == 20


def test_a_batch_slower_than_its_lease_keeps_it_while_the_dispatcher_lives(
        store: SqlStore) -> None:
    """A live dispatcher renews its lease: a second one cannot take the rows it is sending."""
    incident = _incident(store)
    with store.begin() as tx:
        tx.enqueue(_deliveries(incident, 5), T0)
    channel = Recorder(delay=1.0)
    settings = DispatchSettings(lease=timedelta(seconds=0.3))
    slow = Dispatcher(store, {"telegram": channel}, SystemClock(), worker="slow",
                      settings=settings)
    other = Dispatcher(store, {"telegram": channel}, SystemClock(), worker="other",
                       settings=settings)

    async def race() -> int:
        sending = asyncio.create_task(asyncio.to_thread(asyncio.run, slow.run_once()))
        await asyncio.sleep(0.7)  # more than twice the lease into the slow batch
        taken = await asyncio.to_thread(asyncio.run, other.run_once())
        await sending
        return taken

    assert asyncio.run(race()) == 0
    assert slow.stats.renewals >= 2
    assert channel.sent.total() == 5
    assert max(channel.sent.values()) == 1
    with store.begin() as tx:
        rows = tx.outbox(incident)
    assert {r.state for r in rows} == {"sent"}
    assert sum(r.reclaimed for r in rows) == 0


def test_two_dispatchers_never_send_a_row_twice(store: SqlStore) -> None:
    """Concurrent dispatchers share the outbox: every row is sent exactly once."""
    incident = _incident(store)
    with store.begin() as tx:
        tx.enqueue(_deliveries(incident, 300), T0)
    channel = Recorder(delay=0.001)
    clock = VirtualClock(T0)
    first = _dispatcher(store, channel, clock, worker="a", batch=20)
    second = _dispatcher(store, channel, clock, worker="b", batch=20)

    async def both() -> None:
        await asyncio.gather(asyncio.to_thread(asyncio.run, first.drain()),
                             asyncio.to_thread(asyncio.run, second.drain()))

    asyncio.run(both())
    assert channel.sent.total() == 300
    assert max(channel.sent.values()) == 1
    assert first.stats.sent + second.stats.sent == 300  # each recorded only its own sends


def test_unknown_outcomes_are_counted(store: SqlStore) -> None:
    """A timeout after sending is retried and counted as a possible duplicate."""
    incident = _incident(store)
    with store.begin() as tx:
        tx.enqueue(_deliveries(incident, 1), T0)
    clock = VirtualClock(T0)
    dispatcher = _dispatcher(store, Recorder([SendFailed("timed out", retryable=True,
                                                         outcome_unknown=True)]), clock)
    asyncio.run(dispatcher.drain())
    clock.set(T0 + timedelta(minutes=1))
    asyncio.run(dispatcher.drain())
    with store.begin() as tx:
        row = tx.outbox(incident)[0]
    assert (row.state, row.unknown_outcomes) == ("sent", 1)
    assert dispatcher.stats.unknown == 1


class Ticks:
    """A monotonic clock the test moves."""

    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


def _one(address: str) -> Delivery:
    return Delivery("k", "i", False, "s", 1, "r", "R", "en", "telegram", address, "", "", T0)


def test_pacer_keeps_one_second_per_private_chat() -> None:
    """A second message to the same private chat waits a second; another chat does not."""
    pacer, limits = Pacer(Ticks()), Limits(per_chat_interval=1.0)
    assert pacer.reserve("telegram", limits, _one("42")) == 0
    assert pacer.reserve("telegram", limits, _one("42")) == 1.0
    assert pacer.reserve("telegram", limits, _one("43")) == 0


def test_pacer_keeps_thirty_a_second_overall() -> None:
    """Thirty-one messages to different chats spread over one second."""
    pacer, limits = Pacer(Ticks()), Limits(per_second=30, per_chat_interval=1.0)
    waits = [pacer.reserve("telegram", limits, _one(str(i))) for i in range(31)]
    assert waits[0] == 0
    assert abs(waits[30] - 1.0) < 1e-9


def test_pacer_keeps_twenty_a_minute_per_group() -> None:
    """The twenty-first message to one group waits for the minute to pass."""
    pacer, limits = Pacer(Ticks()), Limits(per_group_per_minute=20)
    waits = [pacer.reserve("telegram", limits, _one("-1001")) for _ in range(21)]
    assert waits[:20] == [0.0] * 20
    assert waits[20] == 60.0


def test_pacer_backs_off_after_429() -> None:
    """After `retry_after`, nobody on the channel sends until it has passed."""
    ticks = Ticks()
    pacer = Pacer(ticks)
    pacer.back_off("telegram", 7)
    assert pacer.reserve("telegram", Limits(), _one("1")) == 7


def test_a_chat_that_must_wait_does_not_hold_up_the_others() -> None:
    """A second message to one chat, or a group's 21st, takes a later slot; others go first."""
    pacer = Pacer(Ticks())
    private = Limits(per_second=30, per_chat_interval=1.0)
    assert pacer.reserve("telegram", private, _one("42")) == 0
    assert pacer.reserve("telegram", private, _one("42")) == 1.0
    assert abs(pacer.reserve("telegram", private, _one("43")) - 1 / 30) < 1e-9
    groups = Limits(per_second=30, per_group_per_minute=20)
    waits = [pacer.reserve("telegram", groups, _one("-1001")) for _ in range(21)]
    assert waits[20] >= 60.0
    assert pacer.reserve("telegram", groups, _one("-1002")) < 1.0
    slots = sorted([0.0, 1.0, *waits])
    assert all(b - a >= 1 / 30 - 1e-9 for a, b in itertools.pairwise(slots))


def test_a_batch_is_logged_in_the_order_of_its_outcomes(store: SqlStore) -> None:
    """Sent rows are recorded in bulk around a failure; each incident's chain still verifies."""
    first, second = _incident(store), _incident(store, "2026-0002")
    with store.begin() as tx:
        others = [replace(d, address=f"2{d.address}") for d in _deliveries(second, 4)]
        tx.enqueue([d for pair in zip(_deliveries(first, 4), others, strict=True)
                    for d in pair], T0)
    channel = Recorder()
    sends = 0

    async def third_fails(delivery: Delivery) -> str:
        nonlocal sends
        sends += 1
        if sends == 3:
            raise SendFailed("500", retryable=True)
        return await Recorder.send(channel, delivery)

    channel.send = third_fails  # type: ignore[method-assign]
    dispatcher = _dispatcher(store, channel, VirtualClock(T0))
    asyncio.run(dispatcher.run_once())
    with store.begin() as tx:
        logs = {i: tx.events(i) for i in (first, second)}
        heads = {i: tx.incident(i) for i in (first, second)}
        receipts = {r.key: r.receipt for r in tx.conn.execute(
            sa.select(outbox.c.key, outbox.c.receipt).where(outbox.c.state == "sent"))}
    assert [e.kind for e in logs[first]] == ["sent", "failed", "sent", "sent"]
    assert [e.kind for e in logs[second]] == ["sent"] * 4
    assert [e.data["key"] for e in logs[second]] == [
        d.key for d in _deliveries(second, 4)]
    for incident, log in logs.items():
        head = heads[incident]
        assert head is not None
        assert verify(incident, log, (head.head_seq, head.head_hash)) is None
    assert receipts == {e.data["key"]: e.data["receipt"]
                        for log in logs.values() for e in log if e.kind == "sent"}
    assert dispatcher.stats.sent == 7


def test_a_batch_claims_one_message_per_chat_in_order(store: SqlStore) -> None:
    """On a paced channel a chat's second message waits for the next batch; others take all."""
    incident = _incident(store)
    with store.begin() as tx:
        tx.enqueue(_deliveries(incident, 9, chats=3), T0)
        first = tx.claim(T0, "w", T0 + timedelta(seconds=60), 5, one_per_chat={"telegram"})
        second = tx.claim(T0, "w", T0 + timedelta(seconds=60), 5, one_per_chat={"telegram"})
        unpaced = tx.claim(T0, "w", T0 + timedelta(seconds=60), 5, one_per_chat={"email"})
    assert [r.delivery.recipient_id for r in first] == [f"intermediary:r{i}" for i in range(3)]
    assert [r.delivery.recipient_id for r in second] == [
        f"intermediary:r{i}" for i in range(3, 6)]
    assert len({r.delivery.address for r in first}) == 3
    assert len(unpaced) == 3  # the last three, one chat twice: not a paced channel
