"""The dispatcher: claims outbox rows, sends them outside transactions, records each outcome.

Rows are claimed with a lease; each channel and chat is paced to its provider's limits; retryable
failures are retried with backoff and the rest become dead letters.

At-least-once: a row is marked sent only after the channel confirmed it. If the process dies
between the two, the lease expires and the row is sent again; such rows are counted as
`reclaimed`, so duplicates are bounded by what was in flight, and visible. While a batch is
being sent its lease is renewed, so a live dispatcher's rows are never taken by another.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import time
from collections import deque
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from playbook.clock import Clock
from playbook.delivery import Channel, Delivery, Limits
from playbook.errors import RuntimeFailure, SendFailed
from playbook.ports import NewEvent, OutboxRow, Store, Tx


@dataclass(frozen=True)
class DispatchSettings:
    """Retry and lease policy."""

    max_attempts: int = 6
    lease: timedelta = timedelta(seconds=60)
    backoff_base: float = 5.0
    backoff_cap: float = 900.0
    batch: int = 100
    concurrency: int = 32


@dataclass
class Outcome:
    """What happened to one claimed row."""

    row: OutboxRow
    receipt: str = ""
    error: SendFailed | None = None


@dataclass
class DispatchStats:
    """Counters for status, benchmarks and tests."""

    sent: int = 0
    retried: int = 0
    dead: int = 0
    unknown: int = 0
    reclaimed: int = 0
    renewals: int = 0
    waits: dict[str, float] = field(default_factory=dict)


_EPSILON = 1e-9
"""Seconds: two slots exactly the minimum gap apart do not collide."""


class Pacer:
    """Keeps each channel under its limits: overall rate, per private chat, per group a minute.

    Slots are reserved before sleeping, so concurrent senders queue up instead of racing. The
    overall limit is a calendar of reserved slots at least `1 / per_second` apart, not one
    "next free" time: a delivery that must wait for its chat (a second message to one private
    chat, a group's 21st in a minute) takes a later slot and leaves the earlier ones free for
    other chats, instead of holding up the whole channel until its own time comes.
    """

    def __init__(self, monotonic: Callable[[], float] = time.monotonic) -> None:
        self.monotonic = monotonic
        self._blocked: dict[str, float] = {}
        """Until when the provider told us to send nothing on a channel."""
        self._slots: dict[str, list[float]] = {}
        """Each channel's reserved slots, sorted; those long past are dropped."""
        self._next_chat: dict[tuple[str, str], float] = {}
        self._group: dict[tuple[str, str], deque[float]] = {}

    def reserve(self, channel: str, limits: Limits, delivery: Delivery) -> float:
        """Reserve the earliest slot for this delivery; returns seconds to wait for it."""
        now = self.monotonic()
        at = max(now, self._blocked.get(channel, now))
        chat = (channel, delivery.address)
        window: deque[float] | None = None
        if delivery.is_group and limits.per_group_per_minute:
            window = self._group.setdefault(chat, deque())
            while window and window[0] <= at - 60.0:
                window.popleft()
            if window:
                at = max(at, window[-1])  # one chat's messages keep their order
            if len(window) >= limits.per_group_per_minute:
                at = max(at, window[-limits.per_group_per_minute] + 60.0)
        elif limits.per_chat_interval:
            at = max(at, self._next_chat.get(chat, at))
        if limits.per_second:
            at = self._slot(channel, at, now, 1.0 / limits.per_second)
        if window is not None:
            window.append(at)
        elif limits.per_chat_interval:
            self._next_chat[chat] = at + limits.per_chat_interval
        return at - now

    def _slot(self, channel: str, earliest: float, now: float, gap: float) -> float:
        """Take the earliest time from `earliest` at least `gap` away from every other slot."""
        slots = self._slots.setdefault(channel, [])
        del slots[:bisect.bisect_left(slots, now - gap)]  # older ones constrain nothing
        at = earliest
        i = bisect.bisect_right(slots, at - gap + _EPSILON)
        while i < len(slots) and slots[i] < at + gap - _EPSILON:
            at = max(at, slots[i] + gap)
            i += 1
        slots.insert(i, at)
        return at

    def finished(self, channel: str, limits: Limits, delivery: Delivery) -> None:
        """A send to a private chat ended: the next one to that chat waits from now.

        Providers measure the gap between the messages they receive; a slow request must not
        let the next message to the same chat arrive too soon after it.
        """
        if limits.per_chat_interval and not delivery.is_group:
            chat = (channel, delivery.address)
            self._next_chat[chat] = max(self._next_chat.get(chat, 0.0),
                                        self.monotonic() + limits.per_chat_interval)

    def back_off(self, channel: str, seconds: float) -> None:
        """The provider said to slow down: nobody on this channel sends for `seconds`."""
        now = self.monotonic()
        self._blocked[channel] = max(self._blocked.get(channel, now), now + seconds)


class Dispatcher:
    """Sends what the outbox holds through the configured channels."""

    def __init__(self, store: Store, channels: Mapping[str, Channel], clock: Clock, *,
                 worker: str = "dispatcher", settings: DispatchSettings | None = None,
                 pacer: Pacer | None = None,
                 sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
                 on_gone: Callable[[Tx, Delivery, str, datetime], None] | None = None,
                 only: str | None = None) -> None:
        self.store = store
        self.only = only
        """One incident's rows only: a drill's clock must not send real messages early."""
        self.channels = channels
        self._paced = frozenset(name for name, c in channels.items()
                                if c.limits.per_chat_interval or c.limits.per_group_per_minute)
        self.clock = clock
        self.worker = worker
        self.settings = settings or DispatchSettings()
        self.pacer = pacer or Pacer()
        self.sleep = sleep  # real time: pacing is about the provider's clock, not the scenario's
        self.stats = DispatchStats()
        self.wake = asyncio.Event()
        self.on_gone = on_gone
        """Told (inside the recording transaction) when a recipient's chat refuses us for good."""

    async def run_once(self) -> int:
        """Claim one batch, send it, record it; returns how many rows were claimed."""
        now = self.clock.now()
        with self.store.begin() as tx:
            rows = tx.claim(now, self.worker, now + self.settings.lease, self.settings.batch,
                            self.only, self._paced)
        if not rows:
            return 0
        self.stats.reclaimed += sum(1 for r in rows if r.reclaimed and r.state == "sending")
        gate = asyncio.Semaphore(self.settings.concurrency)
        chats: dict[tuple[str, str], asyncio.Lock] = {}
        sent = asyncio.Event()
        renewing = asyncio.create_task(self._renew([r.id for r in rows], sent))
        try:
            outcomes = await asyncio.gather(*(self._send(row, gate, chats) for row in rows))
        finally:
            sent.set()
            await renewing
        with self.store.begin() as tx:
            self._record_all(tx, outcomes)
        return len(rows)

    async def _renew(self, ids: list[int], sent: asyncio.Event) -> None:
        """Hold the batch's lease for as long as the batch is being sent.

        Pacing can keep a batch for longer than any fixed lease (a 21st message to one group
        waits a minute); another dispatcher must not take those rows while this one lives.
        Real seconds, as the pacing is: a third of the lease apart, so two renewals can fail
        before the lease runs out.
        """
        every = self.settings.lease.total_seconds() / 3
        while True:
            try:
                await asyncio.wait_for(sent.wait(), every)
                return
            except TimeoutError:
                with self.store.begin() as tx:
                    tx.renew(ids, self.worker, self.clock.now() + self.settings.lease)
                self.stats.renewals += 1

    async def drain(self) -> int:
        """Send until nothing is ready now (retries due later stay queued)."""
        total = 0
        while (claimed := await self.run_once()):
            total += claimed
        return total

    async def run(self, stop: asyncio.Event, idle: float = 1.0,
                  on_error: Callable[[RuntimeFailure], None] | None = None) -> None:
        """Send until `stop` is set; sleeps when idle until woken or `idle` seconds pass.

        A database that cannot be reached (a restart, a failover) is waited out: the batch in
        hand is left to its lease, `on_error` is told, and claiming starts again when the
        database answers, without the process having to be restarted.
        """
        failures = 0
        while not stop.is_set():
            try:
                if await self.run_once():
                    failures = 0
                    continue
            except RuntimeFailure as exc:
                failures += 1
                if on_error is not None:
                    on_error(exc)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), min(30.0, idle * 2 ** failures))
                continue
            failures = 0
            self.wake.clear()
            waiters = [asyncio.ensure_future(self.wake.wait()),
                       asyncio.ensure_future(stop.wait())]
            _, pending = await asyncio.wait(waiters, timeout=idle,
                                            return_when=asyncio.FIRST_COMPLETED)
            for task in pending:
                task.cancel()

    async def aclose(self) -> None:
        """Close every channel."""
        for channel in self.channels.values():
            await channel.aclose()

    async def _send(self, row: OutboxRow, gate: asyncio.Semaphore,
                    chats: dict[tuple[str, str], asyncio.Lock]) -> Outcome:
        delivery = row.delivery
        channel = self.channels.get(delivery.channel)
        if channel is None:
            return Outcome(row, error=SendFailed(
                f"the {delivery.channel} channel is not configured", retryable=False))
        # One message at a time per chat: they arrive in order and paced from the last one.
        ready = getattr(channel, "ready", None)
        if ready is not None:
            try:
                await ready()
            except SendFailed as exc:
                return Outcome(row, error=exc)
        async with chats.setdefault((channel.name, delivery.address), asyncio.Lock()):
            wait = self.pacer.reserve(channel.name, channel.limits, delivery)
            if wait > 0:
                await self.sleep(wait)
            async with gate:
                try:
                    return Outcome(row, receipt=await channel.send(delivery))
                except SendFailed as exc:
                    if exc.retry_after:
                        self.pacer.back_off(channel.name, exc.retry_after)
                    return Outcome(row, error=exc)
                finally:
                    self.pacer.finished(channel.name, channel.limits, delivery)

    def _record_all(self, tx: Tx, outcomes: Sequence[Outcome]) -> None:
        """Record a batch's outcomes in order, each run of sent rows in bulk.

        A run of sent rows is one update of the outbox and one insert into each incident's
        log; a failure is recorded on its own, after the sent rows before it, so the log keeps
        the order of the outcomes.
        """
        sent: list[Outcome] = []
        for outcome in outcomes:
            if outcome.error is None:
                sent.append(outcome)
                continue
            self._record_sent(tx, sent, self.clock.now())
            sent = []
            self._record(tx, outcome, self.clock.now())
        self._record_sent(tx, sent, self.clock.now())

    def _record_sent(self, tx: Tx, outcomes: Sequence[Outcome], now: datetime) -> None:
        if not outcomes:
            return
        tx.finish_sent([(o.row.id, o.receipt) for o in outcomes], now)
        entries: dict[str, list[NewEvent]] = {}
        for o in outcomes:
            d = o.row.delivery
            entries.setdefault(d.incident_id, []).append(NewEvent(
                "sent", now, d.step_id, data={**_log_data(o.row), "receipt": o.receipt}))
        for incident_id in sorted(entries):  # one order of row locks for every dispatcher
            tx.append_many(incident_id, entries[incident_id])
        self.stats.sent += len(outcomes)

    def _record(self, tx: Tx, outcome: Outcome, now: datetime) -> None:
        row, error = outcome.row, outcome.error
        if error is None:
            self._record_sent(tx, [outcome], now)
            return
        d = row.delivery
        data = _log_data(row)
        if error.outcome_unknown:
            self.stats.unknown += 1
            tx.append(d.incident_id, "unknown_outcome", now, step_id=d.step_id,
                      data={**data, "reason": error.reason})
        if error.retryable and row.attempts < self.settings.max_attempts:
            delay = max(error.retry_after or 0.0, self._backoff(row.attempts))
            tx.finish(row.id, "queued", at=now, error=error.reason, unknown=error.outcome_unknown,
                      next_attempt_at=now + timedelta(seconds=delay))
            tx.append(d.incident_id, "failed", now, step_id=d.step_id, data={
                **data, "reason": error.reason, "retry_in_seconds": round(delay, 1)})
            self.stats.retried += 1
            return
        why = error.reason if not error.retryable else (
            f"{error.reason} (gave up after {row.attempts} attempts)")
        tx.finish(row.id, "dead", at=now, error=why, unknown=error.outcome_unknown)
        tx.append(d.incident_id, "dead", now, step_id=d.step_id, data={**data, "reason": why})
        if error.gone:
            tx.append(d.incident_id, "channel_inactive", now, step_id=d.step_id, data={
                "recipient": d.recipient_id, "channel": d.channel, "reason": error.reason})
            if self.on_gone is not None:
                self.on_gone(tx, d, error.reason, now)
        self.stats.dead += 1

    def _backoff(self, attempts: int) -> float:
        return float(min(self.settings.backoff_cap,
                         self.settings.backoff_base * 2 ** (attempts - 1)))


def _log_data(row: OutboxRow) -> dict[str, Any]:
    """What the log says of every outcome of one row."""
    d = row.delivery
    data: dict[str, Any] = {"key": d.key, "recipient": d.recipient_id, "lang": d.lang,
                            "channel": d.channel, "attempt": row.attempts}
    if row.reclaimed:
        data["reclaimed"] = row.reclaimed
    return data
