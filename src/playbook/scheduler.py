"""APScheduler wakes the engine at the next due time; the database decides what that time is.

There is one job, rescheduled after every tick to `engine.next_wake()`, plus a poll every second
that asks the database for its next wake-up time only (one cheap query), so work another
process added (an activation from the command line, a step due in five seconds) is not left
waiting. Nothing about the schedule lives in APScheduler, so it is rebuilt from the database at
every start.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.date import DateTrigger
from apscheduler.triggers.interval import IntervalTrigger

WAKE, POLL = "wake", "poll"


class Scheduler:
    """Calls `tick` when the database says something is due, and `tick` only then."""

    def __init__(self, tick: Callable[[], Awaitable[datetime | None]],
                 peek: Callable[[], datetime | None], *,
                 poll: timedelta = timedelta(seconds=1)) -> None:
        self._tick = tick
        self._peek = peek
        self._poll = poll
        self._scheduler = AsyncIOScheduler(timezone=UTC, job_defaults={
            "coalesce": True, "max_instances": 1, "misfire_grace_time": None})
        self.next_wake: datetime | None = None

    async def start(self) -> None:
        """Tick once (running whatever fell due while we were down), then wait for the next."""
        self._scheduler.start()
        self._scheduler.add_job(self._look, IntervalTrigger(seconds=self._poll.total_seconds()),
                                id=POLL, replace_existing=True)
        await self._run()

    def shutdown(self) -> None:
        """Stop waking the engine; a tick in progress finishes on its own."""
        if self._scheduler.running:
            self._scheduler.shutdown(wait=False)

    async def _look(self) -> None:
        """Wake earlier if another process added something due before our next wake-up."""
        wake = self._peek()
        if wake is not None and (self.next_wake is None or wake < self.next_wake):
            await self._run()

    async def _run(self) -> None:
        self.next_wake = await self._tick()
        if self.next_wake is None:
            if self._scheduler.get_job(WAKE):
                self._scheduler.remove_job(WAKE)
            return
        when = max(self.next_wake, datetime.now(UTC) + timedelta(milliseconds=10))
        self._scheduler.add_job(self._run, DateTrigger(run_date=when), id=WAKE,
                                replace_existing=True)
