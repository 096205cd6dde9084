"""The after-action report (HSEEP-shaped): a pure function of the frozen playbook and the log.

This module assembles the report (`after_action`) and computes its first three sections, the
overview, the objectives and planned versus actual, with the formatting helpers the findings
share with `reportdoc`; `reportmetrics` computes sections 4 to 6 from them. Nothing here reads
a clock, a file or a database: the same log gives the same report, so a report can be
recomputed by anyone holding the log and checked against its hash chain. The numbers come from
the log only; where the log cannot decide (an objective no inject tested), the report says an
evaluator is needed rather than guessing. `reportdoc` renders it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal

from playbook.errors import BadInput
from playbook.events import Event
from playbook.model import Expectation, InjectStep, MessageStep, Playbook, Step, TaskStep
from playbook.plan import due_after_event, due_at
from playbook.scenario import RATINGS, met, on_time, repeating
from playbook.version import Version

if TYPE_CHECKING:
    from playbook.reportmetrics import Finding, Metrics

MESSAGE_SLACK = timedelta(minutes=15)
"""A message counts as late when it went out this long after its planned time (approval time)."""
TRIGGERS = {"stand_down": "stood_down", "escalate": "escalated", "de_escalate": "de_escalated"}
Status = Literal["on time", "late", "open", "not done", "not sent", "not fired", "skipped",
                 "not needed"]
Outcome = Literal["on time", "late", "after backup", "not taken", "not played"]
StepKind = Literal["task", "message", "inject"]
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
    kind: StepKind
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
        raise BadInput.one(log[0].incident_id if log else "log", "the log has no activation "
                           "entry, so there is no incident to report on",
                           "check the incident id with `playbook status`")
    # Imported here: reportmetrics builds on the sections below, so it imports this module.
    from playbook import reportmetrics

    version = Version(activated.incident_id, frozen)
    overview = _overview(version, activated, log)
    timeline = _timeline(version.playbook, overview, log)
    objectives = _objectives(version.playbook, log)
    metrics = reportmetrics.metrics(version, activated, overview, timeline, log)
    strengths, improvements = reportmetrics.findings(version.playbook, overview, objectives,
                                                     timeline, metrics)
    return AfterAction(overview, objectives, timeline, metrics, strengths, improvements,
                       {name: role.title for name, role in version.playbook.roles.items()})


# formatting shared with reportdoc and reportmetrics: the findings are sentences too

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


def plural(count: int, word: str, words: str = "") -> str:
    """`1 concern`, `2 concerns`, `0 deliveries`."""
    return f"{count} {word if count == 1 else words or word + 's'}"


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
        evidence = tuple(_evidence(i, steps, arrivals, log, repeating(pb)) for i in injects
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
              arrivals: Mapping[str, Event], log: list[Event],
              repeats: frozenset[str]) -> Evidence:
    iid, backup_id = str(inject["id"]), inject.get("backup_id")
    step = steps.get(iid) or _inject_step(inject)
    assert step.expect is not None, "only injects with an expectation are passed"
    expected = f"{_action(step.expect)} within {span(step.expect.within)}"
    first = arrivals.get(iid)
    if first is None:
        return Evidence(iid, expected, "not played", None, None)
    # The backup's step counts answers to either inject; the main one's only its own.
    taken = met(steps.get(backup_id or "", step), first.at, log, repeats)
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
    skipped = {(e.step_id, n) for e in log if e.kind == "skipped"
               for n in e.data.get("numbers", ())}
    skipped |= {(e.step_id, 1) for e in log if e.kind == "skipped" and e.data.get("unless")}
    # A stand-down cancels the pending drafts of the repeats it ends: not sent, by design.
    for sid, at in cut_off(log).items():
        skipped |= {(s, n) for kind, s, n in firsts if kind == "due" and s == sid
                    and s in messages and firsts[kind, s, n].at <= at
                    and ("sent", s, n) not in firsts}
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
            row = _row(step, n, _planned(step, n, ov.started, triggers), firsts,
                       (step.id, n) in skipped, ov)
            rows.append((row.planned or row.fired or ov.ended, order, n, row))
    return tuple(r[-1] for r in sorted(rows, key=lambda r: r[:3]))


def _row(step: Step, n: int, planned: datetime | None,
         firsts: Mapping[tuple[str, str, int], Event], skipped: bool,
         ov: Overview) -> TimelineRow:
    fired = firsts.get(("due", step.id, n))
    deadline = None
    roles: tuple[str, ...]
    status: Status
    kind: StepKind
    if isinstance(step, TaskStep):
        kind, label, roles = "task", "done", (step.role,)
        done = firsts.get(("task_done", step.id, n))
        deadline = fired.at + step.due if fired and step.due else None
        status = "late" if done and done.data.get("late") else "on time" if done else (
            "open" if deadline and deadline > ov.ended else "not done")
    elif isinstance(step, MessageStep):
        kind, label, roles = "message", "first sent", step.approval
        done = firsts.get(("sent", step.id, n))
        status = ("not sent" if done is None else "late" if planned and
                  done.at - planned > MESSAGE_SLACK else "on time")
    else:
        kind, label, roles = "inject", "delivered", step.roles
        done = firsts.get(("inject", step.id, 1))
        status = "late" if ("late", step.id, n) in firsts else "on time"
    if skipped:
        status = "not needed" if kind == "inject" else "skipped"
    elif fired is None:
        status = "not fired"
    return TimelineRow(step.id, n, kind, ",".join(roles), local_time(planned, ov),
                       local_time(fired.at if fired else None, ov),
                       local_time(done.at if done else None, ov), label, local_time(deadline, ov),
                       status)


def cut_off(log: Sequence[Event]) -> dict[str, datetime]:
    """When an event (a stand-down) ended each repeating step, from the engine's `skipped`."""
    ended: dict[str, datetime] = {}
    for e in log:
        if e.kind == "skipped":
            for sid in e.data.get("steps", ()):
                ended.setdefault(str(sid), e.at)
    return ended


def _planned(step: Step, number: int, start: datetime,
             triggers: Mapping[str, list[datetime]]) -> datetime | None:
    if step.on is None:
        return due_at(step, start, number)
    times = triggers[TRIGGERS[step.on]]
    return due_after_event(step, times[number - 1]) if number <= len(times) else None


def local_time(moment: datetime | None, ov: Overview) -> datetime | None:
    """`moment` in the incident's time zone (None stays None)."""
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
