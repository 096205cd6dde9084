"""Time, injected: the system clock, a virtual clock, and a scaled clock for drills.

The virtual clock serves tests and instant drills; the scaled one runs an hour of scenario per
minute.

Nothing in the engine reads the time itself; it is handed `now`.
"""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta
from typing import Protocol


class Clock(Protocol):
    """Where the engine gets `now` and how it waits for a moment to come."""

    def now(self) -> datetime:
        """The current time, timezone-aware."""
        ...

    async def sleep_until(self, moment: datetime) -> None:
        """Return once `now()` has reached `moment` (or at once if it has)."""
        ...


class SystemClock:
    """The wall clock."""

    def now(self) -> datetime:
        """The current time in UTC."""
        return datetime.now(UTC)

    async def sleep_until(self, moment: datetime) -> None:
        """Sleep in real time until `moment`."""
        await asyncio.sleep(max(0.0, (moment - self.now()).total_seconds()))


class VirtualClock:
    """A clock that only moves when told: tests and `drill --instant` jump from event to event."""

    def __init__(self, start: datetime) -> None:
        if start.tzinfo is None:
            raise ValueError("the virtual clock needs an aware start time")
        self._now = start

    def now(self) -> datetime:
        """The current virtual time."""
        return self._now

    def advance(self, delta: timedelta) -> datetime:
        """Move forward by `delta` and return the new time."""
        self._now += delta
        return self._now

    def set(self, moment: datetime) -> None:
        """Jump to `moment` (never backwards)."""
        self._now = max(self._now, moment)

    async def sleep_until(self, moment: datetime) -> None:
        """Jump to `moment` at once: waiting costs nothing on a virtual clock."""
        self.set(moment)
        await asyncio.sleep(0)


class ScaledClock:
    """Scenario time running `speed` times faster than real time from `start`."""

    def __init__(self, start: datetime, speed: float) -> None:
        if speed <= 0:
            raise ValueError("speed must be positive")
        self.start, self.speed = start, speed
        self._origin = time.monotonic()

    def now(self) -> datetime:
        """The current scenario time."""
        return self.start + timedelta(seconds=(time.monotonic() - self._origin) * self.speed)

    async def sleep_until(self, moment: datetime) -> None:
        """Sleep the real time that corresponds to the scenario time left."""
        await asyncio.sleep(max(0.0, (moment - self.now()).total_seconds() / self.speed))
