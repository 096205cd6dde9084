"""Guided activation in the bot: a playbook, exercise or actual, each parameter, then confirm.

Each answer is checked as it comes (the command line's rules, `plan.convert_value`), so the
last step can only fail if the world changed meanwhile. An exercise and an actual incident
look different at every step: yellow and "EXERCISE", red and "ACTUAL INCIDENT", and only the
confirmation button opens one. A form lives in memory: after a restart, start again.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from zoneinfo import ZoneInfo

from playbook.audience import missing_public
from playbook.desk import Ask, Button, Desk, Reply, may_lead, say
from playbook.directory import Staff
from playbook.errors import BadInput
from playbook.fanout import esc
from playbook.i18n import Translator
from playbook.model import Parameter
from playbook.plan import bind_parameters, convert_value

_MAX_BUTTONS = 24


@dataclass
class Form:
    """One person's activation in progress."""

    playbook: str
    mode: str = ""
    values: dict[str, str] = field(default_factory=dict)
    skipped: set[str] = field(default_factory=set)


class Wizard:
    """The `/activate` conversation for every staff member at once."""

    def __init__(self, desk: Desk) -> None:
        self.desk = desk
        self.forms: dict[str, Form] = {}

    def begin(self, who: Staff, t: Translator) -> list[Reply]:
        """The playbooks this person may activate, as buttons."""
        _ = t.gettext
        mine = [(pid, pb) for pid, (pb, _templates) in sorted(self.desk.library.items())
                if may_lead(who, pb)]
        if not mine:
            return say(_("You hold no role that may open an incident. Ask the incident lead "
                         "or the spokesperson."))
        return say(_("Which playbook?"), *[(Button(pb.title[:60], "act.pick",
                                                   {"playbook": pid}),) for pid, pb in mine])

    def press(self, who: Staff, t: Translator, action: str,
              payload: Mapping[str, Any]) -> list[Reply]:
        """A button of the form."""
        _ = t.gettext
        if action == "act.pick":
            pid = str(payload.get("playbook", ""))
            found = self.desk.library.get(pid)
            if found is None or not may_lead(who, found[0]):
                return say(_("You may not open this playbook."))
            self.forms[who.id] = Form(pid)
            return say("<b>" + esc(found[0].title) + "</b>\n" + _(
                "A drill, or a real incident?"),
                (Button("🟨 " + _("Exercise (drill)"), "act.mode", {"mode": "exercise"}),),
                (Button("🟥 " + _("ACTUAL INCIDENT"), "act.mode", {"mode": "actual"}),),
                (Button(_("Cancel"), "act.cancel"),))
        form = self.forms.get(who.id)
        if action == "act.cancel":
            self.forms.pop(who.id, None)
            return say(_("Cancelled; nothing was opened."))
        if form is None:
            return say(_("This form has expired; start again with /activate."))
        if action == "act.mode" and payload.get("mode") in ("exercise", "actual"):
            form.mode = str(payload["mode"])
        elif action == "act.value":
            problem = self._set(form, str(payload["name"]), str(payload["value"]))
            if problem:
                return say("⚠ " + esc(problem))
        elif action == "act.skip":
            form.skipped.add(str(payload["name"]))
        elif action == "act.go":
            return self._open(who, t, form)
        return self._next(t, form)

    def answer(self, who: Staff, t: Translator, ask: Ask, text: str) -> list[Reply]:
        """A typed value for the parameter asked."""
        form = self.forms.get(who.id)
        if form is None:
            return say(t.gettext("This form has expired; start again with /activate."))
        name = str(ask.payload.get("name", ""))
        problem = self._set(form, name, text)
        if problem:
            return say("⚠ " + esc(problem) + "\n" + t.gettext("Send it again."),
                       ask=Ask("act.text", {"name": name}))
        return self._next(t, form)

    def _set(self, form: Form, name: str, value: str) -> str:
        playbook = self.desk.library[form.playbook][0]
        parameter = playbook.parameters.get(name)
        if parameter is None:
            return f"{name}: unknown parameter"
        try:
            convert_value(parameter, value, ZoneInfo(self.desk.timezone))
        except ValueError as exc:
            return f"{name}: {exc}"
        form.values[name] = value.strip()
        return ""

    def _next(self, t: Translator, form: Form) -> list[Reply]:
        _ = t.gettext
        playbook = self.desk.library[form.playbook][0]
        for name, parameter in playbook.parameters.items():
            if name not in form.values and name not in form.skipped:
                return self._question(t, form, name, parameter)
        banner = self._banner(t, form)
        lines = [banner, f"<b>{esc(playbook.title)}</b>", ""]
        lines += [f"• {esc(name)}: <b>{esc(value)}</b>" for name, value in form.values.items()]
        if form.mode == "actual":
            lines += ["", _("Messages will go to real people once approved.")]
            go = "🟥 " + _("OPEN THE ACTUAL INCIDENT")
        else:
            lines += ["", _("Nothing reaches the public or community partners, only the team's "
                            "own chats; every message is marked EXERCISE.")]
            go = "🟨 " + _("Start the exercise")
        return say("\n".join(lines), (Button(go, "act.go"),),
                   (Button(_("Cancel"), "act.cancel"),))

    def _question(self, t: Translator, form: Form, name: str,
                  parameter: Parameter) -> list[Reply]:
        _ = t.gettext
        options: list[str] = []
        directory = self.desk.engine.directory
        if parameter.type == "choice" and parameter.choices:
            options = list(parameter.choices)
        elif parameter.type == "community":
            options = sorted({c for i in directory.intermediaries for c in i.communities})
        elif parameter.type == "area":
            options = sorted({a for i in directory.intermediaries for a in i.areas})
        rows = [(Button(option[:60], "act.value", {"name": name, "value": option}),)
                for option in options[:_MAX_BUTTONS]]
        if not parameter.required:
            rows.append((Button(_("Skip"), "act.skip", {"name": name}),))
        rows.append((Button(_("Cancel"), "act.cancel"),))
        text = [self._banner(t, form), f"<b>{esc(name)}</b>"
                + (f" — {esc(parameter.description)}" if parameter.description else "")]
        text.append(_("Choose, or send the value.") if options
                    else _("Send the value (for example: %(example)s).") % t.isolate(
                        {"example": esc(str(parameter.example))}))
        return say("\n".join(text), *rows, ask=Ask("act.text", {"name": name}))

    def _banner(self, t: Translator, form: Form) -> str:
        _ = t.gettext
        return ("🟥🟥 " + _("ACTUAL INCIDENT") + " 🟥🟥" if form.mode == "actual"
                else "🟨🟨 " + _("EXERCISE") + " 🟨🟨")

    def _open(self, who: Staff, t: Translator, form: Form) -> list[Reply]:
        _ = t.gettext
        desk = self.desk
        playbook, templates = desk.library[form.playbook]
        zone = ZoneInfo(desk.timezone)
        missing = sorted({c for s in playbook.message_steps()
                          for c in missing_public(s.to, desk.engine.directory)})
        if missing:
            return say("⚠ " + _("The directory lacks public channels this playbook uses: "
                               "%(channels)s") % t.isolate({"channels": ", ".join(missing)}))
        try:
            params = bind_parameters(playbook, form.values, "bot", zone)
        except BadInput as exc:
            return say("⚠ " + esc("; ".join(f"{p.field}: {p.message}" for p in exc.problems)))
        del self.forms[who.id]
        exercise = form.mode != "actual"
        participants = [s.id for s in desk.engine.directory.staff if s.available]
        incident = desk.engine.activate(
            playbook, templates, city=desk.city, timezone=desk.timezone, params=params,
            actor=who.id, now=desk.now(), mode="exercise" if exercise else "actual",
            participants=participants if exercise else ())
        opened = (_("Exercise %(incident)s started.") if exercise
                  else _("Incident %(incident)s is open."))
        return [Reply(self._banner(t, form) + "\n" + opened % t.isolate(
            {"incident": incident.id}), ((Button(_("Status"), "status",
                                                 {"incident": incident.id}),),)),
                *desk.status(who, t, incident.id)]
