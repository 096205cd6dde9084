"""The incident engine: activation, the durable schedule, events, and what each due step does.

`tick(now)` is idempotent and safe to run from several processes: each due row is claimed in its
own transaction, and everything a step does (log entries, drafts, outbox rows, the next repeat)
commits with the claim or not at all. The scheduler only decides when to call it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from playbook import buttons, listening
from playbook.audience import available, choice_for, select, variants
from playbook.checks import message_context
from playbook.delivery import Delivery
from playbook.directory import Directory, assign_roles
from playbook.errors import BadInput, Problem
from playbook.events import fingerprint
from playbook.fanout import (
    cap_meta,
    esc,
    message_deliveries,
    notice,
    role_briefing,
    subject,
)
from playbook.isolation import reachable, seal
from playbook.model import InjectStep, MessageStep, Playbook, TaskStep, TriggerEvent
from playbook.plan import due_after_event, due_at
from playbook.ports import DraftRow, IncidentRow, Mode, ScheduleRow, Store, TaskRow, Tx
from playbook.render import TemplateError, TemplateLibrary
from playbook.scenario import met, repeating
from playbook.version import Version, freeze

FIRE_BATCH = 20
"""Due steps fired in one transaction."""


@dataclass(frozen=True)
class EngineSettings:
    """How patient the engine is."""

    approval_timeout: timedelta = timedelta(minutes=15)
    """A draft nobody approved in this time goes to the approvers' backups as well."""
    late_after: timedelta = timedelta(seconds=60)
    """A step that fires later than this after its due time is logged as late."""
    cap_sender: str = "playbook@example.org"


class Engine:
    """One city's engine: a store, a directory, and the rules of the playbooks it runs."""

    def __init__(self, store: Store, directory: Directory,
                 settings: EngineSettings | None = None,
                 on_enqueue: Callable[[], None] | None = None) -> None:
        self.store = store
        self.files = directory
        """The directory as its files say; `directory` adds what the bot learnt (`links`)."""
        self.directory = directory
        self.settings = settings or EngineSettings()
        self.on_enqueue = on_enqueue or (lambda: None)
        self._versions: dict[str, Version] = {}

    # activation

    def activate(self, playbook: Playbook, templates: TemplateLibrary, *, city: Mapping[str, str],
                 timezone: str, params: Mapping[str, Any], actor: str, now: datetime,
                 mode: Mode = "actual", participants: Sequence[str] = (),
                 clock: Mapping[str, Any] | None = None,
                 scenario: Mapping[str, Any] | None = None) -> IncidentRow:
        """Open an incident, fill its roles, brief the role holders and fire what is due now.

        A drill on a scaled clock records it (`clock`: speed and wall time), so every process
        can tell its scenario time; a drill's `scenario` (objectives, injects) is logged for
        the after-action report.
        """
        version, document = freeze(playbook, templates, city, timezone)
        with self.store.begin() as tx:
            incident = IncidentRow(
                id=tx.next_incident_id(now.year), playbook_id=playbook.id, title=playbook.title,
                kind=str(playbook.kind), version=version, frozen=document, mode=mode,
                params=json_params(params), started_at=now, activated_by=actor,
                participants=tuple(participants))
            tx.insert_incident(incident)
            tx.append(incident.id, "activated", now, actor=actor, data={
                "playbook": playbook.id, "version": version, "mode": mode,
                "params": incident.params, "participants": list(participants),
                **({"clock": dict(clock)} if clock else {})})
            if scenario is not None:
                tx.append(incident.id, "scenario", now, actor=actor, data=dict(scenario))
            assignments = assign_roles(playbook, self.directory)
            tx.insert_assignments(incident.id, assignments)
            thawed = self.version(incident)
            for a in assignments:
                tx.append(incident.id, "assigned", now, data={
                    "role": a.role, "holder": a.holder, "backup": a.backup, "note": a.note})
                if a.holder:
                    self.send(tx, notice(incident, self.directory, a.holder,
                                         role_briefing(incident, thawed, a.role),
                                         f"{incident.id}/briefing/{a.role}", now), now)
            for step in playbook.steps:
                when = due_at(step, now)
                if when is not None:
                    tx.add_schedule(incident.id, step.id, when, 1)
        self.tick(now, only=incident.id)
        return incident

    def version(self, incident: IncidentRow) -> Version:
        """The frozen playbook version an incident runs."""
        if incident.id not in self._versions:
            self._versions[incident.id] = Version(incident.id, incident.frozen)
        return self._versions[incident.id]

    def incident(self, tx: Tx, incident_id: str) -> IncidentRow:
        """The incident with this id, or a `BadInput` naming the ones that exist."""
        found = tx.incident(incident_id)
        if found is None:
            known = ", ".join(i.id for i in tx.incidents(open_only=True)[-5:]) or "none open"
            raise BadInput.one("incident", f"no incident {incident_id!r}",
                               f"use an incident id from `playbook status` ({known})")
        return found

    # the schedule

    def tick(self, now: datetime, only: str | None = None) -> int:
        """Fire every step that is due, escalate late approvals, flag overdue tasks.

        `only` limits the tick to one incident: a drill's clock must not move real incidents.
        """
        fired = 0
        while True:
            # A few steps per transaction: a backlog after a restart costs a commit per batch,
            # not per step. Each step still commits with its claim or not at all.
            with self.store.begin() as tx:
                rows = tx.due(now, limit=FIRE_BATCH, only=only)
                for row in rows:
                    if tx.claim_schedule(row.id, "fired", now):
                        self._fire(tx, row, now)
                        fired += 1
            if len(rows) < FIRE_BATCH:
                break
        with self.store.begin() as tx:
            self._escalate_approvals(tx, now, only)
            listening.chase(self, tx, now, only)
            for task in tx.overdue_tasks(now, only):
                tx.update_task(task.incident_id, task.step_id, task.number, overdue=True)
                tx.append(task.incident_id, "overdue", now, step_id=task.step_id, data={
                    "number": task.number, "role": task.role, "holder": task.holder,
                    "due_by": task.due_by.isoformat() if task.due_by else None})
        return fired

    def next_wake(self, only: str | None = None) -> datetime | None:
        """When the engine next has something to do (for one incident, with `only`)."""
        with self.store.begin() as tx:
            return tx.next_wake(only)

    def _fire(self, tx: Tx, row: ScheduleRow, now: datetime) -> None:
        incident = self.incident(tx, row.incident_id)
        if incident.state == "closed":
            return
        version = self.version(incident)
        step = version.step(row.step_id)
        tx.append(incident.id, "due", now, step_id=step.id,
                  data={"number": row.number, "due_at": row.due_at.isoformat()})
        late = now - row.due_at
        if late > self.settings.late_after:
            tx.append(incident.id, "late", now, step_id=step.id, data={
                "number": row.number, "late_by_seconds": int(late.total_seconds())})
        if isinstance(step, TaskStep):
            self._task(tx, incident, version, step, row.number, now)
        elif isinstance(step, MessageStep):
            self.message(tx, incident, step, row.number, now, requested_by=incident.activated_by)
        elif isinstance(step, InjectStep):
            self._inject(tx, incident, step, now)
        if step.every is not None and step.repeat_until and not tx.has_event(
                incident.id, _EVENT_KIND[step.repeat_until]):
            number = row.number + 1
            while (when := due_at(step, incident.started_at, number)) and when <= now:
                number += 1  # after downtime, one late update, not a burst of stale ones
            if number > row.number + 1:
                tx.append(incident.id, "skipped", now, step_id=step.id,
                          data={"numbers": list(range(row.number + 1, number))})
            if when is not None:
                tx.add_schedule(incident.id, step.id, when, number)

    def _task(self, tx: Tx, incident: IncidentRow, version: Version, step: TaskStep,
              number: int, now: datetime) -> None:
        holder = self.holders(tx, incident.id).get(step.role)
        due_by = now + step.due if step.due else None
        tx.add_task(TaskRow(incident.id, step.id, number, step.role, holder, due_by))
        if holder is None:
            return
        zone = version.zone
        deadline = f"\nDeadline: {due_by.astimezone(zone):%H:%M}" if due_by else ""
        text = (f"<b>Task now</b> — {esc(version.playbook.roles[step.role].title)}, incident "
                f"{incident.id}\n{esc(step.task)}{deadline}\n\nWhen done: "
                f"<code>playbook done {incident.id} {step.id}</code>")
        self.send(tx, notice(incident, self.directory, holder, text,
                              f"{incident.id}/{step.id}/{number}/task", now, step.id), now)

    def _inject(self, tx: Tx, incident: IncidentRow, step: InjectStep, now: datetime) -> None:
        if not incident.exercise:
            tx.append(incident.id, "skipped", now, step_id=step.id,
                      data={"reason": "injects only run in exercises"})
            return
        if step.unless:
            log = tx.events(incident.id)
            first = next((e for e in log if e.kind == "inject" and e.step_id == step.unless),
                         None)
            version = self.version(incident)
            main = version.step(step.unless)
            if first is not None and isinstance(main, InjectStep) and met(
                    main, first.at, log, repeating(version.playbook)):
                tx.append(incident.id, "skipped", now, step_id=step.id, data={
                    "reason": "expected action taken", "unless": step.unless})
                return
        holders = self.holders(tx, incident.id)
        people = sorted({p for r in (step.roles or tuple(holders)) if (p := holders.get(r))})
        tx.append(incident.id, "inject", now, step_id=step.id, data={
            "text": step.inject, "to": people, "role": ",".join(step.roles),
            "sender": step.sender, "channel": step.channel, "objective": step.objective,
            "expect": step.expect.model_dump(mode="json") if step.expect else None,
            "backup_for": step.unless})
        source = " · ".join(esc(p) for p in (step.channel or "", step.sender) if p)
        for person in people:
            self.send(tx, self._answer_button(tx, notice(
                incident, self.directory, person,
                f"<b>Inject</b>{' — ' + source if source else ''}\n{esc(step.inject)}\n\n"
                f"Answer: <code>playbook answer {incident.id} {step.id} \"...\"</code>",
                f"{incident.id}/{step.id}/{person}", now, step.id), step.id, now), now)

    # messages

    def message(self, tx: Tx, incident: IncidentRow, step: MessageStep, number: int,
                now: datetime, *, requested_by: str, params: Mapping[str, Any] | None = None,
                revision: int = 1) -> None:
        """Render one occurrence of a message step; queue it, or draft it for approval."""
        version = self.version(incident)
        values = {**self._params(incident, version), **(params or {})}
        recipients = select(step.to, self.directory, values, self.holders(tx, incident.id))
        if not recipients:
            tx.append(incident.id, "failed", now, step_id=step.id,
                      data={"number": number, "reason": "nobody in the directory matches the "
                            "audience"})
            return
        texts: dict[str, str] = {}
        offered = available(version.playbook, version.templates, step.message)
        context = message_context(version.playbook, values, version.city, incident.started_at,
                                  incident.id, step, number)
        for locale, lang in variants(recipients, offered, version.playbook).items():
            source = version.templates.get(step.message, lang)
            try:
                assert source is not None, "checked at validation"
                texts[locale] = version.renderer.render(
                    source, context, exercise=incident.exercise, locale=locale).text
            except TemplateError as exc:
                tx.append(incident.id, "failed", now, step_id=step.id, data={
                    "number": number, "lang": locale, "reason": str(exc.problem)})
        if step.approval and not step.preapproved:
            self._draft(tx, incident, step, number, texts, now, requested_by, params or {},
                        revision)
            return
        for lang, text in texts.items():
            tx.append(incident.id, "approved", now, step_id=step.id, actor="preapproved"
                      if step.preapproved else "internal", data={
                          "number": number, "lang": lang, "fingerprint": fingerprint(text)})
        self.enqueue(tx, incident, step, number, texts, now, recipients)

    def enqueue(self, tx: Tx, incident: IncidentRow, step: MessageStep, number: int,
                texts: Mapping[str, str], now: datetime,
                recipients: Sequence[Any] | None = None) -> int:
        """Queue the approved `texts` of one occurrence for everyone in the audience."""
        version = self.version(incident)
        if recipients is None:
            recipients = select(step.to, self.directory, self._params(incident, version),
                                self.holders(tx, incident.id))
        cap = None
        if any(c == "cap" for r in recipients for c, _ in r.addresses):
            cap = cap_meta(incident, version, step, number, self.settings.cap_sender,
                           tx.cap_alerts(incident.id, exclude=f"{incident.id}.{step.id}.{number}"))
        offered = available(version.playbook, version.templates, step.message)
        choices = {r.id: choice_for(r, offered, version.playbook) for r in recipients}
        locales = {rid: c.locale for rid, c in choices.items() if c is not None}
        tokens = listening.ask(tx, incident, step, number, recipients, locales, now)
        deliveries = message_deliveries(incident, version, step, number, recipients, texts,
                                        now, cap, tokens)
        added = self.send(tx, deliveries, now)
        fallback = sorted(rid for rid, c in choices.items() if c is not None and c.fallback)
        tx.append(incident.id, "enqueued", now, step_id=step.id, data={
            "number": number, "languages": sorted(texts), "deliveries": added,
            "asked_to_confirm": len(tokens), "fallback": fallback})
        return added

    def _draft(self, tx: Tx, incident: IncidentRow, step: MessageStep, number: int,
               texts: Mapping[str, str], now: datetime, requested_by: str,
               params: Mapping[str, Any], revision: int) -> None:
        escalate_at = now + self.settings.approval_timeout
        for lang, text in texts.items():
            draft_id = tx.add_draft(DraftRow(
                0, incident.id, step.id, number, lang, revision, subject(text), text,
                fingerprint(text), requested_by, now, escalate_at, params=dict(params)))
            tx.append(incident.id, "drafted", now, step_id=step.id, actor=requested_by, data={
                "draft": draft_id, "number": number, "lang": lang, "revision": revision,
                "fingerprint": fingerprint(text)})
        holders = self.holders(tx, incident.id)
        approvers = sorted({h for r in step.approval if (h := holders.get(r))} - {requested_by})
        tx.append(incident.id, "approval_requested", now, step_id=step.id, data={
            "number": number, "roles": list(step.approval), "notified": approvers})
        for person in approvers:
            self.send(tx, self._review(tx, notice(
                incident, self.directory, person, _approval_text(incident, step, texts),
                f"{incident.id}/{step.id}/{number}/r{revision}/approve", now, step.id),
                step.id, number, now), now)

    def _escalate_approvals(self, tx: Tx, now: datetime, only: str | None) -> None:
        seen: set[tuple[str, str, int]] = set()
        for draft in tx.drafts_to_escalate(now, only):
            tx.update_draft(draft.id, escalated=True)
            occurrence = (draft.incident_id, draft.step_id, draft.number)
            if occurrence in seen:
                continue
            seen.add(occurrence)
            incident = self.incident(tx, draft.incident_id)
            step = self.version(incident).step(draft.step_id)
            assert isinstance(step, MessageStep)
            backups = sorted({a.backup for a in tx.assignments(incident.id)
                              if a.role in step.approval and a.backup} - {draft.requested_by})
            tx.append(incident.id, "approval_escalated", now, step_id=step.id,
                      data={"number": draft.number, "notified": backups})
            texts = {d.lang: d.text for d in tx.drafts(incident.id, "pending")
                     if (d.step_id, d.number) == (step.id, draft.number)}
            for person in backups:
                self.send(tx, self._review(tx, notice(
                    incident, self.directory, person, _approval_text(
                        incident, step, texts, late=True),
                    f"{incident.id}/{step.id}/{draft.number}/r{draft.revision}/escalated",
                    now, step.id), step.id, draft.number, now), now)

    # events

    def event(self, incident_id: str, event: TriggerEvent, *, actor: str, now: datetime) -> int:
        """Stand down, escalate or de-escalate; returns how many waiting steps were scheduled.

        Repeats that end with the event stop (their pending drafts are cancelled too), and the
        steps that wait for it are scheduled from now.
        """
        with self.store.begin() as tx:
            incident = self.incident(tx, incident_id)
            if incident.state in ("stood_down", "closed"):
                raise BadInput.one(incident_id, f"the incident is already {incident.state}",
                                   "nothing to do; see `playbook status`")
            if event == "stand_down":
                tx.set_state(incident_id, "stood_down")
            tx.append(incident_id, _EVENT_KIND[event], now, actor=actor)
            steps = self.version(incident).playbook.steps
            ending = [s.id for s in steps if s.every is not None and s.repeat_until == event]
            stopped = tx.cancel_pending(incident_id, ending)
            for draft in tx.drafts(incident_id, "pending"):
                if draft.step_id in ending:
                    tx.update_draft(draft.id, state="cancelled", decided_at=now)
            waiting = [s for s in steps if s.on == event]
            for step in waiting:
                tx.add_schedule(incident_id, step.id, due_after_event(step, now))
            if ending:
                tx.append(incident_id, "skipped", now, actor=actor, data={
                    "reason": f"{event} ends repeating steps", "steps": ending,
                    "cancelled": stopped})
        self.tick(now)
        return len(waiting)

    def complete_task(self, incident_id: str, step_id: str, *, actor: str, note: str,
                      now: datetime) -> None:
        """Mark a role holder's task done, with a note for the report."""
        with self.store.begin() as tx:
            open_tasks = [t for t in tx.tasks(incident_id)
                          if t.step_id == step_id and t.done_at is None]
            if not open_tasks:
                raise BadInput([Problem(step_id, None, None, "", "no open task with this step id "
                                        f"in incident {incident_id}",
                                        "see `playbook status` for open tasks")])
            task = open_tasks[-1]
            tx.update_task(incident_id, step_id, task.number, done_at=now, done_by=actor,
                           note=note)
            tx.append(incident_id, "task_done", now, step_id=step_id, actor=actor,
                      data={"number": task.number, "note": note, "late": bool(
                          task.due_by and now > task.due_by)})

    # helpers

    def send(self, tx: Tx, deliveries: Sequence[Delivery], now: datetime) -> int:
        """Queue deliveries (each once) and wake the dispatcher: the only way into the outbox.

        Each passes `isolation.seal`, so an exercise reaches only its participants' own chats
        and its sandbox, whatever built the delivery.
        """
        gates: dict[str, tuple[bool, frozenset[tuple[str, str]]]] = {}
        for d in deliveries:
            if d.incident_id not in gates:
                incident = self.incident(tx, d.incident_id)
                gates[d.incident_id] = (incident.exercise, reachable(
                    self.directory, incident.participants) if incident.exercise else frozenset())
        sealed = [seal(d, exercise=gates[d.incident_id][0], incident_id=d.incident_id,
                       allowed=gates[d.incident_id][1]) for d in deliveries]
        added = tx.enqueue(sealed, now)
        if added:
            self.on_enqueue()
        return added

    @staticmethod
    def _review(tx: Tx, deliveries: Sequence[Delivery], step_id: str, number: int,
                now: datetime) -> list[Delivery]:
        """Approval requests on Telegram get a button that opens the drafts in the bot."""
        return [buttons.attach(d, [[("Review the drafts", buttons.make(
            tx, d.recipient_id, "review", {"incident": d.incident_id, "step": step_id,
                                           "number": number}, now))]])
                if d.channel == "telegram" else d for d in deliveries]

    @staticmethod
    def _answer_button(tx: Tx, deliveries: Sequence[Delivery], step_id: str,
                       now: datetime) -> list[Delivery]:
        """Injects on Telegram get a button that asks the player for their answer."""
        return [buttons.attach(d, [[("Answer", buttons.make(
            tx, d.recipient_id, "inject.answer", {"incident": d.incident_id, "step": step_id},
            now))]]) if d.channel == "telegram" else d for d in deliveries]

    @staticmethod
    def holders(tx: Tx, incident_id: str) -> dict[str, str | None]:
        """Who holds each role of an incident."""
        return {a.role: a.holder for a in tx.assignments(incident_id)}

    @staticmethod
    def _params(incident: IncidentRow, version: Version) -> dict[str, Any]:
        values = dict(incident.params)
        for name, parameter in version.playbook.parameters.items():
            if parameter.type == "datetime" and isinstance(values.get(name), str):
                values[name] = datetime.fromisoformat(values[name])
        return values


_EVENT_KIND: dict[str, str] = {"stand_down": "stood_down", "escalate": "escalated",
                               "de_escalate": "de_escalated"}


def json_params(params: Mapping[str, Any]) -> dict[str, Any]:
    """Activation values as the database stores them (datetimes as ISO 8601 text)."""
    return {k: v.isoformat() if isinstance(v, datetime) else v for k, v in params.items()}


def _approval_text(incident: IncidentRow, step: MessageStep, texts: Mapping[str, str],
                   *, late: bool = False) -> str:
    first = next(iter(texts.values()), "")
    head = "<b>Approval overdue</b> — the first approvers have not answered" if late else (
        "<b>Approval needed</b>")
    return (f"{head}\nIncident {incident.id}, step <code>{step.id}</code>, "
            f"{len(texts)} language(s): {', '.join(texts)}\n\n{first}\n\n"
            f"Approve: <code>playbook approve {incident.id} {step.id}</code>\n"
            f"Reject: <code>playbook reject {incident.id} {step.id} --reason ...</code>")
