"""Sections 4 to 6 of the after-action report: communication numbers, findings and the plan.

`report` computes the overview, the objectives and planned versus actual; this module turns
them and the log into the communication metrics (first public message, first-message elements,
approval times, languages, deliveries, intermediaries, concerns, role deadlines), then into the
strengths and areas for improvement whose rows make the improvement plan. Like `report`, it is
a pure function of the frozen playbook and the log: no clock, no file, no database.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from playbook.checks import message_context
from playbook.events import Event
from playbook.model import InjectStep, MessageStep, Playbook, TaskStep
from playbook.render import CERC_BLOCKS, TemplateError
from playbook.report import (
    MESSAGE_SLACK,
    ObjectiveResult,
    Overview,
    TimelineRow,
    cut_off,
    local_time,
    median,
    occurrence,
    plural,
    span,
)
from playbook.version import Version

FIRST_MESSAGE_GOAL = timedelta(minutes=60)
"""CERC: the first public message within the hour, even if it can only say what is not known."""
ACK_GOAL = 0.8


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


# 4. communication

def metrics(version: Version, activated: Event, ov: Overview,
             timeline: Sequence[TimelineRow], log: list[Event]) -> Metrics:
    """The communication numbers of section 4, from the log and the planned-versus-actual rows."""
    pb = version.playbook
    messages = {s.id: s for s in pb.steps if isinstance(s, MessageStep)}
    deliveries = [e for e in log if e.kind in ("sent", "failed", "dead", "unknown_outcome")
                  and occurrence(e, messages) is not None]
    sent = [e for e in deliveries if e.kind == "sent"]
    first = next((e for e in sent if messages[e.step_id].to.is_public), None)
    planned = next((r.planned for r in timeline if first and (r.step_id, r.number) == (
        first.step_id, occurrence(first, messages))), None)
    first_public = FirstMessage(first.step_id if first else None, planned,
                                local_time(first.at if first else None, ov),
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
                local_time(answer.at if answer else None, ov), answer.actor if answer else "",
                str(answer.data.get("text", "")) if answer else ""))
    return tuple(found)


# 5 and 6. strengths, areas for improvement and the plan

def findings(pb: Playbook, ov: Overview, objectives: Sequence[ObjectiveResult],
              timeline: Sequence[TimelineRow],
              m: Metrics) -> tuple[tuple[Finding, ...], tuple[Finding, ...]]:
    """Sections 5 and 6: (strengths, areas for improvement); the latter are the plan's rows."""
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
