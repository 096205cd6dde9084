"""Drill scenarios: the master scenario events list, its objectives, and how players are played.

A scenario names the playbook it exercises, the activation values, the exercise objectives, and
timed injects (a journalist calls, a rumour spreads, new facts, a second incident), each with a
simulated sender, the role it reaches, how it arrives, the action expected and the objective it
tests. A backup inject fires when the expected action has not happened by its time.

Injects become inject steps of the frozen playbook, so the engine schedules them durably like
any other step. Everything here is pure: `met` and `scenario_now` read the log they are given.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any, Literal

from pydantic import Field, StrictFloat, StrictInt, model_validator

from playbook.events import Event
from playbook.model import (
    Duration,
    Expectation,
    InjectChannel,
    InjectStep,
    Playbook,
    Slug,
    StepId,
    Text,
    _Frozen,
)

Rating = Literal["P", "S", "M", "U"]
RATINGS: Mapping[str, str] = {
    "P": "Performed without challenges",
    "S": "Performed with some challenges",
    "M": "Performed with major challenges",
    "U": "Unable to be performed",
}
InjectKind = Literal["media", "rumour", "new_facts", "second_incident", "community", "other"]


class Objective(_Frozen):
    """What the exercise tests, rated P/S/M/U in the after-action report."""

    id: Slug
    text: Text
    capability: str = Field(default="", description="The core capability, e.g. Public "
                                                    "Information and Warning.")


class Play(_Frozen):
    """How `--instant` plays the expected action: after this long, with these words."""

    after: Duration
    text: str = ""


class Backup(_Frozen):
    """The inject sent again, harder, when the expected action has not happened by `after`."""

    after: Duration = Field(description="Time after the first inject.")
    text: Text
    sender: str = ""


class Inject(_Frozen):
    """One timed development of the scenario."""

    id: StepId
    at: Duration = Field(description="Scenario time after activation.")
    kind: InjectKind = "other"
    sender: Text = Field(description="The simulated sender, e.g. a reporter at the Gazette.")
    to: Slug = Field(description="The role that receives it.")
    channel: InjectChannel = "phone"
    text: Text
    expect: Expectation | None = None
    objective: Slug | None = None
    backup: Backup | None = None
    play: Play | None = Field(default=None, description="How --instant answers for the "
                                                        "players; omit to leave it undone.")

    @model_validator(mode="after")
    def _backup_needs_expectation(self) -> Inject:
        if self.backup is not None and self.expect is None:
            raise ValueError("a backup inject needs `expect` — it fires when the expected "
                             "action has not happened")
        return self


class Players(_Frozen):
    """How `--instant` answers for the players where the scenario does not say."""

    approve_after: Duration = Field(default=timedelta(minutes=10))
    task_after: Duration = Field(default=timedelta(minutes=15), description=(
        "Tasks are done this long after they start (or at their deadline if sooner)."))
    ack_after: Duration = Field(default=timedelta(minutes=12))
    ack_share: StrictFloat | StrictInt = Field(default=0.8, ge=0, le=1, description=(
        "The share of intermediaries who confirm they received a briefing."))


class Scenario(_Frozen):
    """A tabletop exercise of one playbook."""

    title: Text
    playbook: str = Field(description="The id of the playbook it exercises.")
    summary: str = ""
    params: dict[Slug, Any] = Field(default_factory=dict, description="Activation values.")
    participants: tuple[Slug, ...] = Field(default=(), description="Staff ids who play.")
    objectives: tuple[Objective, ...] = ()
    injects: tuple[Inject, ...] = ()
    players: Players = Players()
    stand_down_at: Duration | None = Field(default=None, description=(
        "When the incident lead stands down (default: after the last timed step)."))

    @model_validator(mode="after")
    def _unique(self) -> Scenario:
        steps = [i.id for i in self.injects] + [backup_id(i.id) for i in self.injects
                                                if i.backup is not None]
        for name, ids in (("objective", [o.id for o in self.objectives]), ("inject", steps)):
            twice = sorted({i for i in ids if ids.count(i) > 1})
            if twice:
                raise ValueError(f"the {name} id `{twice[0]}` is used twice — ids must be unique")
        known = {o.id for o in self.objectives}
        for inject in self.injects:
            if inject.objective is not None and inject.objective not in known:
                raise ValueError(f"inject `{inject.id}` tests objective `{inject.objective}`, "
                                 "which is not listed — add it under `objectives`")
        return self


def backup_id(inject_id: str) -> str:
    """The step id of an inject's backup."""
    return f"{inject_id}-backup"


def inject_steps(scenario: Scenario) -> list[InjectStep]:
    """The scenario's injects as playbook inject steps (a backup after each main one)."""
    steps = []
    for i in scenario.injects:
        steps.append(InjectStep(
            id=i.id, title=i.kind, at=i.at, inject=i.text, roles=(i.to,), sender=i.sender,
            channel=i.channel, expect=i.expect, objective=i.objective))
        if i.backup is not None and i.expect is not None:
            steps.append(InjectStep(
                id=backup_id(i.id), title=i.kind, at=i.at + i.backup.after,
                inject=i.backup.text, roles=(i.to,), sender=i.backup.sender or i.sender,
                channel=i.channel, expect=i.expect, objective=i.objective, unless=i.id))
    return steps


def problems(scenario: Scenario, playbook: Playbook,
             ) -> list[tuple[tuple[str | int, ...], str, str]]:
    """Where a scenario does not fit its playbook: (location, what is wrong, what to do)."""
    found: list[tuple[tuple[str | int, ...], str, str]] = []
    if scenario.playbook != playbook.id:
        found.append((("playbook",), f"the scenario is for `{scenario.playbook}`, not "
                      f"`{playbook.id}`", f"run it with that playbook, or write "
                      f"`playbook: {playbook.id}`"))
    steps = {s.id for s in playbook.steps}
    for n, inject in enumerate(scenario.injects):
        if inject.to not in playbook.roles:
            found.append((("injects", n, "to"), f"no role `{inject.to}` in {playbook.id}",
                          f"use one of {', '.join(playbook.roles)}"))
        if inject.id in steps or backup_id(inject.id) in steps:
            found.append((("injects", n, "id"), f"`{inject.id}` is already a step of "
                          f"{playbook.id}", "give the inject another id"))
        if inject.expect and inject.expect.step and inject.expect.step not in steps:
            found.append((("injects", n, "expect", "step"), f"no step `{inject.expect.step}` "
                          f"in {playbook.id}", "name a step id from `playbook plan`"))
    return found


def with_injects(playbook: Playbook, scenario: Scenario) -> Playbook:
    """The playbook with the scenario's injects added as steps (checked by `problems` first)."""
    data = playbook.model_dump(mode="json")
    data["steps"] += [s.model_dump(mode="json", exclude_defaults=True)
                      for s in inject_steps(scenario)]
    return Playbook.model_validate(data)


def met(step: InjectStep, arrived: datetime, events: Sequence[Event],
        repeating: frozenset[str] = frozenset()) -> Event | None:
    """The log entry that took the inject's expected action, if any (on time or not).

    Answers and log entries count from the inject's arrival. Approvals, tasks and messages of
    a one-off step count even before it (the players were ahead of the scenario); for a step in
    `repeating` only an occurrence after the inject counts.
    """
    expect = step.expect
    if expect is None:
        return None
    own = {step.id, step.unless} - {None}
    for event in events:
        if expect.action == "answer" and event.kind == "answered" and event.step_id in own:
            return event
        if expect.action == "log" and event.kind == "logged" and event.at >= arrived:
            return event
        if event.step_id == expect.step and (expect.action, event.kind) in (
                ("approve", "approved"), ("task", "task_done"), ("message", "sent")) and (
                event.at >= arrived or event.step_id not in repeating) and (
                event.kind != "sent" or _is_message(event)):
            return event
        if (expect.action, event.kind) in (("escalate", "escalated"),
                                           ("stand_down", "stood_down")):
            return event
    return None


def _is_message(event: Event) -> bool:
    """A `sent` entry of the message itself (its key names a recipient), not a staff notice."""
    parts = str(event.data.get("key", "")).split("/")
    return len(parts) >= 6 and ":" in parts[3]


def on_time(step: InjectStep, arrived: datetime, taken: Event | None) -> bool:
    """Whether the expected action was taken within the time the inject allowed."""
    return bool(taken and step.expect and taken.at <= arrived + step.expect.within)


def repeating(playbook: Playbook) -> frozenset[str]:
    """The ids of a playbook's repeating steps."""
    return frozenset(s.id for s in playbook.steps if s.every is not None)


def scenario_now(events: Sequence[Event], wall: datetime) -> datetime:
    """The scenario time of a drill running on a scaled clock, from its log and the wall clock.

    The activation records the speed and the wall time it started at; each pause stops the
    scenario clock and each resume restarts it from where it stopped. Incidents without a
    scaled clock live on the wall clock.
    """
    origin: Event | None = None
    speed = 1.0
    paused = False
    for event in events:
        if event.kind == "activated":
            clock = event.data.get("clock") or {}
            if not clock.get("speed"):
                return wall
            speed, origin = float(clock["speed"]), event
        elif event.kind in ("paused", "resumed") and origin is not None:
            paused, origin = event.kind == "paused", event
    if origin is None:
        return wall
    if paused:
        return origin.at
    started = datetime.fromisoformat(str((origin.data.get("clock") or origin.data)["wall"]))
    return origin.at + (wall - started) * speed
