"""From a rendered message and its audience to outbox rows: one per recipient, language, channel.

Every row carries an idempotency key, so enqueueing the same occurrence twice adds nothing. Rows
are addressed as the directory says; `isolation.seal`, on the way into the outbox, is what keeps
an exercise away from real people.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime

from playbook.audience import available, channels_for, choice_for
from playbook.delivery import Delivery, plain_text
from playbook.directory import Directory, Recipient
from playbook.duration import format_duration
from playbook.model import IncidentKind, MessageStep, TaskStep
from playbook.plan import due_at
from playbook.ports import IncidentRow
from playbook.render import EXERCISE_BANNER
from playbook.version import Version

ENGINE_STEP = "_engine"
CAP_CATEGORY = {
    IncidentKind.natural_disaster: "Met", IncidentKind.terrorist_attack: "Security",
    IncidentKind.protest: "Safety", IncidentKind.hate_incident: "Safety",
}


def subject(text: str) -> str:
    """The first line that says something: an e-mail subject, a CAP headline."""
    banners = set(EXERCISE_BANNER.values())
    for line in plain_text(text).splitlines():
        line = line.strip().strip("\u200f\u2068\u2069")
        if line and line not in banners:
            return line if len(line) <= 120 else line[:119] + "…"
    return ""


def message_deliveries(incident: IncidentRow, version: Version, step: MessageStep,
                       number: int, recipients: Sequence[Recipient], texts: Mapping[str, str],
                       now: datetime, cap: Mapping[str, str] | None = None,
                       acks: Mapping[str, str] | None = None) -> list[Delivery]:
    """The outbox rows for one occurrence of a message step, for the locales in `texts`.

    `acks` maps a recipient to the confirmation code their channel asks them to send back.
    """
    playbook = version.playbook
    offered = available(playbook, version.templates, step.message)
    # Per text and per set of languages, not per recipient: a city-wide briefing has 100,000
    # recipients but six texts and a handful of language lists.
    subjects = {lang: subject(text) for lang, text in texts.items()}
    allowed = frozenset(step.channels)
    locales: dict[tuple[bool, tuple[str, ...]], tuple[str, ...]] = {}
    out = []
    for recipient in recipients:
        public = recipient.kind == "public"
        langs = locales.get((public, recipient.languages))
        if langs is None:
            choice = choice_for(recipient, offered, playbook)
            langs = locales[public, recipient.languages] = tuple(
                each for each in (playbook.languages if choice is None else (choice.locale,))
                if each in texts)
        for each in langs:
            for channel, address in channels_for(recipient, allowed):
                meta = dict(cap or {}) if channel == "cap" else {}
                if acks and recipient.id in acks:
                    meta["ack_token"] = acks[recipient.id]
                out.append(delivery(incident, step.id, number, recipient, each, channel,
                                     address, texts[each], now, meta, title=subjects[each]))
    return out


def cap_meta(incident: IncidentRow, version: Version, step: MessageStep, number: int,
             sender: str, earlier: Sequence[tuple[str, str]]) -> dict[str, str]:
    """CAP fields for a public message; `earlier` lists (identifier, sent) of earlier alerts."""
    playbook = version.playbook
    meta = {
        "cap_identifier": f"{incident.id}.{step.id}.{number}",
        "msg_type": "Update" if earlier else "Alert",
        "event": playbook.title,
        "category": CAP_CATEGORY.get(playbook.kind, "Safety"),
        "urgency": "Immediate" if step.preapproved else "Expected",
        "severity": "Severe" if step.preapproved else "Moderate",
        "certainty": "Observed",
        "web": version.city.get("info_url", ""),
        "contact": version.city.get("hotline", ""),
        "response_type": "AllClear" if step.on == "stand_down" else "Monitor",
    }
    if earlier:
        meta["references"] = " ".join(f"{sender},{ident},{cap_time(sent)}"
                                      for ident, sent in earlier)
    if incident.exercise:
        meta["note"] = f"Exercise {incident.id}"
    return meta


def cap_time(iso: str) -> str:
    """An ISO time as CAP writes it: seconds, and UTC spelt `-00:00`."""
    moment = datetime.fromisoformat(iso).astimezone(UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S-00:00")


def notice(incident: IncidentRow, directory: Directory, person: str, text: str, key: str,
           now: datetime, step_id: str = ENGINE_STEP) -> list[Delivery]:
    """A message from the engine to one staff member (their first channel, their language)."""
    member = directory.staff_member(person)
    if member is None:
        return []
    recipient = Recipient(f"staff:{member.id}", member.name, "staff", tuple(member.languages),
                          member.addresses())
    lang = "en"  # the engine's own notices are English until the bot's catalogs translate them
    channel, address = recipient.addresses[0]
    return [delivery(incident, step_id, 0, recipient, lang, channel, address, text, now, {},
                      key=key)]


def role_briefing(incident: IncidentRow, version: Version, role: str) -> str:
    """What a role holder is told at activation: the role, its duties, its tasks and deadlines."""
    playbook = version.playbook
    title = playbook.roles[role].title
    zone = version.zone
    lines = [f"<b>{esc(playbook.title)}</b> — incident {incident.id} ({incident.mode})",
             f"You are <b>{esc(title)}</b>.", "", "Your duties:"]
    lines += [f"• {esc(duty)}" for duty in playbook.roles[role].duties]
    tasks = [s for s in playbook.steps if isinstance(s, TaskStep) and s.role == role]
    if tasks:
        lines += ["", "Your tasks:"]
    for task in tasks:
        when = due_at(task, incident.started_at)
        start = (f"{when.astimezone(zone):%H:%M}" if when else f"after {task.on}")
        deadline = f" (deadline {format_duration(task.due)} after it starts)" if task.due else ""
        lines.append(f"• {start}: {esc(task.task)}{deadline}")
    return "\n".join(lines)


def esc(text: str) -> str:
    """Escape plain text for Telegram HTML."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def delivery(incident: IncidentRow, step_id: str, number: int, recipient: Recipient, lang: str,
              channel: str, address: str, text: str, now: datetime, meta: dict[str, str],
              key: str | None = None, title: str | None = None) -> Delivery:
    """One outbox row, addressed as the directory says (`isolation.seal` decides in a drill).

    `title` is `subject(text)` when the caller already has it (parsing the HTML of one text
    for each of 100,000 recipients was a third of a city-wide fan-out).
    """
    return Delivery(
        key=key or f"{incident.id}/{step_id}/{number}/{recipient.id}/{lang}/{channel}",
        incident_id=incident.id, exercise=incident.exercise, step_id=step_id, number=number,
        recipient_id=recipient.id, recipient_name=recipient.name, lang=lang,
        channel=channel, address=address, subject=subject(text) if title is None else title,
        text=text, created_at=now, meta=meta)
