"""Tabletop drills: the engine on a virtual or scaled clock, with injects and simulated players.

`start` opens the exercise (the scenario's injects merged into the frozen playbook, its objectives
logged); `Drill.run` moves the clock from one thing to do to the next, fires what is due for this
incident only, sends to the sandbox, and lets `SimulatedPlayers` answer for the players in an
instant drill. A controller pauses, resumes or ends it ("no play") from the CLI or the bot;
players answer injects and evaluators rate objectives. All of it goes into the incident log.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from playbook import listening
from playbook.approvals import Approvals
from playbook.clock import Clock
from playbook.engine import Engine
from playbook.errors import BadInput
from playbook.events import Event
from playbook.model import InjectStep, MessageStep, Playbook, TaskStep
from playbook.ports import AckRow, IncidentRow, Tx
from playbook.render import TemplateLibrary
from playbook.scenario import (
    RATINGS,
    Players,
    Scenario,
    backup_id,
    met,
    repeating,
    scenario_now,
    with_injects,
)
from playbook.version import Version

DEFAULT_PLAYERS = Players()
MAX_ANSWER = 2000


@dataclass(frozen=True)
class Setup:
    """What a drill runs: the playbook with the scenario's injects, and how it is played."""

    playbook: Playbook
    templates: TemplateLibrary
    scenario: Scenario | None
    params: Mapping[str, Any]
    participants: tuple[str, ...]
    speed: float | None
    """Scenario seconds per real second; None for an instant drill."""


def prepare(playbook: Playbook, templates: TemplateLibrary, scenario: Scenario | None,
            params: Mapping[str, Any], participants: Sequence[str],
            speed: float | None) -> Setup:
    """The drill's setup; the scenario must already fit the playbook (`scenario.problems`)."""
    merged = with_injects(playbook, scenario) if scenario is not None else playbook
    return Setup(merged, templates, scenario, params, tuple(participants), speed)


def stand_down_offset(setup: Setup) -> timedelta:
    """When the lead stands down: the scenario's time, else an hour after the last timed step."""
    if setup.scenario is not None and setup.scenario.stand_down_at is not None:
        return setup.scenario.stand_down_at
    ends = [(s.at or timedelta()) + (s.due if isinstance(s, TaskStep) and s.due else timedelta())
            for s in setup.playbook.steps if s.at is not None and s.on is None]
    return max(ends, default=timedelta()) + timedelta(hours=1)


def record(setup: Setup) -> dict[str, Any]:
    """The `scenario` log entry: objectives and injects as planned, for the report."""
    scenario = setup.scenario
    injects = [s for s in setup.playbook.steps if isinstance(s, InjectStep)]
    return {
        "title": scenario.title if scenario else f"{setup.playbook.title} (no scenario file)",
        "summary": scenario.summary if scenario else "",
        "objectives": [o.model_dump(mode="json") for o in scenario.objectives] if scenario
        else [],
        "injects": [{
            "id": s.id, "at_seconds": int(s.at.total_seconds()) if s.at is not None else None,
            "kind": s.title or "other", "sender": s.sender, "to": ",".join(s.roles),
            "channel": s.channel, "objective": s.objective,
            "expect": s.expect.model_dump(mode="json") if s.expect else None,
            "backup_id": backup_id(s.id) if any(b.unless == s.id for b in injects) else None,
        } for s in injects if not s.unless],
        "players": "live" if setup.speed else "simulated",
        "speed": setup.speed or "instant",
        "stand_down_seconds": int(stand_down_offset(setup).total_seconds()),
    }


def start(engine: Engine, setup: Setup, *, city: Mapping[str, str], timezone: str,
          actor: str, now: datetime, wall: datetime) -> IncidentRow:
    """Open the exercise incident.

    A scaled drill records its clock so any process can tell its scenario time. An instant
    drill reaches nobody but its sandbox: its players are played.
    """
    return engine.activate(
        setup.playbook, setup.templates, city=city, timezone=timezone, params=setup.params,
        actor=actor, now=now, mode="exercise",
        participants=setup.participants if setup.speed else (),
        clock={"speed": setup.speed, "wall": wall.isoformat()} if setup.speed else None,
        scenario=record(setup))


# The controller and the players, from the CLI or the bot.

def now_for(engine: Engine, incident_id: str, wall: datetime) -> datetime:
    """The time an action on this incident is logged at: scenario time for a scaled drill."""
    with engine.store.begin() as tx:
        return scenario_now(tx.events(incident_id), wall)


def _exercise(engine: Engine, tx: Tx, incident_id: str, *states: str) -> IncidentRow:
    incident = engine.incident(tx, incident_id)
    if not incident.exercise:
        raise BadInput.one(incident_id, "this is an actual incident, not an exercise",
                           "use `playbook standdown` to end an actual incident")
    if incident.state not in states:
        raise BadInput.one(incident_id, f"the exercise is {incident.state.replace('_', ' ')}",
                           "see `playbook status`")
    return incident


def pause(engine: Engine, incident_id: str, *, actor: str, wall: datetime) -> datetime:
    """Stop the scenario clock: nothing of this drill fires until it resumes."""
    with engine.store.begin() as tx:
        _exercise(engine, tx, incident_id, "open", "stood_down")
        now = scenario_now(tx.events(incident_id), wall)
        previous = engine.incident(tx, incident_id).state
        tx.set_state(incident_id, "paused")
        tx.append(incident_id, "paused", now, actor=actor,
                  data={"wall": wall.isoformat(), "was": previous})
    return now


def resume(engine: Engine, incident_id: str, *, actor: str, wall: datetime) -> datetime:
    """Restart the scenario clock where it stopped; steps keep their scenario times."""
    with engine.store.begin() as tx:
        _exercise(engine, tx, incident_id, "paused")
        events = tx.events(incident_id)
        now = scenario_now(events, wall)
        was = next((e.data.get("was", "open") for e in reversed(events)
                    if e.kind == "paused"), "open")
        tx.set_state(incident_id, str(was))
        tx.append(incident_id, "resumed", now, actor=actor, data={"wall": wall.isoformat()})
    return now


def end(engine: Engine, incident_id: str, *, actor: str, reason: str, now: datetime,
        no_play: bool = True) -> tuple[int, int]:
    """End the exercise now: nothing more is scheduled or sent ("no play", e.g. a real event).

    Returns (steps cancelled, unsent messages cancelled).
    """
    with engine.store.begin() as tx:
        _exercise(engine, tx, incident_id, "open", "stood_down", "paused")
        steps, unsent = tx.stop_all(incident_id)
        for draft in tx.drafts(incident_id, "pending"):
            tx.update_draft(draft.id, state="cancelled", decided_at=now)
        tx.set_state(incident_id, "closed")
        tx.append(incident_id, "closed", now, actor=actor, data={
            "reason": reason or ("no play" if no_play else "end of exercise"),
            "no_play": no_play, "cancelled_steps": steps, "cancelled_messages": unsent})
    return steps, unsent


def answer(engine: Engine, incident_id: str, ref: str, text: str, *, actor: str,
           now: datetime) -> Event:
    """A player's answer to an inject (its step id) or to a concern (`#` and its log number)."""
    text = text.strip()[:MAX_ANSWER]
    if not text:
        raise BadInput.one("answer", "the answer is empty", "write what you would say or do")
    with engine.store.begin() as tx:
        incident = engine.incident(tx, incident_id)
        events = tx.events(incident_id)
        if ref.startswith("#") and ref[1:].isdigit():
            if not any(e.kind == "concern" and e.seq == int(ref[1:]) for e in events):
                raise BadInput.one(ref, f"no concern {ref} in incident {incident_id}",
                                   "use the number `playbook status` shows for the concern")
            return tx.append(incident_id, "answered", now, actor=actor,
                             data={"concern": int(ref[1:]), "text": text})
        injects = [e.step_id for e in events if e.kind == "inject"]
        if ref not in injects:
            known = ", ".join(dict.fromkeys(injects)) or "none yet"
            raise BadInput.one(ref, f"no inject {ref!r} has reached incident {incident.id}",
                               f"answer one that has ({known}), or a concern as #NUMBER")
        return tx.append(incident_id, "answered", now, step_id=ref, actor=actor,
                         data={"text": text})


def rate(engine: Engine, incident_id: str, objective: str, rating: str, *, actor: str,
         note: str, now: datetime) -> Event:
    """An evaluator's P/S/M/U rating of an exercise objective (the latest one counts)."""
    rating = rating.upper()
    if rating not in RATINGS:
        raise BadInput.one(rating, "a rating is P, S, M or U",
                           "; ".join(f"{k}: {v}" for k, v in RATINGS.items()))
    with engine.store.begin() as tx:
        events = tx.events(incident_id)
        engine.incident(tx, incident_id)
        objectives = [o["id"] for e in events if e.kind == "scenario"
                      for o in e.data.get("objectives", [])]
        if objective not in objectives:
            raise BadInput.one(objective, f"no objective {objective!r} in this exercise",
                               f"use one of: {', '.join(objectives) or 'none (no scenario)'}")
        return tx.append(incident_id, "rated", now, actor=actor,
                         data={"objective": objective, "rating": rating, "note": note})


class Log:
    """One incident's log as far as it has been read.

    The log is append-only (hash-chained, and the database refuses changes), so what was read
    stays true: each `read` fetches only the entries appended since the last one.
    """

    def __init__(self, incident_id: str) -> None:
        self.incident_id = incident_id
        self.entries: list[Event] = []

    def read(self, tx: Tx) -> list[Event]:
        """Fetch the entries appended since the last read; returns just those."""
        fresh = tx.events(self.incident_id, after=self.entries[-1].seq if self.entries else 0)
        self.entries.extend(fresh)
        return fresh


class SimulatedPlayers:
    """Answers for the players of an instant drill, as the scenario says (or sensibly)."""

    def __init__(self, engine: Engine, incident_id: str, setup: Setup) -> None:
        self.engine, self.incident_id, self.setup = engine, incident_id, setup
        self.players = setup.scenario.players if setup.scenario else DEFAULT_PLAYERS
        self.log = Log(incident_id)
        self._seen = 0
        """How much of the log `_started` and `_injects` have taken in."""
        self._plays = {i.id: i.play for i in setup.scenario.injects if i.play} if (
            setup.scenario) else {}
        self._started: dict[tuple[str, Any], datetime] = {}
        """When each occurrence of a step fell due, from the log's `due` entries."""
        self._injects: list[Event] = []
        """The injects that arrived, have a scripted `play` and are not met yet."""
        self._planned: list[tuple[datetime, str, Any]] = []
        self._current = False
        """Whether `_planned` was made from the database as it still is."""
        self._now: datetime | None = None
        """When they last acted."""
        self._version: Version | None = None
        self._roles: tuple[dict[str, str | None], dict[str, str | None]] | None = None
        self._stood_down = False

    def act(self, now: datetime, *, replan: bool = True) -> int:
        """Do everything the players would have done by `now`; returns how many actions.

        `replan=False` says nothing was written since the last `look`, so its plan still holds.
        """
        if replan or not self._current:
            with self.engine.store.begin() as tx:
                self.log.read(tx)
                self.look(tx, self.engine.incident(tx, self.incident_id))
        self._now = now
        due = sorted((p for p in self._planned if p[0] <= now), key=lambda p: p[0])
        if due:
            holders, backups = self._people()
            for _, what, detail in due:
                self._do(what, detail, holders, backups, now)
            self._current = False  # what they did changed what is left to do
            self._planned = [p for p in self._planned if p[0] > now]
        return len(due)

    def next(self) -> datetime | None:
        """When the players next have something to do, after the time they last acted at.

        What they could not do then (a refused approval) they try again whenever they act,
        but it does not wake them by itself.
        """
        return min((p[0] for p in self._planned if self._now is None or p[0] > self._now),
                   default=None)

    def look(self, tx: Tx, incident: IncidentRow) -> None:
        """Plan from the database as `tx` sees it (`log` read in it): what to do, and when."""
        self._planned = self._plan(tx, incident)
        self._current = True

    def _plan(self, tx: Tx, incident: IncidentRow) -> list[tuple[datetime, str, Any]]:
        plan: list[tuple[datetime, str, Any]] = []
        if incident.state == "closed":
            return []
        for event in self.log.entries[self._seen:]:
            if event.kind == "due":
                self._started[(event.step_id, event.data.get("number"))] = event.at
            elif event.kind == "inject" and event.step_id in self._plays:
                self._injects.append(event)
        self._seen = len(self.log.entries)
        asked: set[tuple[datetime, str]] = set()
        for draft in tx.drafts(self.incident_id, "pending"):
            # One approval approves every pending language of the step at once.
            when = draft.requested_at + self.players.approve_after
            if (when, draft.step_id) not in asked:
                asked.add((when, draft.step_id))
                plan.append((when, "approve", draft.step_id))
        for task in tx.tasks(self.incident_id, open_only=True):
            if task.done_at is None:
                begun = self._started.get((task.step_id, task.number), incident.started_at)
                when = begun + self.players.task_after
                if task.due_by is not None:  # a minute before the deadline at the latest
                    when = max(begun, min(when, task.due_by - timedelta(minutes=1)))
                plan.append((when, "task", (task.step_id, task.holder)))
        for ack in tx.acks(self.incident_id, open_only=True):
            if ack.acked_at is None and _share(ack) < self.players.ack_share:
                plan.append((ack.asked_at + self.players.ack_after, "ack", ack.token))
        version = self._version = self.engine.version(incident)
        if self._injects:
            repeats = repeating(version.playbook)
            waiting = []
            for event in self._injects:
                step = version.step(event.step_id)
                if isinstance(step, InjectStep) and not met(
                        step, event.at, self.log.entries, repeats):
                    waiting.append(event)
                    play = self._plays[event.step_id]
                    plan.append((event.at + play.after, "play", (step, play.text)))
            self._injects = waiting  # the log only grows: what was met stays met
        if incident.state == "open" and not self._stood_down:
            plan.append((incident.started_at + stand_down_offset(self.setup), "stand_down",
                         None))
        return plan

    def _do(self, what: str, detail: Any, holders: Mapping[str, str | None],
            backups: Mapping[str, str | None], now: datetime) -> None:
        try:
            if what == "approve":
                self._approve(detail, holders, backups, now)
            elif what == "task":
                step_id, holder = detail
                self.engine.complete_task(self.incident_id, step_id, actor=holder or "player",
                                          note="done (simulated player)", now=now)
            elif what == "ack":
                listening.acknowledge(self.engine, detail, relayed=False, via="simulated",
                                      actor="simulated", now=now)
            elif what == "play":
                self._play(detail[0], detail[1], holders, now)
            elif what == "stand_down":
                self._stood_down = True
                self.engine.event(self.incident_id, "stand_down", now=now,
                                  actor=holders.get("incident_lead") or "player")
        except (BadInput, StopIteration):
            pass  # the world moved on (already done, cancelled): a player would shrug too

    def _approve(self, step_id: str, holders: Mapping[str, str | None],
                 backups: Mapping[str, str | None], now: datetime) -> None:
        assert self._version is not None, "planned from a look"
        step = self._version.step(step_id)
        assert isinstance(step, MessageStep)
        people = [p for role in step.approval for p in (holders.get(role), backups.get(role))]
        for person in dict.fromkeys(p for p in people if p):
            try:
                Approvals(self.engine).approve(self.incident_id, step_id, actor=person, now=now)
                return
            except BadInput:
                continue  # the requester cannot approve their own draft; the next one may

    def _play(self, step: InjectStep, text: str, holders: Mapping[str, str | None],
              now: datetime) -> None:
        expect = step.expect
        player = next((holders[r] for r in step.roles if holders.get(r)), None) or "player"
        if expect is None or expect.action == "answer":
            answer(self.engine, self.incident_id, step.id, text or "Noted.", actor=player,
                   now=now)
        elif expect.action == "log":
            with self.engine.store.begin() as tx:
                tx.append(self.incident_id, "logged", now, actor=player,
                          data={"text": text or f"Re {step.id}: noted", "re": step.id})
        elif expect.action in ("escalate", "stand_down"):
            self.engine.event(self.incident_id, expect.action, actor=player, now=now)
            self._stood_down = self._stood_down or expect.action == "stand_down"

    def _people(self) -> tuple[dict[str, str | None], dict[str, str | None]]:
        """Who holds and who backs up each role: written once, at activation."""
        if self._roles is None:
            with self.engine.store.begin() as tx:
                found = tx.assignments(self.incident_id)
            self._roles = ({a.role: a.holder for a in found}, {a.role: a.backup for a in found})
        return self._roles


def _share(ack: AckRow) -> float:
    """A stable pseudo-random share in [0, 1) per briefing and recipient.

    A drill replays the same: who confirms depends on the step, the occurrence and the person,
    not on the random confirmation code.
    """
    key = f"{ack.step_id}/{ack.number}/{ack.recipient_id}"
    return int(hashlib.sha256(key.encode()).hexdigest()[:8], 16) / 0x1_0000_0000


class DrillClock:
    """Scenario time of a scaled drill, read from its log.

    Pauses and resumes from any process (the bot, another terminal) stop and restart it for
    everyone alike.
    """

    def __init__(self, engine: Engine, incident_id: str, wall: Clock, speed: float) -> None:
        self.engine, self.incident_id, self.wall, self.speed = engine, incident_id, wall, speed
        self._timebase: list[Event] = []
        self.refresh()

    def refresh(self) -> None:
        """Read the activation, pauses and resumes again (the drill loop does, between ticks).

        `now` itself never reads the database: it is called inside transactions, and a second
        transaction there would wait for the first one's lock.
        """
        with self.engine.store.begin() as tx:
            self._timebase = [e for e in tx.events(self.incident_id)
                              if e.kind in ("activated", "paused", "resumed")]

    def now(self) -> datetime:
        """The drill's scenario time."""
        return scenario_now(self._timebase, self.wall.now())

    async def sleep_until(self, moment: datetime) -> None:
        """Sleep the real time that corresponds to the scenario time left."""
        await asyncio.sleep(max(0.0, (moment - self.now()).total_seconds() / self.speed))


Send = Callable[[], Awaitable[int]]


class Drill:
    """The drill loop: tick this incident, let the players act, send, until it is over."""

    def __init__(self, engine: Engine, incident_id: str, clock: Clock, send: Send, *,
                 players: SimulatedPlayers | None = None,
                 on_events: Callable[[Sequence[Event]], None] | None = None,
                 poll: timedelta = timedelta(seconds=1)) -> None:
        self.engine, self.incident_id, self.clock, self.send = engine, incident_id, clock, send
        self.players = players
        self.on_events = on_events or (lambda events: None)
        self.poll = poll
        """Real time between looks at the log in a scaled drill (pause and end from outside)."""
        self._log = players.log if players is not None else Log(incident_id)
        self._shown = 0

    async def run(self) -> IncidentRow:
        """Run to the end (or until a controller ends it); returns the closed incident.

        An instant drill skips what changes nothing. Its players are simulated, so only this
        loop writes to its incident, and from one look at the database to the next tick it
        stays as it was: the engine has nothing to do before the wake-up time it gave, and the
        players' plan from that look still holds. When the players act, the engine catches up
        at the same scenario time in the next round. (A controller's `end` from elsewhere is
        seen at the next look.)
        """
        state: str | None = None
        engine_wake: datetime | None = None
        looked = False
        while True:
            if isinstance(self.clock, DrillClock):
                self.clock.refresh()
            now = self.clock.now()
            if not self.instant or state in (None, "paused"):
                state = self._state()  # a controller may have paused or ended it meanwhile
            if state not in ("paused", "closed"):
                if self.players is None:
                    self.engine.tick(now, only=self.incident_id)
                else:
                    idle = looked and (engine_wake is None or engine_wake > now)
                    if not idle:
                        self.engine.tick(now, only=self.incident_id)
                    self.players.act(now, replan=not idle)
            await self.send()
            state, engine_wake = self._look()
            looked = True
            if state == "closed":
                break
            wakes = [t for t in (engine_wake, self.players.next() if self.players else None)
                     if t]
            if state == "stood_down" and not wakes:
                end(self.engine, self.incident_id, actor="drill", reason="end of exercise",
                    now=now, no_play=False)
                state, looked = None, False
                continue
            await self._wait(min(wakes) if wakes else None, state == "paused")
        with self.engine.store.begin() as tx:
            return self.engine.incident(tx, self.incident_id)

    @property
    def instant(self) -> bool:
        """Whether players are simulated: nobody but this loop acts on the drill."""
        return self.players is not None

    async def _wait(self, until: datetime | None, paused: bool) -> None:
        if self.players is not None and not paused and until is not None:
            await self.clock.sleep_until(until)  # an instant drill jumps
            return
        # A live drill looks at the log now and then: a pause or an end may come from the bot.
        step = self.clock.now() + self.poll * getattr(self.clock, "speed", 1)
        await self.clock.sleep_until(min(until, step) if until and not paused else step)

    def _state(self) -> str:
        with self.engine.store.begin() as tx:
            return self.engine.incident(tx, self.incident_id).state

    def _look(self) -> tuple[str, datetime | None]:
        """Show what the log gained; the state, the engine's next wake-up and the players' plan.

        All of it is read in one transaction, so it is one consistent picture.
        """
        with self.engine.store.begin() as tx:
            self._log.read(tx)
            incident = self.engine.incident(tx, self.incident_id)
            wake = tx.next_wake(self.incident_id)
            if self.players is not None:
                self.players.look(tx, incident)
        fresh, self._shown = self._log.entries[self._shown:], len(self._log.entries)
        if fresh:
            self.on_events(fresh)
        return incident.state, wake
