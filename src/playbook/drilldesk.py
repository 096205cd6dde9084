"""The bot's drill controls and reports: /pause, /resume, /end, inject answers, /report.

Controllers are the people who may lead the playbook (as for /standdown). Every action is
logged at the drill's scenario time, which the log itself defines, so the bot and the drill's
own process agree on the clock.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from playbook import drill
from playbook.desk import Ask, Button, Desk, Reply, mode_label, say
from playbook.directory import Staff
from playbook.errors import BadInput
from playbook.fanout import esc
from playbook.i18n import Translator
from playbook.report import after_action
from playbook.reportdoc import html

CONTROLS = ("pause", "resume", "end")


def control(desk: Desk, who: Staff, t: Translator, command: str,
            incident_id: str = "") -> list[Reply]:
    """Pause, resume or end (with a confirmation) an exercise this person may lead."""
    _ = t.gettext
    if not incident_id:
        chosen = desk.one_open(t, command, {}, exercise_only=True)
        if isinstance(chosen, list):
            return chosen
        incident_id = chosen
    incident = desk.led(who, incident_id)
    if incident is None:
        return say(desk.not_lead(t))
    if not incident.exercise:
        return say(_("%(incident)s is an actual incident, not an exercise; use /standdown.")
                   % t.isolate({"incident": esc(incident_id)}))
    if command == "pause":
        drill.pause(desk.engine, incident_id, actor=who.id, wall=desk.now())
        return say("⏸ " + _("%(incident)s paused: nothing fires until /resume.")
                   % t.isolate({"incident": esc(incident_id)}))
    if command == "resume":
        drill.resume(desk.engine, incident_id, actor=who.id, wall=desk.now())
        return say("▶ " + _("%(incident)s resumed.") % t.isolate({"incident": esc(incident_id)}))
    return say(mode_label(t, incident) + "\n" + _(
        "End exercise %(incident)s now? Nothing more will be scheduled or sent.")
        % t.isolate({"incident": esc(incident_id)}),
        (Button(_("End the exercise (no play)"), "end.go", {"incident": incident_id}),
         Button(_("Cancel"), "cancel", {})))


def end_now(desk: Desk, who: Staff, t: Translator, incident_id: str) -> list[Reply]:
    """The confirmed "no play" stop."""
    if desk.led(who, incident_id) is None:
        return say(desk.not_lead(t))
    drill.end(desk.engine, incident_id, actor=who.id, reason="no play",
              now=desk.at(incident_id))
    return say("■ " + t.gettext("Exercise %(incident)s ended (no play): nothing more will be "
                                "sent.") % t.isolate({"incident": esc(incident_id)}))


def ask_answer(t: Translator, payload: Mapping[str, Any]) -> list[Reply]:
    """The Answer button of an inject: ask for the words."""
    return say(t.gettext("What is your answer? Send it as your next message."),
               ask=Ask("inject.answer", dict(payload)))


def answer(desk: Desk, who: Staff, t: Translator, payload: Mapping[str, Any],
           text: str) -> list[Reply]:
    """A player's typed answer to an inject, into the log."""
    incident_id = str(payload["incident"])
    try:
        drill.answer(desk.engine, incident_id, str(payload["step"]), text, actor=who.id,
                     now=desk.at(incident_id))
    except BadInput as exc:
        return say("⚠ " + esc("; ".join(p.message for p in exc.problems)))
    return say("↩ " + t.gettext("Answer logged in %(incident)s.")
               % t.isolate({"incident": esc(incident_id)}))


def report(desk: Desk, who: Staff, t: Translator, incident_id: str = "") -> list[Reply]:
    """The after-action report of an incident, as an HTML file, with its headline figures."""
    if not incident_id:
        chosen = desk.one_open(t, "report", {}, closed_too=True)
        if isinstance(chosen, list):
            return chosen
        incident_id = chosen
    with desk.engine.store.begin() as tx:
        incident = desk.engine.incident(tx, incident_id)
        events = tx.events(incident_id)
    page = html(after_action(incident.frozen, events))
    return [Reply(mode_label(t, incident) + " · " + t.gettext(
        "After-action report of %(incident)s, from its log so far: open the file in a "
        "browser.") % t.isolate({"incident": esc(incident_id)}),
        document=(f"after-action-{incident_id}.html", page.encode("utf-8")))]
