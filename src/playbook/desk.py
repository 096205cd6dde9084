"""The comms team's desk in the bot: what each staff command and button does.

Bot-neutral: a command becomes `Reply` values (Telegram HTML, buttons, a question waiting for a
typed answer) that `bot.py` sends. Every action checks the roster and the role's permission
here, with the command line's rules (approvals use `approvals.refusal`), and answers in the
staff member's language. A refusal changes nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from babel.dates import format_datetime

from playbook import drill
from playbook.approvals import Approvals, refusal
from playbook.directory import Staff
from playbook.engine import Engine
from playbook.errors import BadInput
from playbook.fanout import esc
from playbook.i18n import N_, Translator
from playbook.model import MessageStep, Playbook, TaskStep
from playbook.ports import IncidentRow, Tx
from playbook.render import TemplateLibrary

Library = Mapping[str, tuple[Playbook, TemplateLibrary]]
STATES = {"open": N_("open"), "stood_down": N_("stood down"), "closed": N_("closed")}
"""An incident's state as staff read it."""
ONCE = frozenset({"approve", "done", "event.go", "act.go"})
"""Buttons that decide something work once; a second tap is ignored."""


@dataclass(frozen=True)
class Button:
    """One inline button: its label and what it does (kept on the server)."""

    label: str
    action: str
    payload: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Ask:
    """The next text this person sends answers this question."""

    action: str
    payload: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Reply:
    """One message of the bot: HTML text, rows of buttons, maybe a question."""

    text: str
    buttons: tuple[tuple[Button, ...], ...] = ()
    ask: Ask | None = None
    document: tuple[str, bytes] | None = None
    """A file sent with the text as its caption: (file name, content)."""


def say(text: str, *rows: tuple[Button, ...], ask: Ask | None = None) -> list[Reply]:
    """A one-message answer."""
    return [Reply(text, tuple(rows), ask)]


def mode_label(t: Translator, incident: IncidentRow) -> str:
    """The mode, impossible to mistake: a drill is yellow, a real incident red."""
    _ = t.gettext
    return ("🟨 " + _("EXERCISE") if incident.exercise else "🟥 " + _("ACTUAL INCIDENT"))


def may_lead(member: Staff, playbook: Playbook) -> bool:
    """Whether this person fills or backs up a role that approves (and so may lead) it."""
    leading = {name for name, role in playbook.roles.items() if role.approves}
    return bool(leading & (set(member.roles) | set(member.backup_for)))


class Desk:
    """Staff commands over one engine and the city's playbooks."""

    def __init__(self, engine: Engine, library: Library, *, city: Mapping[str, str],
                 timezone: str, now: Callable[[], datetime]) -> None:
        self.engine = engine
        self.library = library
        self.city = city
        self.timezone = timezone
        self.now = now

    def at(self, incident_id: str) -> datetime:
        """When an action on this incident happens: scenario time in a scaled drill."""
        return drill.now_for(self.engine, incident_id, self.now())

    # commands

    def start(self, who: Staff, t: Translator) -> list[Reply]:
        """Who you are to the bot, and what you can do."""
        _ = t.gettext
        lines = [_("Hello %(name)s. You are on %(city)s's crisis comms roster.")
                 % t.isolate({"name": esc(who.name), "city": esc(self.city.get("name", ""))}), "",
                 _("/playbooks — the playbooks and their roles"),
                 _("/activate — open an incident or an exercise, step by step"),
                 _("/status — open incidents"),
                 _("/tasks — your tasks; mark them done"),
                 _("/approvals — drafts waiting for your approval"),
                 _("/log text — write an entry in the incident log"),
                 _("/escalate, /standdown — change an incident's course"),
                 _("/pause, /resume, /end — control an exercise"),
                 _("/report — the after-action report, as a file")]
        return say("\n".join(lines))

    def playbooks(self, who: Staff, t: Translator) -> list[Reply]:
        """The playbooks, and which of them this person may activate."""
        _ = t.gettext
        lines = ["<b>" + _("Playbooks") + "</b>"]
        for pid, (playbook, _templates) in sorted(self.library.items()):
            mark = "▶" if may_lead(who, playbook) else "·"
            lines.append(f"{mark} <b>{esc(playbook.title)}</b> (<code>{esc(pid)}</code>) — "
                         + _("%(steps)d steps, languages: %(languages)s") % t.isolate({
                             "steps": len(playbook.steps),
                             "languages": ", ".join(playbook.languages)}))
        lines += ["", _("▶ you may activate it. Start with /activate.")]
        return say("\n".join(lines))

    def status(self, who: Staff, t: Translator, incident_id: str = "") -> list[Reply]:
        """One incident in detail, or a line for each open incident."""
        _ = t.gettext
        if not incident_id:
            chosen = self.one_open(t, "status", {}, question=_("Open incidents:"))
            if isinstance(chosen, list):
                return chosen
            incident_id = chosen
        return self._status(t, incident_id)

    def _status(self, t: Translator, incident_id: str) -> list[Reply]:
        _ = t.gettext
        with self.engine.store.begin() as tx:
            incident = self.engine.incident(tx, incident_id)
            version = self.engine.version(incident)
            zone = version.zone
            assignments = tx.assignments(incident_id)
            pending = tx.drafts(incident_id, "pending")
            tasks = [x for x in tx.tasks(incident_id) if x.done_at is None]
            upcoming = [r for r in tx.schedule(incident_id) if r.state == "pending"]
            counts = tx.outbox_counts(incident_id)
            acks = tx.acks(incident_id)
            concerns = sum(1 for e in tx.events(incident_id) if e.kind == "concern")
        roles = version.playbook.roles
        lines = [f"{mode_label(t, incident)} · <b>{esc(incident.id)}</b> "
                 f"{esc(incident.title)}",
                 _("Opened %(time)s by %(who)s · %(state)s") % t.isolate({
                     "time": format_datetime(incident.started_at, "d MMM HH:mm", tzinfo=zone,
                                             locale=t.locale),
                     "who": esc(incident.activated_by),
                     "state": _(STATES.get(incident.state, incident.state))}), ""]
        unfilled = _("unfilled")
        lines += [f"• {esc(roles[a.role].title if a.role in roles else a.role)}: "
                  f"{esc(self._name(a.holder) if a.holder else unfilled)}"
                  for a in assignments]
        waiting = sorted({d.step_id for d in pending})
        lines += ["", _("Waiting for approval: %(steps)s") % t.isolate({
            "steps": ", ".join(waiting) or _("nothing")})]
        overdue = sum(1 for x in tasks if x.overdue)
        lines.append(_("Open tasks: %(open)d (%(overdue)d overdue)") % t.isolate({
            "open": len(tasks), "overdue": overdue}))
        if upcoming:
            lines.append(_("Next: %(step)s at %(time)s") % t.isolate({
                "step": esc(upcoming[0].step_id),
                "time": upcoming[0].due_at.astimezone(zone).strftime("%H:%M")}))
        lines.append(_("Messages: %(sent)d sent, %(queued)d waiting, %(dead)d failed") % t.isolate({
            "sent": counts.get("sent", 0),
            "queued": counts.get("queued", 0) + counts.get("sending", 0),
            "dead": counts.get("dead", 0)}))
        confirmed = sum(1 for a in acks if a.acked_at is not None)
        lines.append(_("Confirmations: %(confirmed)d of %(asked)d · concerns: %(concerns)d")
                     % t.isolate({"confirmed": confirmed, "asked": len(acks),
                                  "concerns": concerns}))
        keys = {"incident": incident_id}
        return say("\n".join(lines), (Button(_("Approvals"), "approvals", keys),
                                      Button(_("Tasks"), "tasks", keys),
                                      Button(_("Report"), "report", keys)))

    def tasks(self, who: Staff, t: Translator, incident_id: str = "") -> list[Reply]:
        """The open tasks of this person, each with a button to mark it done."""
        _ = t.gettext
        replies: list[Reply] = []
        with self.engine.store.begin() as tx:
            for incident in self._incidents(tx, incident_id):
                version = self.engine.version(incident)
                for task in tx.tasks(incident.id):
                    if task.done_at is not None or not self._mine(who, task.holder, task.role):
                        continue
                    step = version.step(task.step_id)
                    what = step.task if isinstance(step, TaskStep) else step.id
                    due = (_("due %(time)s") % t.isolate({"time": task.due_by.astimezone(
                        version.zone).strftime("%H:%M")})) if task.due_by else ""
                    late = " ⚠ " + _("overdue") if task.overdue else ""
                    replies.append(Reply(
                        f"<b>{esc(incident.id)}</b> · <code>{esc(task.step_id)}</code> "
                        f"{due}{late}\n{esc(what)}",
                        ((Button(_("Mark done"), "task", {
                            "incident": incident.id, "step": task.step_id}),),)))
        return replies or say(_("You have no open tasks."))

    def log(self, who: Staff, t: Translator, text: str, incident_id: str = "") -> list[Reply]:
        """Write an entry in an incident's log (asking which incident if several are open)."""
        _ = t.gettext
        text = text.strip()
        if not text:
            return say(_("What should the log say? Send it as your next message."),
                       ask=Ask("log", {"incident": incident_id}))
        if len(text) > 2000:
            return say(_("A log entry holds at most 2,000 characters; yours has %(n)d.")
                       % t.isolate({"n": len(text)}))
        if not incident_id:
            chosen = self.one_open(t, "log", {"text": text})
            if isinstance(chosen, list):
                return chosen
            incident_id = chosen
        when = self.at(incident_id)  # before the transaction: it reads the log itself
        with self.engine.store.begin() as tx:
            incident = self.engine.incident(tx, incident_id)
            event = tx.append(incident.id, "logged", when, actor=who.id,
                              data={"text": text, "via": "telegram"})
        return say(_("Logged in %(incident)s (entry %(seq)d).") % t.isolate({
            "incident": esc(incident.id), "seq": event.seq}))

    def approvals(self, who: Staff, t: Translator, incident_id: str = "",
                  step_id: str = "", number: int | None = None) -> list[Reply]:
        """Each pending draft, one card per language, with Approve / Reject / Edit."""
        _ = t.gettext
        replies: list[Reply] = []
        with self.engine.store.begin() as tx:
            for incident in self._incidents(tx, incident_id):
                version = self.engine.version(incident)
                drafts = [d for d in tx.drafts(incident.id, "pending")
                          if (not step_id or d.step_id == step_id)
                          and (number is None or d.number == number)]
                for key in sorted({(d.step_id, d.number) for d in drafts}):
                    group = [d for d in drafts if (d.step_id, d.number) == key]
                    step = version.step(key[0])
                    assert isinstance(step, MessageStep)
                    why = refusal(who.id, step, group[0], self.engine.directory)
                    head = (f"{mode_label(t, incident)} · <b>{esc(incident.id)}</b> · "
                            f"<code>{esc(step.id)}</code> — "
                            + t.ngettext("%(n)d language waits for approval",
                                         "%(n)d languages wait for approval", len(group))
                            % {"n": len(group)})
                    if why is not None:
                        replies.append(Reply(head + "\n" + _(
                            "You cannot approve this: %(why)s") % t.isolate({"why": esc(why)})))
                        continue
                    ids = {"incident": incident.id, "step": step.id, "number": key[1]}
                    replies.append(Reply(head))
                    for draft in group:
                        replies.append(Reply(
                            f"<b>{esc(draft.lang)}</b> · r{draft.revision}\n\n{draft.text}",
                            ((Button("✅ " + _("Approve"), "approve", {**ids, "lang": draft.lang}),
                              Button("✖ " + _("Reject"), "reject", {**ids, "lang": draft.lang}),
                              Button("✏ " + _("Edit"), "edit", ids)),)))
                    if len(group) > 1:
                        replies.append(Reply(_("Or decide every language at once:"), ((
                            Button("✅ " + _("Approve all %(n)d") % {"n": len(group)},
                                   "approve", ids),),)))
        return replies or say(_("Nothing waits for your approval."))

    def event(self, who: Staff, t: Translator, event: str, incident_id: str = "",
              ) -> list[Reply]:
        """Ask to confirm a stand-down or an escalation."""
        _ = t.gettext
        if not incident_id:
            chosen = self.one_open(t, "event", {"event": event})
            if isinstance(chosen, list):
                return chosen
            incident_id = chosen
        incident = self.led(who, incident_id)
        if incident is None:
            return say(self.not_lead(t))
        question = (_("Stand down %(incident)s? Repeating updates stop and the stand-down "
                      "steps begin.") if event == "stand_down" else
                    _("Escalate %(incident)s? The steps waiting for escalation begin."))
        label = _("Stand down") if event == "stand_down" else _("Escalate")
        text = question % t.isolate({"incident": esc(incident.id)})
        return say(f"{mode_label(t, incident)}\n{text}",
                   (Button(label, "event.go", {"incident": incident.id, "event": event}),
                    Button(_("Cancel"), "cancel")))

    # buttons and answers

    def press(self, who: Staff, t: Translator, action: str,
              payload: Mapping[str, Any]) -> list[Reply]:
        """What a button does."""
        _ = t.gettext
        incident = str(payload.get("incident", ""))
        try:
            if action in ("status", "tasks"):
                return {"status": self.status, "tasks": self.tasks}[action](who, t, incident)
            if action in ("approvals", "review"):
                number = payload.get("number")
                return self.approvals(who, t, incident, str(payload.get("step", "")),
                                      int(number) if number is not None else None)
            if action == "log":
                return self.log(who, t, str(payload.get("text", "")), incident)
            if action == "event":
                return self.event(who, t, str(payload["event"]), incident)
            if action == "event.go":
                return self._event_go(who, t, incident, str(payload["event"]))
            if action == "approve":
                return self._approve(who, t, payload)
            if action == "reject":
                return say(_("Why do you reject it? Your reason goes to the requester and "
                             "the log."), ask=Ask("reject", payload))
            if action == "edit":
                return self._edit_menu(t, payload)
            if action == "edit.param":
                return say(_("Send the corrected value for %(name)s.") % t.isolate({
                    "name": f"<code>{esc(str(payload['name']))}</code>"}),
                    ask=Ask("edit", payload))
            if action == "task":
                return say(_("What did you do? Send a short note for the log, or tap the "
                             "button."), (Button(_("Done, no note"), "done", payload),),
                           ask=Ask("done", payload))
            if action == "done":
                return self._done(who, t, payload, "")
            if action == "cancel":
                return say(_("Cancelled; nothing changed."))
        except BadInput as exc:
            return say("⚠ " + esc("; ".join(p.message for p in exc.problems)))
        return say(_("This button no longer works."))

    def answer(self, who: Staff, t: Translator, ask: Ask, text: str) -> list[Reply]:
        """A typed answer to the question asked last."""
        p = ask.payload
        try:
            if ask.action == "log":
                return self.log(who, t, text, str(p.get("incident", "")))
            if ask.action == "done":
                return self._done(who, t, p, text.strip())
            if ask.action == "reject":
                drafts = Approvals(self.engine).reject(
                    str(p["incident"]), str(p["step"]), actor=who.id, reason=text,
                    now=self.at(str(p["incident"])), lang=p.get("lang"))
                return say(t.ngettext("Rejected %(n)d draft; nothing was sent.",
                                      "Rejected %(n)d drafts; nothing was sent.", len(drafts))
                           % {"n": len(drafts)})
            if ask.action == "edit":
                revision = Approvals(self.engine).edit(
                    str(p["incident"]), str(p["step"]), actor=who.id,
                    raw={str(p["name"]): text}, now=self.at(str(p["incident"])))
                return say(t.gettext("Edited: revision %(revision)d waits for a second "
                                     "person's approval.") % t.isolate({"revision": revision}))
        except BadInput as exc:
            return say("⚠ " + esc("; ".join(p.message for p in exc.problems)))
        return say(t.gettext("This question has expired; start again."))

    # helpers

    def _approve(self, who: Staff, t: Translator, p: Mapping[str, Any]) -> list[Reply]:
        drafts = Approvals(self.engine).approve(str(p["incident"]), str(p["step"]),
                                                actor=who.id, now=self.at(str(p["incident"])),
                                                lang=p.get("lang"))
        langs = ", ".join(sorted(d.lang for d in drafts))
        return say("✅ " + t.gettext("Approved (%(languages)s): it is on its way.")
                   % t.isolate({"languages": langs}))

    def _edit_menu(self, t: Translator, p: Mapping[str, Any]) -> list[Reply]:
        with self.engine.store.begin() as tx:
            incident = self.engine.incident(tx, str(p["incident"]))
        playbook = self.engine.version(incident).playbook
        rows = [(Button(name, "edit.param", {**p, "name": name}),)
                for name in sorted(playbook.parameters)]
        return say(t.gettext("Which value is wrong? The message is rendered again with the "
                             "correction and needs approval again."), *rows)

    def _done(self, who: Staff, t: Translator, p: Mapping[str, Any], note: str) -> list[Reply]:
        incident_id, step_id = str(p["incident"]), str(p["step"])
        with self.engine.store.begin() as tx:
            task = next((x for x in tx.tasks(incident_id)
                         if x.step_id == step_id and x.done_at is None), None)
        if task is None:
            return say(t.gettext("This task is already done."))
        if not self._mine(who, task.holder, task.role):
            return say(t.gettext("This task belongs to %(holder)s; only they or the role's "
                                 "backup can close it.") % t.isolate({
                                     "holder": esc(self._name(task.holder))}))
        self.engine.complete_task(incident_id, step_id, actor=who.id, note=note,
                                  now=self.at(incident_id))
        return say("✅ " + t.gettext("Done: %(step)s.") % t.isolate({"step": esc(step_id)}))

    def _event_go(self, who: Staff, t: Translator, incident_id: str,
                  event: str) -> list[Reply]:
        if self.led(who, incident_id) is None:
            return say(self.not_lead(t))
        started = self.engine.event(incident_id, "stand_down" if event == "stand_down"
                                    else "escalate", actor=who.id, now=self.at(incident_id))
        done = (t.gettext("%(incident)s stood down.") if event == "stand_down"
                else t.gettext("%(incident)s escalated."))
        return say(done % t.isolate({"incident": esc(incident_id)}) + " " + t.ngettext(
            "%(n)d step scheduled.", "%(n)d steps scheduled.", started) % t.isolate({"n": started}))

    def led(self, who: Staff, incident_id: str) -> IncidentRow | None:
        """The incident, if this person may lead it (stand it down, escalate it)."""
        with self.engine.store.begin() as tx:
            incident = self.engine.incident(tx, incident_id)
        return incident if may_lead(who, self.engine.version(incident).playbook) else None

    def _incidents(self, tx: Tx, incident_id: str) -> list[IncidentRow]:
        """The one incident asked for, else every open one."""
        return ([self.engine.incident(tx, incident_id)] if incident_id
                else tx.incidents(open_only=True))

    def one_open(self, t: Translator, action: str, payload: Mapping[str, Any], *,
                 closed_too: bool = False, question: str = "",
                 exercise_only: bool = False) -> str | list[Reply]:
        """The only open incident's id, or a question which one is meant."""
        with self.engine.store.begin() as tx:
            found = tx.incidents(open_only=not closed_too)
        if exercise_only:
            found = [i for i in found if i.exercise]
        if closed_too:
            found = found[-5:]
        if not found:
            return say(t.gettext("No incident is open."))
        if len(found) == 1:
            return found[0].id
        return say(question or t.gettext("Which incident?"), *[(Button(
            f"{i.id} · {i.title}"[:60], action, {**payload, "incident": i.id}),)
            for i in found])

    def _mine(self, who: Staff, holder: str | None, role: str) -> bool:
        return holder == who.id or role in who.backup_for

    def _name(self, person: str | None) -> str:
        member = self.engine.directory.staff_member(person or "")
        return member.name if member else (person or "")

    def not_lead(self, t: Translator) -> str:
        return t.gettext("Only the holders of roles that approve this playbook's messages "
                         "(or their backups) may do this.")
