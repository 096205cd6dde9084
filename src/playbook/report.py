"""The after-action report (HSEEP-shaped): a pure function of the frozen playbook and the log.

Nothing here reads a clock, a file or a database: the same log gives the same report, so a
report can be recomputed by anyone holding the log and checked against its hash chain. The
numbers come from the log only; where the log cannot decide (an objective no inject tested),
the report says an evaluator is needed rather than guessing. `reportdoc` renders it.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

from playbook.events import Event
from playbook.model import Expectation, InjectStep, MessageStep, Playbook, TaskStep
from playbook.plan import due_after_event, due_at
from playbook.scenario import RATINGS, met, on_time
from playbook.version import Version

FIRST_MESSAGE_GOAL = timedelta(minutes=60)
"""CERC: the first public message within the hour, even if it can only say what is not known."""
MESSAGE_SLACK = timedelta(minutes=15)
"""A message counts as late when it went out this long after its planned time (approval time)."""
ACK_GOAL = 0.8
TRIGGERS = {"stand_down": "stood_down", "escalate": "escalated", "de_escalate": "de_escalated"}
Status = Literal["on time", "late", "not done", "not sent", "not fired", "skipped", "not needed"]
Outcome = Literal["on time", "late", "after backup", "not taken", "not played"]
PROBLEMS = frozenset({"late", "not done", "not sent", "not fired"})


@dataclass(frozen=True)
class Assignment:
    """Who held a role (None: nobody, the role was unfilled) and who backed them up."""

    role: str
    title: str
    holder: str | None
    backup: str | None
    note: str = ""


@dataclass(frozen=True)
class Overview:
    """What ran, when, in which mode, with whom."""

    incident_id: str
    playbook_id: str
    playbook_title: str
    version: str
    exercise: bool
    timezone: str
    started: datetime
    ended: datetime
    closed: bool
    end_reason: str
    no_play: bool
    stood_down: datetime | None
    scenario_title: str
    scenario_summary: str
    speed: str
    participants: tuple[str, ...]
    assignments: tuple[Assignment, ...]
    params: tuple[tuple[str, str], ...]
    entries: int
    head: str

    @property
    def mode(self) -> str:
        """EXERCISE or ACTUAL, as the banner and the overview print it."""
        return "EXERCISE" if self.exercise else "ACTUAL"

    @property
    def duration(self) -> timedelta:
        """From activation to closing (or to the last log entry of an open incident)."""
        return self.ended - self.started

    @property
    def unfilled(self) -> tuple[str, ...]:
        """Roles nobody held."""
        return tuple(a.role for a in self.assignments if not a.holder)


@dataclass(frozen=True)
class Evidence:
    """How one inject testing an objective was handled, with the log entry that shows it."""

    inject_id: str
    expected: str
    outcome: Outcome
    arrived: datetime | None
    deadline: datetime | None
    taken_at: datetime | None = None
    taken_entry: int | None = None
    taken_kind: str = ""
    taken_by: str = ""
    backup_at: datetime | None = None

    @property
    def late_by(self) -> timedelta | None:
        """How long after the time allowed the action was taken (None: on time or never)."""
        if self.taken_at is None or self.deadline is None or self.taken_at <= self.deadline:
            return None
        return self.taken_at - self.deadline


@dataclass(frozen=True)
class ObjectiveResult:
    """One exercise objective and its P/S/M/U rating: the evaluator's, else the log's."""

    id: str
    text: str
    capability: str
    rating: str | None
    derived: str | None
    rated_by: str
    note: str
    evidence: tuple[Evidence, ...]

    @property
    def label(self) -> str:
        """The rating in words."""
        if self.rating is None:
            return "Not rated: an evaluator is needed"
        return f"{self.rating} — {RATINGS[self.rating]}"


@dataclass(frozen=True)
class TimelineRow:
    """One occurrence of a step: when it was planned, and when it actually happened."""

    step_id: str
    number: int
    kind: Literal["task", "message", "inject"]
    role: str
    planned: datetime | None
    fired: datetime | None
    actual: datetime | None
    actual_label: str
    deadline: datetime | None
    status: Status

    @property
    def late(self) -> bool:
        """Drawn in the late colour: late, or never done."""
        return self.status in PROBLEMS


@dataclass(frozen=True)
class FirstMessage:
    """The first public message (any public or media step) and when it went out."""

    step_id: str | None
    planned: datetime | None
    sent: datetime | None
    after: timedelta | None


@dataclass(frozen=True)
class CercCheck:
    """The six first-message elements of a `cerc: first` step, per language.

    `missing` maps a language to the blocks that rendered empty; `error` is set when the
    frozen template could not be rendered again, in which case only the declaration is known.
    """

    step_id: str
    sent: datetime | None
    missing: tuple[tuple[str, tuple[str, ...]], ...]
    error: str = ""

    @property
    def complete(self) -> bool:
        """Every language had all six elements."""
        return not self.error and not any(blocks for _, blocks in self.missing)


@dataclass(frozen=True)
class ApprovalTime:
    """Draft to approval, per step and language, from the first draft of each occurrence."""

    step_id: str
    lang: str
    times: tuple[timedelta, ...]
    pending: int
    rejected: int

    @property
    def fastest(self) -> timedelta | None:
        """The quickest approval."""
        return min(self.times, default=None)

    @property
    def median(self) -> timedelta | None:
        """The middle approval time."""
        return median(self.times)

    @property
    def slowest(self) -> timedelta | None:
        """The slowest approval."""
        return max(self.times, default=None)


@dataclass(frozen=True)
class ChannelCount:
    """Message deliveries on one channel by outcome (failed: an attempt that was retried)."""

    channel: str
    sent: int
    failed: int
    dead: int
    unknown: int


@dataclass(frozen=True)
class Acks:
    """Intermediaries asked to confirm a briefing, and who did."""

    asked: int
    confirmed: int
    relayed: int
    delays: tuple[timedelta, ...]
    reminded: int
    overdue: int
    steps: tuple[str, ...]

    @property
    def rate(self) -> float | None:
        """Confirmed over asked (None when nobody was asked)."""
        return self.confirmed / self.asked if self.asked else None


@dataclass(frozen=True)
class Concern:
    """A concern an intermediary raised, and the answer it got."""

    seq: int
    at: datetime
    name: str
    via: str
    text: str
    step_id: str
    answered_at: datetime | None
    answered_by: str
    answer: str


@dataclass(frozen=True)
class RoleDeadlines:
    """Task deadlines of one role: met, done late, never done."""

    role: str
    title: str
    on_time: int
    late: int
    not_done: int
    missed_steps: tuple[str, ...]


@dataclass(frozen=True)
class Metrics:
    """The communication numbers of section 4."""

    first_public: FirstMessage
    cerc: tuple[CercCheck, ...]
    approvals: tuple[ApprovalTime, ...]
    languages_required: tuple[str, ...]
    languages_delivered: tuple[str, ...]
    languages_short: tuple[tuple[str, tuple[str, ...]], ...]
    channels: tuple[ChannelCount, ...]
    acks: Acks
    concerns: tuple[Concern, ...]
    deadlines: tuple[RoleDeadlines, ...]

    @property
    def languages_missing(self) -> tuple[str, ...]:
        """Required languages nothing was delivered in."""
        return tuple(x for x in self.languages_required if x not in self.languages_delivered)


@dataclass(frozen=True)
class Finding:
    """A strength or an area for improvement, pointing back to the steps and roles concerned."""

    area: str
    text: str
    steps: tuple[str, ...] = ()
    roles: tuple[str, ...] = ()
    recommendation: str = ""


@dataclass(frozen=True)
class AfterAction:
    """The whole report; `improvements` are the rows of the improvement plan."""

    overview: Overview
    objectives: tuple[ObjectiveResult, ...]
    timeline: tuple[TimelineRow, ...]
    metrics: Metrics
    strengths: tuple[Finding, ...]
    improvements: tuple[Finding, ...]
    role_titles: Mapping[str, str]


def after_action(frozen: Mapping[str, Any], events: Sequence[Event]) -> AfterAction:
    """The after-action report of an incident from its frozen document and its whole log."""
    log = list(events)
    activated = next((e for e in log if e.kind == "activated"), None)
    if activated is None:
        raise ValueError("the log has no activation entry: there is nothing to report")
    version = Version(activated.incident_id, frozen)
    overview = _overview(version, activated, log)
    timeline = _timeline(version.playbook, overview, log)
    objectives = _objectives(version.playbook, log)
    metrics = _metrics(version, activated, overview, timeline, log)
    strengths, improvements = _findings(version.playbook, overview, objectives, timeline, metrics)
    return AfterAction(overview, objectives, timeline, metrics, strengths, improvements,
                       {name: role.title for name, role in version.playbook.roles.items()})


# formatting shared with reportdoc: the findings are sentences, so they need it here

DAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
MONTHS = ("January", "February", "March", "April", "May", "June", "July", "August",
          "September", "October", "November", "December")


def span(duration: timedelta) -> str:
    """A duration as comms teams say it: `45 s`, `48 min`, `1 h 05 min`, `2 d 3 h 00 min`."""
    seconds = int(duration.total_seconds())
    sign, seconds = ("-" if seconds < 0 else ""), abs(seconds)
    if seconds < 60:
        return f"{sign}{seconds} s"
    days, minutes = divmod((seconds + 30) // 60, 1440)
    hours, minutes = divmod(minutes, 60)
    if days:
        return f"{sign}{days} d {hours} h {minutes:02d} min"
    return f"{sign}{hours} h {minutes:02d} min" if hours else f"{sign}{minutes} min"


def clock(moment: datetime, start: datetime) -> str:
    """HH:MM in the zone of `start`, with the day when it is not the day the incident began."""
    local = moment.astimezone(start.tzinfo)
    if local.date() == start.date():
        return f"{local:%H:%M}"
    return f"{DAYS[local.weekday()][:3]} {local.day} {MONTHS[local.month - 1][:3]} {local:%H:%M}"


def long_date(moment: datetime) -> str:
    """`Monday 4 May 2026, 09:00` (locale-independent, so reports do not vary by machine)."""
    return (f"{DAYS[moment.weekday()]} {moment.day} {MONTHS[moment.month - 1]} {moment.year}, "
            f"{moment:%H:%M}")


def median(values: Sequence[timedelta]) -> timedelta | None:
    """The middle value (the mean of the two middle ones for an even count)."""
    ordered = sorted(values)
    if not ordered:
        return None
    middle = len(ordered) // 2
    return ordered[middle] if len(ordered) % 2 else (ordered[middle - 1] + ordered[middle]) / 2


# 1. overview

def _overview(version: Version, activated: Event, log: list[Event]) -> Overview:
    pb, zone, data = version.playbook, version.zone, activated.data
    scenario, closed = _first(log, "scenario"), _first(log, "closed")
    stood = _first(log, "stood_down")
    told = scenario.data if scenario else {}
    speed = told.get("speed") or (data.get("clock") or {}).get("speed") or ""
    if isinstance(speed, int | float):
        speed = "" if speed == 1 else f"{speed:g}× real time"
    end = closed or log[-1]
    if closed:
        reason = str(closed.data.get("reason") or "closed")
    else:
        reason = "stood down, not yet closed" if stood else "still open at the last log entry"
    return Overview(
        incident_id=activated.incident_id, playbook_id=pb.id, playbook_title=pb.title,
        version=str(data.get("version", ""))[:12], exercise=data.get("mode") == "exercise",
        timezone=str(version.document["timezone"]), started=activated.at.astimezone(zone),
        ended=end.at.astimezone(zone), closed=closed is not None, end_reason=reason,
        no_play=bool(closed and closed.data.get("no_play")),
        stood_down=stood.at.astimezone(zone) if stood else None,
        scenario_title=str(told.get("title", "")), scenario_summary=str(told.get("summary", "")),
        speed=str(speed), participants=tuple(str(p) for p in data.get("participants", ())),
        assignments=tuple(Assignment(
            str(a["role"]), pb.roles[a["role"]].title if a["role"] in pb.roles else a["role"],
            a.get("holder"), a.get("backup"), str(a.get("note") or ""))
            for a in (e.data for e in log if e.kind == "assigned")),
        params=tuple((k, str(v)) for k, v in sorted(dict(data.get("params") or {}).items())),
        entries=len(log), head=log[-1].hash)


def _first(log: Sequence[Event], kind: str) -> Event | None:
    return next((e for e in log if e.kind == kind), None)


# 2. objectives

def _objectives(pb: Playbook, log: list[Event]) -> tuple[ObjectiveResult, ...]:
    scenario = _first(log, "scenario")
    if scenario is None:
        return ()
    steps = {s.id: s for s in pb.steps if isinstance(s, InjectStep)}
    arrivals: dict[str, Event] = {}
    for event in log:
        if event.kind == "inject":
            arrivals.setdefault(event.step_id, event)
    # The latest rating wins: an evaluator may change their mind after the hot wash.
    rated = {e.data.get("objective"): e for e in log
             if e.kind == "rated" and e.data.get("rating") in RATINGS}
    injects = list(scenario.data.get("injects") or ())
    results = []
    for objective in scenario.data.get("objectives") or ():
        oid = str(objective["id"])
        evidence = tuple(_evidence(i, steps, arrivals, log) for i in injects
                         if i.get("objective") == oid and i.get("expect"))
        derived = _derive(evidence)
        rating = rated.get(oid)
        results.append(ObjectiveResult(
            oid, str(objective.get("text", "")), str(objective.get("capability") or ""),
            str(rating.data["rating"]) if rating else derived, derived,
            rating.actor if rating else "", str(rating.data.get("note") or "") if rating else "",
            evidence))
    return tuple(results)


def _evidence(inject: Mapping[str, Any], steps: Mapping[str, InjectStep],
              arrivals: Mapping[str, Event], log: list[Event]) -> Evidence:
    iid, backup_id = str(inject["id"]), inject.get("backup_id")
    step = steps.get(iid) or _inject_step(inject)
    assert step.expect is not None, "only injects with an expectation are passed"
    expected = f"{_action(step.expect)} within {span(step.expect.within)}"
    first = arrivals.get(iid)
    if first is None:
        return Evidence(iid, expected, "not played", None, None)
    # The backup's step counts answers to either inject; the main one's only its own.
    taken = met(steps.get(backup_id or "", step), first.at, log)
    backup = arrivals.get(backup_id) if backup_id else None
    outcome: Outcome = "not taken"
    if taken is not None:
        outcome = ("after backup" if backup and taken.at >= backup.at
                   else "on time" if on_time(step, first.at, taken) else "late")
    return Evidence(iid, expected, outcome, first.at, first.at + step.expect.within,
                    taken.at if taken else None, taken.seq if taken else None,
                    taken.kind if taken else "", taken.actor if taken else "",
                    backup.at if backup else None)


def _inject_step(inject: Mapping[str, Any]) -> InjectStep:
    """An inject missing from the frozen playbook, rebuilt from the scenario entry."""
    expect = inject["expect"]
    return InjectStep(id=str(inject["id"]), at=timedelta(seconds=inject.get("at_seconds") or 0),
                      inject=str(inject.get("text") or inject["id"]),
                      objective=inject.get("objective"),
                      expect=Expectation(action=expect["action"], step=expect.get("step"),
                                         within=timedelta(seconds=expect["within_seconds"])))


def _action(expect: Expectation) -> str:
    return {"answer": "an answer to the inject", "approve": f"approval of {expect.step}",
            "task": f"task {expect.step} done", "message": f"message {expect.step} sent",
            "log": "a log entry", "escalate": "escalation",
            "stand_down": "stand-down"}[expect.action]


def _derive(evidence: Sequence[Evidence]) -> str | None:
    played = [e.outcome for e in evidence if e.outcome != "not played"]
    if not played:
        return None
    if all(o == "on time" for o in played):
        return "P"
    if "not taken" not in played:
        return "S"
    return "M" if any(o != "not taken" for o in played) else "U"


# 3. planned versus actual

def _timeline(pb: Playbook, ov: Overview, log: list[Event]) -> tuple[TimelineRow, ...]:
    firsts: dict[tuple[str, str, int], Event] = {}
    messages = {s.id for s in pb.steps if isinstance(s, MessageStep)}
    for e in log:
        number = occurrence(e, messages) if e.kind == "sent" else e.data.get("number", 1)
        if isinstance(number, int):
            firsts.setdefault((e.kind, e.step_id, number), e)
    skipped = {(e.step_id, n) for e in log if e.kind == "skipped" for n in e.data.get("numbers", ())}
    unneeded = {e.step_id for e in log if e.kind == "skipped" and e.data.get("unless")}
    triggers = {kind: [e.at for e in log if e.kind == kind] for kind in TRIGGERS.values()}
    rows = []
    for order, step in enumerate(pb.steps):
        if isinstance(step, InjectStep) and not ov.exercise:
            continue  # the engine skips injects in real incidents; they are not the city's plan
        numbers = {n for kind, sid, n in firsts if kind == "due" and sid == step.id}
        until = triggers.get(TRIGGERS.get(step.repeat_until or "", ""), [])
        for n in range(1, 1000):
            when = _planned(step, n, ov.started, triggers)
            if when is None or when > ov.ended or (until and when > until[0]):
                break
            numbers.add(n)
        for n in sorted(numbers):
            def got(kind: str, sid: str = step.id, n: int = n) -> Event | None:
                return firsts.get((kind, sid, n))
            fired, planned = got("due"), _planned(step, n, ov.started, triggers)
            deadline = None
            if isinstance(step, TaskStep):
                done, label, roles = got("task_done"), "done", (step.role,)
                deadline = fired.at + step.due if fired and step.due else None
                status: Status = ("on time" if done and not done.data.get("late") else
                                  "late" if done else "not done")
            elif isinstance(step, MessageStep):
                done, label, roles = got("sent"), "first sent", step.approval
                status = ("not sent" if done is None else "late" if planned and
                          done.at - planned > MESSAGE_SLACK else "on time")
            else:
                done, label, roles = got("inject", n=1), "delivered", step.roles
                status = "late" if got("late") else "on time" if done else "not fired"
            if (step.id, n) in skipped:
                status = "skipped"
            elif step.id in unneeded:
                status = "not needed"
            elif fired is None:
                status = "not fired"
            rows.append((planned or (fired.at if fired else ov.ended), order, TimelineRow(
                step.id, n, "task" if isinstance(step, TaskStep) else "message" if isinstance(
                    step, MessageStep) else "inject", ",".join(roles), _local(planned, ov),
                _local(fired.at if fired else None, ov), _local(done.at if done else None, ov),
                label, _local(deadline, ov), status)))
    return tuple(row for *_, row in sorted(rows, key=lambda r: (r[0], r[1], r[2].number)))


def _planned(step: Any, number: int, start: datetime,
             triggers: Mapping[str, list[datetime]]) -> datetime | None:
    if step.on is None:
        return due_at(step, start, number)
    times = triggers[TRIGGERS[step.on]]
    return due_after_event(step, times[number - 1]) if number <= len(times) else None


def _local(moment: datetime | None, ov: Overview) -> datetime | None:
    return moment.astimezone(ov.started.tzinfo) if moment else None


def occurrence(event: Event, messages: set[str] | Mapping[str, Any]) -> int | None:
    """The occurrence number of a delivery of a message step; None for the engine's notices.

    Message deliveries are keyed incident/step/number/recipient/lang/channel (reminders and
    backups add a part); approval requests and task notices share the step id but not the
    shape, and must not count as the message going out.
    """
    parts = str(event.data.get("key", "")).split("/")
    if (event.step_id not in messages or len(parts) < 6 or parts[1] != event.step_id
            or not parts[2].isdigit()):
        return None
    return int(parts[2])
