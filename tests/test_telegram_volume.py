"""1,000 messages to 300 chats: the real Dispatcher, TelegramChannel and PTB, the fake Bot API.

Telegram's limits are enforced by the fake, so every 429 the dispatcher receives is counted and
reported (`record_property("telegram_429s", n)` and one printed line). Time is virtual and shared:
the fake, the pacer and every sleep read one `SimTime`, so a minute of group pacing takes no
wall time.

Sleeps are not simply added to the clock: concurrent sleepers would then run it ahead of the
requests still travelling, and the fake would see a batch's sends bunched at one instant (about
fifty 429s per run, none of them the pacer's fault). Instead each sleeper waits its turn, and
the clock moves to the next deadline only when no send is under way: in virtual time every
request arrives exactly when the pacer meant it to.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import random
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from playbook.channels.telegram import TelegramChannel
from playbook.delivery import Delivery
from playbook.dispatch import Dispatcher, DispatchSettings, Pacer
from playbook.errors import SendFailed
from playbook.fake_telegram import FakeBotApi, FaultPlan, Sent
from playbook.ports import IncidentRow
from playbook.store import SqlStore

T0 = datetime(2026, 5, 4, 8, 0, tzinfo=UTC)
INCIDENT = "2026-0042"
PRIVATE, GROUPS, PER_GROUP = 290, 10, 30
MESSAGES = 1000
EPSILON = 1e-6


class SimTime:
    """Virtual seconds for the fake Bot API, the pacer, the dispatcher and the channel.

    `sleep` parks the caller until the clock reaches its deadline; the clock jumps to the
    earliest deadline once nothing else can happen first: no send under way (`begin`/`end`
    bracket each one) and the event loop has settled.
    """

    def __init__(self) -> None:
        self.t = 0.0
        self.busy = 0
        self._moves = 0
        self._sleepers: list[tuple[float, int, asyncio.Future[None]]] = []
        self._idle: asyncio.Event | None = None
        self._driver: asyncio.Task[None] | None = None

    def monotonic(self) -> float:
        """The fake's and the pacer's clock."""
        return self.t

    def now(self) -> datetime:
        """The dispatcher's clock (the outbox's times)."""
        return T0 + timedelta(seconds=self.t)

    async def sleep_until(self, moment: datetime) -> None:
        """The Clock protocol's wait."""
        await self.sleep((moment - self.now()).total_seconds())

    def jump(self, moment: datetime) -> None:
        """Nothing to do until `moment` (a retry's time): go there."""
        self.t = max(self.t, (moment - T0).total_seconds())

    async def sleep(self, seconds: float) -> None:
        """Return once the virtual clock has reached now + `seconds`."""
        if seconds <= 0:
            await asyncio.sleep(0)
            return
        woken = asyncio.get_running_loop().create_future()
        heapq.heappush(self._sleepers, (self.t + seconds, self._moves, woken))
        self._moves += 1
        if self._driver is None or self._driver.done():
            self._driver = asyncio.ensure_future(self._drive())
        await woken

    async def sleep_sending(self, seconds: float) -> None:
        """The channel's sleep between the parts of one message: not a send under way."""
        self.end()
        try:
            await self.sleep(seconds)
        finally:
            self.begin()

    def begin(self) -> None:
        """A send starts: the clock stands still until it ends."""
        self.busy += 1
        self._moves += 1
        self._idle_event().clear()

    def end(self) -> None:
        """A send ended."""
        self.busy -= 1
        self._moves += 1
        if not self.busy:
            self._idle_event().set()

    def _idle_event(self) -> asyncio.Event:
        if self._idle is None:
            self._idle = asyncio.Event()
            self._idle.set()
        return self._idle

    async def _drive(self) -> None:
        while self._sleepers:
            await self._settle()
            deadline, _, woken = heapq.heappop(self._sleepers)
            self.t = max(self.t, deadline)
            woken.set_result(None)

    async def _settle(self) -> None:
        """Wait until no send is under way and a few loop turns passed without any change."""
        calm = 0
        while calm < 10:
            if self.busy:
                await self._idle_event().wait()
                calm = 0
                continue
            before = self._moves
            await asyncio.sleep(0)
            calm = calm + 1 if self._moves == before else 0


class CountedChannel(TelegramChannel):
    """The real Telegram channel, telling the virtual clock when a send is under way.

    It also notes when Telegram said to slow down, for the `retry_after` assertions.
    """

    def __init__(self, api: FakeBotApi, sim: SimTime, timeout: float) -> None:
        super().__init__(api.token, base_url=api.base_url, timeout=timeout,
                         sleep=sim.sleep_sending)
        self.sim = sim
        self.flood: dict[tuple[int, str], list[tuple[float, float]]] = defaultdict(list)

    async def send(self, delivery: Delivery) -> str:
        """Send through the real channel, the clock standing still meanwhile."""
        self.sim.begin()
        try:
            return await super().send(delivery)
        except SendFailed as exc:
            if exc.retry_after:
                self.flood[(int(delivery.address), delivery.text)].append(
                    (self.sim.t, exc.retry_after))
            raise
        finally:
            self.sim.end()


@dataclass
class Run:
    """What one volume run left behind."""

    api: FakeBotApi
    dispatcher: Dispatcher
    channel: CountedChannel
    sim: SimTime
    wall: float
    store: SqlStore

    def summary(self) -> str:
        sent = {(s.chat_id, s.text) for s in self.api.sent}
        stats = self.api.stats
        return (f"{MESSAGES} messages to {PRIVATE + GROUPS} chats: {MESSAGES - len(sent)} lost, "
                f"{stats.duplicates} twice, {stats.rate_limited} 429s, "
                f"{self.dispatcher.stats.unknown} unknown outcomes, "
                f"virtual time {self.sim.t:.0f} s, wall {self.wall:.1f} s")


def chats() -> list[int]:
    """The chat of each message: 290 private chats with 2 or 3 each, 10 groups with 30 each."""
    private = [10_000 + n for n in range(PRIVATE)]
    extra = MESSAGES - GROUPS * PER_GROUP - 2 * PRIVATE  # private chats that get a third
    targets = [*private, *private, *private[:extra]]
    targets += [-(100 + g) for g in range(GROUPS) for _ in range(PER_GROUP)]
    random.Random(6).shuffle(targets)
    assert len(targets) == MESSAGES
    return targets


def deliveries() -> list[Delivery]:
    return [Delivery(f"{INCIDENT}/update/1/r{n}/en/telegram", INCIDENT, False, "update", 1,
                     f"r{n}", f"Recipient {n}", "en", "telegram", str(chat), "Update",
                     f"<b>Update</b> {n}: avoid Market Square until further notice.", T0)
            for n, chat in enumerate(chats())]


def deliver(store: SqlStore, *, faults: FaultPlan | None = None, timeout: float = 10.0,
            hold: float = 30.0, settings: DispatchSettings | None = None) -> Run:
    """Enqueue the 1,000 messages and dispatch until every row is sent or dead."""
    with store.begin() as tx:
        tx.insert_incident(IncidentRow(INCIDENT, "pb", "Market Square", "other", "v", {},
                                       "actual", {}, T0, "anna"))
        assert tx.enqueue(deliveries(), T0) == MESSAGES
    sim = SimTime()
    with FakeBotApi(clock=sim.monotonic, faults=faults, hold=hold) as api:
        channel = CountedChannel(api, sim, timeout)
        dispatcher = Dispatcher(store, {"telegram": channel}, sim, settings=settings,
                                pacer=Pacer(monotonic=sim.monotonic), sleep=sim.sleep)

        async def main() -> None:
            try:
                while True:
                    await dispatcher.drain()
                    with store.begin() as tx:
                        waiting = [r.next_attempt_at for r in tx.outbox(INCIDENT)
                                   if r.state == "queued"]
                    if not waiting:
                        return
                    sim.jump(min(waiting) + timedelta(milliseconds=1))
            finally:
                await dispatcher.aclose()

        started = time.perf_counter()
        asyncio.run(main())
        wall = time.perf_counter() - started
    return Run(api, dispatcher, channel, sim, wall, store)


def report(run: Run, record_property: Callable[[str, object], None]) -> int:
    """Record and print the 429 count; returns it."""
    count = run.api.stats.rate_limited
    record_property("telegram_429s", count)
    record_property("telegram_virtual_seconds", round(run.sim.t, 1))
    record_property("wall_seconds", round(run.wall, 1))
    print(run.summary())
    return count


def limits_kept(sent: list[Sent]) -> None:
    """Telegram's limits, measured on the fake's clock at each accepted message."""
    times = sorted(s.time for s in sent)
    assert all(b - a >= 1.0 - EPSILON for a, b in zip(times, times[30:], strict=False)), (
        "more than 30 messages within one second")
    per_chat: dict[int, list[float]] = defaultdict(list)
    for s in sent:
        per_chat[s.chat_id].append(s.time)
    for chat, at in per_chat.items():
        at.sort()
        if chat > 0:
            assert all(b - a >= 1.0 - EPSILON for a, b in itertools.pairwise(at)), chat
        else:
            assert all(b - a >= 60.0 - EPSILON for a, b in zip(at, at[20:], strict=False)), chat


def states(run: Run) -> dict[str, int]:
    with run.store.begin() as tx:
        return tx.outbox_counts(INCIDENT)


def test_a_thousand_messages_to_300_chats_arrive_once_within_limits(
        store: SqlStore, record_property: Callable[[str, object], None]) -> None:
    """All 1,000 are sent, each once, paced inside Telegram's limits: no 429 at all."""
    run = deliver(store)
    count = report(run, record_property)
    assert states(run) == {"sent": MESSAGES}
    assert len(run.api.sent) == MESSAGES
    assert len({(s.chat_id, s.text) for s in run.api.sent}) == MESSAGES
    assert len({s.chat_id for s in run.api.sent}) == PRIVATE + GROUPS
    assert run.api.stats.duplicates == 0
    limits_kept(run.api.sent)
    assert count == 0
    assert run.dispatcher.stats.retried == 0
    assert run.sim.t >= 60.0  # the 21st message to a group waited for the minute


def test_injected_429s_are_waited_out_and_nothing_is_lost_or_doubled(
        store: SqlStore, record_property: Callable[[str, object], None]) -> None:
    """About 10% of sends get 429: each is retried no sooner than retry_after, once, in full."""
    run = deliver(store, faults=FaultPlan(rate=0.1, kinds=("429",), seed=42),
                    settings=DispatchSettings(backoff_base=0.25))
    count = report(run, record_property)
    assert states(run) == {"sent": MESSAGES}
    assert len({(s.chat_id, s.text) for s in run.api.sent}) == MESSAGES
    assert len(run.api.sent) == MESSAGES
    assert run.api.stats.duplicates == 0
    assert count > 0
    assert count == run.api.stats.faults["429"]  # the pacer itself caused none
    limits_kept(run.api.sent)
    accepted = {(s.chat_id, s.text): s.time for s in run.api.sent}
    refusals = [(key, at, wait) for key, seen in run.channel.flood.items() for at, wait in seen]
    assert len(refusals) == count
    assert all(accepted[key] >= at + wait - EPSILON for key, at, wait in refusals)
    with store.begin() as tx:
        waits = [e.data["retry_in_seconds"] for e in tx.events(INCIDENT)
                 if e.kind == "failed" and "flood control" in e.data["reason"]]
    assert len(waits) == count
    assert min(waits) >= 1.0


def test_429s_500s_timeouts_and_drops_end_sent_or_dead_with_duplicates_bounded(
        store: SqlStore, record_property: Callable[[str, object], None]) -> None:
    """With 10% of requests refused, failed, timed out or dropped every row ends sent or dead.

    A timeout after Telegram accepted is among the faults: its retry is a duplicate, and
    duplicates never exceed the unknown outcomes the dispatcher counted.
    """
    plan = FaultPlan(rate=0.1, kinds=("429", "500", "timeout", "drop", "timeout_after_accept"),
                     seed=7)
    run = deliver(store, faults=plan, timeout=0.1, hold=2.0,
                    settings=DispatchSettings(backoff_base=0.25))
    count = report(run, record_property)
    counts = states(run)
    assert set(counts) <= {"sent", "dead"}
    assert sum(counts.values()) == MESSAGES
    with store.begin() as tx:
        rows = tx.outbox(INCIDENT)
        events = tx.events(INCIDENT)
    sent_keys = {e.data["key"] for e in events if e.kind == "sent"}
    dead = {e.data["key"]: e.data["reason"] for e in events if e.kind == "dead"}
    assert {r.delivery.key for r in rows if r.state == "sent"} == sent_keys
    assert {r.delivery.key for r in rows if r.state == "dead"} == set(dead)
    assert all(reason for reason in dead.values())
    faults = run.api.stats.faults
    assert min(faults["429"], faults["500"], faults["timeout"], faults["drop"]) > 0
    unknown = run.dispatcher.stats.unknown
    assert unknown > 0
    assert unknown == sum(r.unknown_outcomes for r in rows)
    assert run.api.stats.duplicates <= unknown
    delivered = {(s.chat_id, s.text) for s in run.api.sent}
    assert all((int(r.delivery.address), r.delivery.text) in delivered
               for r in rows if r.state == "sent")
    assert count == faults["429"]  # the pacer itself caused none

