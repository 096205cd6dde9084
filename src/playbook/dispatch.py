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
import time
from collections import deque
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from playbook.clock import Clock
from playbook.delivery import Channel, Delivery, Limits
from playbook.errors import SendFailed
from playbook.ports import OutboxRow, Store, Tx


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


class Pacer:
    """Keeps each channel under its limits: overall rate, per private chat, per group a minute.

    Slots are reserved before sleeping, so concurrent senders queue up instead of racing.
    """

    def __init__(self, monotonic: Callable[[], float] = time.monotonic) -> None:
        self.monotonic = monotonic
        self._next_global: dict[str, float] = {}
        self._next_chat: dict[tuple[str, str], float] = {}
        self._group: dict[tuple[str, str], deque[float]] = {}

    def reserve(self, channel: str, limits: Limits, delivery: Delivery) -> float:
        """Reserve the earliest slot for this delivery; returns seconds to wait for it."""
        now = self.monotonic()
        at = max(now, self._next_global.get(channel, now))
        chat = (channel, delivery.address)
        if delivery.is_group and limits.per_group_per_minute:
            window = self._group.setdefault(chat, deque())
            while window and window[0] <= at - 60.0:
                window.popleft()
            if len(window) >= limits.per_group_per_minute:
                at = max(at, window[0] + 60.0)
            window.append(at)
        elif limits.per_chat_interval:
            at = max(at, self._next_chat.get(chat, at))
            self._next_chat[chat] = at + limits.per_chat_interval
        if limits.per_second:
            self._next_global[channel] = at + 1.0 / limits.per_second
        return at - now

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
        self._next_global[channel] = max(self._next_global.get(channel, now), now + seconds)


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
                            self.only)
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
            for outcome in outcomes:
                self._record(tx, outcome, self.clock.now())
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

    async def run(self, stop: asyncio.Event, idle: float = 1.0) -> None:
        """Send until `stop` is set; sleeps when idle until woken or `idle` seconds pass."""
        while not stop.is_set():
            if await self.run_once():
                continue
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

    def _record(self, tx: Tx, outcome: Outcome, now: datetime) -> None:
        row, error = outcome.row, outcome.error
        d = row.delivery
        data = {"key": d.key, "recipient": d.recipient_id, "lang": d.lang, "channel": d.channel,
                "attempt": row.attempts}
        if row.reclaimed:
            data["reclaimed"] = row.reclaimed
        if error is None:
            tx.finish(row.id, "sent", at=now, receipt=outcome.receipt)
            tx.append(d.incident_id, "sent", now, step_id=d.step_id,
                      data={**data, "receipt": outcome.receipt})
            self.stats.sent += 1
            return
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
