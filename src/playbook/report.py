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

from playbook.checks import message_context
from playbook.errors import BadInput
from playbook.events import Event
from playbook.model import Expectation, InjectStep, MessageStep, Playbook, Step, TaskStep
from playbook.plan import due_after_event, due_at
from playbook.render import CERC_BLOCKS, TemplateError
from playbook.scenario import RATINGS, met, on_time
from playbook.version import Version

FIRST_MESSAGE_GOAL = timedelta(minutes=60)
"""CERC: the first public message within the hour, even if it can only say what is not known."""
MESSAGE_SLACK = timedelta(minutes=15)
"""A message counts as late when it went out this long after its planned time (approval time)."""
ACK_GOAL = 0.8
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
    lost_steps: tuple[str, ...] = ()


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
        raise BadInput.one(log[0].incident_id if log else "log", "the log has no activation "
                           "entry, so there is no incident to report on",
                           "check the incident id with `playbook status`")
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
    return TimelineRow(step.id, n, kind, ",".join(roles), _local(planned, ov),
                       _local(fired.at if fired else None, ov),
                       _local(done.at if done else None, ov), label, _local(deadline, ov),
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


# 4. communication

def _metrics(version: Version, activated: Event, ov: Overview,
             timeline: Sequence[TimelineRow], log: list[Event]) -> Metrics:
    pb = version.playbook
    messages = {s.id: s for s in pb.steps if isinstance(s, MessageStep)}
    deliveries = [e for e in log if e.kind in ("sent", "failed", "dead", "unknown_outcome")
                  and occurrence(e, messages) is not None]
    sent = [e for e in deliveries if e.kind == "sent"]
    first = next((e for e in sent if messages[e.step_id].to.is_public), None)
    planned = next((r.planned for r in timeline if first and (r.step_id, r.number) == (
        first.step_id, occurrence(first, messages))), None)
    first_public = FirstMessage(first.step_id if first else None, planned,
                                _local(first.at if first else None, ov),
                                first.at - ov.started if first else None)
    cerc = tuple(_cerc(version, activated, step, next((e.at for e in sent if e.step_id == step.id),
                                                      None)) for step in messages.values()
                 if step.cerc == "first")
    required = pb.languages

    def base(tag: str) -> str:
        return next((r for r in required if tag == r or tag.startswith(r + "-")), tag)

    delivered = {base(str(e.data.get("lang"))) for e in sent}
    short = []
    for sid in dict.fromkeys(e.step_id for e in sent):
        if messages[sid].to.public:  # public channels get every language; people, their own
            langs = {base(str(e.data.get("lang"))) for e in sent if e.step_id == sid}
            if gaps := tuple(x for x in required if x not in langs):
                short.append((sid, gaps))
    counts = Counter((str(e.data.get("channel")), e.kind) for e in deliveries)
    channels = tuple(ChannelCount(
        c, counts[c, "sent"], counts[c, "failed"], counts[c, "dead"], counts[c, "unknown_outcome"],
        tuple(dict.fromkeys(e.step_id for e in deliveries if e.data.get("channel") == c
                            and e.kind in ("dead", "unknown_outcome"))))
        for c in sorted({c for c, _ in counts}))
    tasks: dict[str, list[TimelineRow]] = {}
    for row in timeline:
        if row.kind == "task" and row.status in ("on time", "late", "not done"):
            tasks.setdefault(row.role, []).append(row)
    deadlines = tuple(RoleDeadlines(
        role, pb.roles[role].title if role in pb.roles else role,
        sum(r.status == "on time" for r in rows), sum(r.status == "late" for r in rows),
        sum(r.status == "not done" for r in rows),
        tuple(dict.fromkeys(r.step_id for r in rows if r.late))) for role, rows in sorted(
            tasks.items(), key=lambda kv: list(pb.roles).index(kv[0]) if kv[0] in pb.roles else 0))
    ordered = [x for x in required if x in delivered] + sorted(delivered - set(required))
    return Metrics(first_public, cerc, _approvals(pb, log), required, tuple(ordered),
                   tuple(short), channels, _acks(log), _concerns(log, ov), deadlines)


def _cerc(version: Version, activated: Event, step: MessageStep,
          sent: datetime | None) -> CercCheck:
    """Re-render the frozen templates with the activation values: what went out, not a sample."""
    pb = version.playbook
    values = dict(activated.data.get("params") or {})
    for name, parameter in pb.parameters.items():
        if parameter.type == "datetime" and isinstance(values.get(name), str):
            values[name] = datetime.fromisoformat(values[name])
    context = message_context(pb, values, version.city, activated.at, activated.incident_id,
                              step)
    missing = []
    for lang in pb.languages:
        source = version.templates.get(step.message, lang)
        try:
            if source is None:
                raise LookupError(f"no {lang} template")
            blocks = version.renderer.render(source, context, locale=lang).blocks
        except (TemplateError, LookupError) as exc:
            error = exc.problem.message if isinstance(exc, TemplateError) else str(exc)
            return CercCheck(step.id, sent, (), f"{lang}: {error}")
        missing.append((lang, tuple(b for b in CERC_BLOCKS if not blocks.get(b))))
    return CercCheck(step.id, sent, tuple(missing))


def _approvals(pb: Playbook, log: list[Event]) -> tuple[ApprovalTime, ...]:
    # From the first draft of an occurrence: a rejection and an edit are part of the wait.
    drafted: dict[tuple[str, int, str], datetime] = {}
    decided: dict[tuple[str, int, str], timedelta] = {}
    rejected: Counter[tuple[str, str]] = Counter()
    for e in log:
        key = (e.step_id, int(e.data.get("number", 1)), str(e.data.get("lang", "")))
        if e.kind == "drafted":
            drafted.setdefault(key, e.at)
        elif e.kind == "approved" and key in drafted and key not in decided:
            decided[key] = e.at - drafted[key]
        elif e.kind == "rejected":
            rejected[key[0], key[2]] += 1
    cut = cut_off(log)
    drafted = {k: at for k, at in drafted.items()
               if k in decided or not (k[0] in cut and at <= cut[k[0]])}
    order = {s.id: i for i, s in enumerate(pb.steps)}
    groups = sorted({(s, lang) for s, _, lang in drafted},
                    key=lambda g: (order.get(g[0], len(order)), pb.languages.index(g[1])
                                   if g[1] in pb.languages else len(pb.languages), g[1]))
    return tuple(ApprovalTime(
        s, lang, tuple(t for (ks, _, kl), t in decided.items() if (ks, kl) == (s, lang)),
        sum(1 for k in drafted if (k[0], k[2]) == (s, lang) and k not in decided),
        rejected[s, lang]) for s, lang in groups)


def _acks(log: list[Event]) -> Acks:
    asked = {e.step_id: 0 for e in log if e.kind == "enqueued" and e.data.get("asked_to_confirm")}
    for e in log:
        if e.step_id in asked and e.kind == "enqueued":
            asked[e.step_id] += int(e.data.get("asked_to_confirm") or 0)
    # A relay confirmed later is logged as a second `acked` of the same briefing.
    first: dict[tuple[str, Any, Any], Event] = {}
    relayed: set[tuple[str, Any, Any]] = set()
    for e in log:
        if e.kind == "acked":
            key = (e.step_id, e.data.get("number"), e.data.get("recipient"))
            first.setdefault(key, e)
            if e.data.get("relayed"):
                relayed.add(key)
    return Acks(sum(asked.values()), len(first), len(relayed),
                tuple(timedelta(seconds=int(e.data.get("after_seconds") or 0))
                      for e in first.values()),
                sum(e.kind == "reminded" for e in log), sum(e.kind == "ack_overdue" for e in log),
                tuple(asked))


def _concerns(log: list[Event], ov: Overview) -> tuple[Concern, ...]:
    answers: dict[str, Event] = {}
    for e in log:
        if e.kind == "answered" and e.data.get("concern") is not None:
            answers.setdefault(str(e.data["concern"]), e)
    found = []
    for e in log:
        if e.kind == "concern":
            answer = answers.get(str(e.seq))
            found.append(Concern(
                e.seq, e.at.astimezone(ov.started.tzinfo), str(e.data.get("name") or e.actor),
                str(e.data.get("via", "")), str(e.data.get("text", "")), e.step_id,
                _local(answer.at if answer else None, ov), answer.actor if answer else "",
                str(answer.data.get("text", "")) if answer else ""))
    return tuple(found)


# 5 and 6. strengths, areas for improvement and the plan

def _findings(pb: Playbook, ov: Overview, objectives: Sequence[ObjectiveResult],
              timeline: Sequence[TimelineRow],
              m: Metrics) -> tuple[tuple[Finding, ...], tuple[Finding, ...]]:
    good: list[Finding] = []
    bad: list[Finding] = []
    steps = {s.id: s for s in pb.steps}

    def roles(*ids: str) -> tuple[str, ...]:
        found: list[str] = []
        for sid in ids:
            step = steps.get(sid)
            found += ([step.role] if isinstance(step, TaskStep) else list(step.approval)
                      if isinstance(step, MessageStep) else list(step.roles) if step else [])
        return tuple(dict.fromkeys(found))

    def flag(area: str, text: str, ids: Sequence[str], advice: str,
             who: Sequence[str] | None = None) -> None:
        ids = tuple(dict.fromkeys(ids))
        bad.append(Finding(area, text, ids, tuple(who) if who is not None else roles(*ids),
                           advice))

    first, goal = m.first_public, int(FIRST_MESSAGE_GOAL.total_seconds() // 60)
    public = [s.id for s in pb.message_steps() if s.to.is_public and s.on is None]
    if first.step_id and first.after is not None and first.after <= FIRST_MESSAGE_GOAL:
        good.append(Finding("First public message", f"First public message ({first.step_id}) "
                            f"{span(first.after)} after activation, within the {goal}-minute "
                            "goal.", (first.step_id,)))
    elif first.step_id and first.after is not None:
        flag("First public message", f"First public message ({first.step_id}) "
             f"{span(first.after)} after activation, over the {goal}-minute goal.",
             [first.step_id], "Pre-approve a short first message, or name more approvers who "
             "can be reached at once.")
    elif public:
        flag("First public message", "No public message went out.", public[:1],
             "Find out what held it: approval, the audience in the directory, or the channels.")
    for check in m.cerc:
        if check.error:
            flag("First message elements", f"The first statement ({check.step_id}) could not "
                 f"be checked again: {check.error}.", [check.step_id],
                 "Run `playbook validate` on the playbook and fix the template.")
        elif not check.complete:
            lacks = "; ".join(f"{lang}: {', '.join(b)}" for lang, b in check.missing if b)
            flag("First message elements", f"The first statement ({check.step_id}) lacked "
                 f"first-message elements ({lacks}).", [check.step_id],
                 "Fill every block (empathy, facts, unknown, actions, instructions, more_info) "
                 "in every language.")
        elif check.sent:
            good.append(Finding("First message elements", f"The first statement "
                                f"({check.step_id}) had all six first-message elements in all "
                                f"{len(check.missing)} languages.", (check.step_id,)))
    times = [t for a in m.approvals for t in a.times]
    slow = [a for a in m.approvals if (a.median or timedelta(0)) > MESSAGE_SLACK]
    stuck = [a for a in m.approvals if a.pending]
    for a in slow:
        flag("Approval time", f"Approving {a.step_id} ({a.lang}) took a median of "
             f"{span(a.median or timedelta(0))}, over {span(MESSAGE_SLACK)}.", [a.step_id],
             "Agree approvers in advance and keep a second approver on call.")
    if stuck:
        flag("Approval time", f"{sum(a.pending for a in stuck)} draft(s) were never approved: "
             + ", ".join(f"{a.step_id} ({a.lang})" for a in stuck) + ".",
             [a.step_id for a in stuck], "Decide every draft: approve, edit or reject it.")
    if times and not slow:
        good.append(Finding("Approval time", f"Drafts were approved in a median of "
                            f"{span(median(times) or timedelta(0))} (slowest "
                            f"{span(max(times))}).", tuple(dict.fromkeys(
                                a.step_id for a in m.approvals))))
    if m.languages_missing:
        sent_public = [s for s, _ in m.languages_short] or public
        flag("Languages", f"{len(m.languages_missing)} of {len(m.languages_required)} required "
             f"languages were never delivered: {', '.join(m.languages_missing)}.", sent_public,
             "Check those templates, and the channels and intermediaries that carry the "
             "languages.")
    elif m.languages_delivered:
        good.append(Finding("Languages", f"Messages went out in all {len(m.languages_required)} "
                            f"required languages ({', '.join(m.languages_required)})."))
    for sid, gaps in m.languages_short:
        if set(gaps) - set(m.languages_missing):
            flag("Languages", f"{sid} went out without {', '.join(gaps)}.", [sid],
                 "Check why these languages were not rendered or not sent.")
    lost = [c for c in m.channels if c.dead or c.unknown]
    for c in lost:
        flag("Delivery", f"On {c.channel}, {plural(c.dead, 'delivery', 'deliveries')} failed "
             f"for good and {plural(c.unknown, 'delivery', 'deliveries')} had an unknown "
             "outcome.", c.lost_steps,
             "Check the channel's addresses and credentials; reach those recipients another "
             "way.")
    if m.channels and not lost:
        good.append(Finding("Delivery", f"All {sum(c.sent for c in m.channels)} message "
                            "deliveries went out."))
    rate = m.acks.rate
    if rate is not None and rate >= ACK_GOAL:
        good.append(Finding("Intermediaries", f"{m.acks.confirmed} of {m.acks.asked} "
                            f"intermediaries confirmed the briefing ({rate:.0%}).",
                            m.acks.steps))
    elif rate is not None:
        flag("Intermediaries", f"Only {m.acks.confirmed} of {m.acks.asked} intermediaries "
             f"confirmed the briefing ({rate:.0%}, goal {ACK_GOAL:.0%}).", m.acks.steps,
             "Call those who did not confirm; check their contact details and chosen language.")
    open_concerns = [c for c in m.concerns if c.answered_at is None]
    if open_concerns:
        asked = list(m.acks.steps) or [s.id for s in pb.message_steps()
                                              if s.to.intermediaries is not None]
        flag("Concerns", f"{len(open_concerns)} of {plural(len(m.concerns), 'concern')} "
             f"{'was' if len(open_concerns) == 1 else 'were'} never answered (log "
             f"{'entry' if len(open_concerns) == 1 else 'entries'} "
             + ", ".join(str(c.seq) for c in open_concerns) + ").",
             [c.step_id for c in open_concerns if c.step_id] or asked,
             "Answer every concern, even to say what is not known yet, and log the answer.")
    elif m.concerns:
        good.append(Finding("Concerns", f"All {len(m.concerns)} concerns were answered."))
    for d in m.deadlines:
        if d.late or d.not_done:
            total = d.on_time + d.late + d.not_done
            how = [f"{d.late} done late"] * bool(d.late) + [f"{d.not_done} not done"] * bool(
                d.not_done)
            flag("Deadlines", f"{d.title}: {d.late + d.not_done} of "
                 f"{plural(total, 'task deadline')} missed ({', '.join(how)}).", d.missed_steps,
                 "Check the deadline and the backup: was the holder available and briefed?",
                 [d.role])
    met_roles = [d.title for d in m.deadlines if not (d.late or d.not_done)]
    if met_roles:
        good.append(Finding("Deadlines", "Every task deadline was met by: "
                            + ", ".join(met_roles) + "."))
    late_messages = [r for r in timeline if r.kind == "message" and r.late]
    if late_messages:
        flag("Timeline", "Messages late or not sent: " + ", ".join(
            f"{r.step_id} #{r.number} ({r.status})" for r in late_messages) + ".",
            [r.step_id for r in late_messages],
            "Find what held them: drafts waiting for approval, or the engine not running.")
    for o in objectives:
        # Point at what went wrong: the injects not handled on time, and the steps expected.
        wrong = [e for e in o.evidence if e.outcome != "on time"] or list(o.evidence)
        ids = [i for e in wrong for i in (e.inject_id, _expected_step(steps, e.inject_id)) if i]
        if o.rating == "P":
            good.append(Finding("Objectives", f"Objective {o.id} rated {o.label}.", tuple(ids)))
        elif o.rating is not None:
            problems = [f"{e.inject_id}: {e.outcome}" for e in o.evidence
                        if e.outcome != "on time"]
            flag("Objectives", f"Objective {o.id} rated {o.label}" + (
                f" ({'; '.join(problems)})" if problems else "") + ".", ids,
                 "Practise this in the next drill; check the playbook step and who holds it.",
                 roles(*(e.inject_id for e in wrong)))
    return tuple(good), tuple(bad)


def _expected_step(steps: Mapping[str, Any], inject_id: str) -> str:
    step = steps.get(inject_id)
    return str(step.expect.step or "") if isinstance(step, InjectStep) and step.expect else ""
