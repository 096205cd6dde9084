"""The intermediaries' side of the line: confirmations asked for and chased, concerns heard.

A briefing with `ack_within` asks each person to confirm it. Whoever is silent past the
deadline gets the briefing again with a reminder; silent past the second deadline, their backup
contact gets it and the community liaison is told, with the person's name and how to reach them.
Concerns sent back (a bot command, or a reply to a briefing) are logged in the incident and
forwarded to the community liaison. Every step of this is an entry in the incident log.
"""

from __future__ import annotations

import base64
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import replace
from datetime import datetime
from typing import TYPE_CHECKING

from playbook.audience import person
from playbook.directory import Intermediary, Recipient
from playbook.errors import BadInput, RuntimeFailure
from playbook.fanout import delivery, esc, notice
from playbook.isolation import strip_banner
from playbook.language import choose
from playbook.model import MessageStep
from playbook.phrases import CODE_ALPHABET, phrase, read_code
from playbook.ports import AckRow, IncidentRow, Tx

if TYPE_CHECKING:  # the engine calls in here; importing it at run time would be circular
    from playbook.engine import Engine

ACKABLE = frozenset({"intermediary", "staff"})
MAX_CONCERN = 2000
LIAISON_ROLES = ("community_liaison", "incident_lead")
_BASE32 = bytes.maketrans(b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567", CODE_ALPHABET.encode("ascii"))
TOKEN_ROUNDS = 5


def new_tokens(count: int) -> list[str]:
    """`count` distinct confirmation codes at once (40 bits each, easy to type back).

    Five random bytes are eight base-32 digits, mapped one to one onto `CODE_ALPHABET`: one
    system call for a city-wide briefing instead of eight (`phrases.new_code`) per recipient.
    """
    found: dict[str, None] = {}
    while len(found) < count:
        text = base64.b32encode(secrets.token_bytes(5 * (count - len(found))))
        digits = text.translate(_BASE32).decode("ascii")
        found.update(dict.fromkeys(digits[i:i + 8] for i in range(0, len(digits), 8)))
    return list(found)


def ask(tx: Tx, incident: IncidentRow, step: MessageStep, number: int,
        recipients: Sequence[Recipient], locales: Mapping[str, str], now: datetime,
        *, stage: int = 0, backup_for: str = "") -> dict[str, str]:
    """Record who must confirm this occurrence; returns {recipient id: token} for the buttons."""
    if step.ack_within is None:
        return {}
    pending = [r for r in recipients if r.kind in ACKABLE]
    tokens: dict[str, str] = {}
    for _ in range(TOKEN_ROUNDS):
        rows = [AckRow(incident.id, step.id, number, r.id, r.name, locales.get(r.id, ""),
                       token, now, now + step.ack_within, stage, backup_for)
                for r, token in zip(pending, new_tokens(len(pending)), strict=True)]
        if tx.add_acks(rows) == len(rows):
            return tokens | {a.recipient_id: a.token for a in rows}
        # Some rows were skipped: a repeated enqueue keeps the first tokens, and a code another
        # briefing already has is not reused (40 bits: with a million codes in the table, a
        # briefing of 100,000 people draws one of them about one time in ten).
        # Read back what the database holds, and ask again, with new codes, whoever has none.
        held = {a.recipient_id: a.token for a in tx.acks(incident.id)
                if (a.step_id, a.number) == (step.id, number)}
        tokens |= {r.id: held[r.id] for r in pending if r.id in held}
        pending = [r for r in pending if r.id not in held]
        if not pending:
            return tokens
    raise RuntimeFailure(f"no unused confirmation codes for {len(pending)} recipient(s) after "
                         f"{TOKEN_ROUNDS} tries")


def chase(engine: Engine, tx: Tx, now: datetime, only: str | None = None) -> int:
    """Remind or escalate every confirmation past its deadline; returns how many moved on."""
    rows = tx.acks_due(now, only=only)
    for ack in rows:
        incident = engine.incident(tx, ack.incident_id)
        step = engine.version(incident).step(ack.step_id)
        if incident.state != "open" or not isinstance(step, MessageStep) or not step.ack_within:
            tx.update_ack(ack, stage=2)  # stood down: nobody is chased for a closed incident
            continue
        if ack.stage == 0:
            _remind(engine, tx, incident, step, ack, now)
        else:
            _escalate(engine, tx, incident, step, ack, now)
    return len(rows)


def _remind(engine: Engine, tx: Tx, incident: IncidentRow, step: MessageStep, ack: AckRow,
            now: datetime) -> None:
    assert step.ack_within is not None
    again = []
    for row in tx.outbox(incident.id, step_id=ack.step_id, number=ack.number,
                         recipient_id=ack.recipient_id):
        d = row.delivery
        if not d.key.endswith(("/reminder", "/backup")):
            note = f"<b>{esc(phrase('reminder', d.lang))}</b>"
            again.append(replace(d, key=f"{d.key}/reminder",
                                 text=f"{note}\n\n{strip_banner(d.text)}",
                                 created_at=now))
    engine.send(tx, again, now)
    tx.update_ack(ack, stage=1, due_at=now + step.ack_within)
    tx.append(incident.id, "reminded", now, step_id=step.id, data={
        "number": ack.number, "recipient": ack.recipient_id, "name": ack.recipient_name,
        "deliveries": len(again)})


def _escalate(engine: Engine, tx: Tx, incident: IncidentRow, step: MessageStep, ack: AckRow,
              now: datetime) -> None:
    tx.update_ack(ack, stage=2)
    backup = None if ack.backup_for else _backup(engine, ack.recipient_id)
    asked = {a.recipient_id for a in tx.acks(incident.id)
             if (a.step_id, a.number) == (step.id, ack.number)}
    sent_backup = False
    if backup is not None and backup.id not in asked:
        sent_backup = _brief_backup(engine, tx, incident, step, ack, backup, now)
    told = liaison(engine, tx, incident.id)
    contact = _contact(engine, ack.recipient_id)
    lines = [f"<b>No confirmation</b> — incident {incident.id}, briefing <code>{step.id}</code>",
             f"{esc(ack.recipient_name)}{contact} has not confirmed it, nor the reminder."]
    if ack.backup_for:
        lines.append(f"They were asked as the backup for {esc(ack.backup_for.split(':')[-1])}.")
    elif backup is not None:
        lines.append(f"Their backup {esc(backup.name)} has been sent it." if sent_backup else
                     f"Their backup {esc(backup.name)} has already been sent it.")
    else:
        lines.append("They have no backup contact in the directory.")
    lines.append("Please reach them another way, and log it.")
    if told:
        engine.send(tx, notice(incident, engine.directory, told, "\n".join(lines),
                               f"{incident.id}/{step.id}/{ack.number}/{ack.recipient_id}/silent",
                               now, step.id), now)
    tx.append(incident.id, "ack_overdue", now, step_id=step.id, data={
        "number": ack.number, "recipient": ack.recipient_id, "name": ack.recipient_name,
        "backup": backup.id if sent_backup and backup else None,
        "notified": [told] if told else []})


def _backup(engine: Engine, recipient_id: str) -> Recipient | None:
    first = engine.directory.contact(recipient_id)
    if not isinstance(first, Intermediary) or first.backup is None:
        return None
    found = engine.directory.contact(f"intermediary:{first.backup}")
    return person(found, "intermediary") if isinstance(found, Intermediary) and found.active \
        else None


def _contact(engine: Engine, recipient_id: str) -> str:
    entry = engine.directory.contact(recipient_id)
    if entry is None:
        return ""
    where = [getattr(entry, "organisation", ""), entry.email or "",
             f"Telegram {entry.telegram_chat_id}" if entry.telegram_chat_id else ""]
    shown = ", ".join(esc(w) for w in where if w)
    return f" ({shown})" if shown else ""


def liaison(engine: Engine, tx: Tx, incident_id: str) -> str | None:
    """Who hears about silence and concerns: the community liaison, else the incident lead."""
    holders = engine.holders(tx, incident_id)
    return next((h for r in LIAISON_ROLES if (h := holders.get(r))), None)


def _brief_backup(engine: Engine, tx: Tx, incident: IncidentRow, step: MessageStep,
                  ack: AckRow, backup: Recipient, now: datetime) -> bool:
    """Send the backup the text already approved, in the nearest language it was sent in."""
    texts = {r.delivery.lang: r.delivery.text
             for r in tx.outbox(incident.id, step_id=step.id, number=ack.number)
             if r.delivery.recipient_id.startswith("intermediary:")
             and not r.delivery.key.endswith(("/reminder", "/backup"))}
    if not texts:
        return False
    playbook = engine.version(incident).playbook
    lang = choose(backup.languages, sorted(texts), playbook.fallback_chain).template
    token = ask(tx, incident, step, ack.number, [backup], {backup.id: lang}, now, stage=1,
                backup_for=ack.recipient_id)[backup.id]
    note = f"<b>{esc(phrase('backup', lang, name=ack.recipient_name))}</b>"
    out = [replace(d, key=f"{d.key}/backup") for d in (
        delivery(incident, step.id, ack.number, backup, lang, channel, address,
                 f"{note}\n\n{strip_banner(texts[lang])}", now, {"ack_token": token})
        for channel, address in backup.addresses[:1])]
    engine.send(tx, out, now)
    return True


def acknowledge(engine: Engine, code: str, *, relayed: bool, via: str, actor: str,
                now: datetime, only_for: str | None = None) -> AckRow:
    """Record a confirmation (and that it was shared onwards); the same tap twice adds nothing.

    `only_for` is the recipient the code must belong to (the chat a button was pressed in).
    """
    token = read_code(code)
    with engine.store.begin() as tx:
        ack = tx.ack_by_token(token) if len(token) == 8 else None
        if ack is None or (only_for is not None and ack.recipient_id != only_for):
            raise BadInput.one(code, "no briefing has this confirmation code",
                               "check the code in the person's reply (8 letters and digits)")
        changes: dict[str, object] = {}
        if ack.acked_at is None:
            changes.update(acked_at=now, via=via)
        if relayed and ack.relayed_at is None:
            changes["relayed_at"] = now
        if not changes:
            return ack
        tx.update_ack(ack, **changes)
        tx.append(ack.incident_id, "acked", now, step_id=ack.step_id, actor=actor, data={
            "number": ack.number, "recipient": ack.recipient_id, "name": ack.recipient_name,
            "relayed": relayed, "via": via,
            "after_seconds": int((now - ack.asked_at).total_seconds())})
        return replace(ack, **changes)  # type: ignore[arg-type]


def concern(engine: Engine, text: str, *, sender: str, name: str, via: str, now: datetime,
            incident_id: str | None = None, step_id: str = "", ref: str = "") -> str | None:
    """Log a concern in the incident it is about and forward it; None if no incident is open.

    The incident is the one named, else the latest open one the sender was sent something in,
    else the latest open one. `ref` (a Telegram update id) makes a re-delivered message a no-op.
    """
    text = text.strip()
    if not text:
        raise BadInput.one("concern", "the concern is empty", "write what worries people")
    text = text[:MAX_CONCERN]
    with engine.store.begin() as tx:
        if incident_id is None:
            mine = tx.recipient_incidents(sender)
            open_ones = [i.id for i in tx.incidents(open_only=True)]
            found = mine or open_ones[-1:]
            if not found:
                return None
            incident_id = found[0]
        incident = engine.incident(tx, incident_id)
        if ref and any(e.kind == "concern" and e.data.get("ref") == ref
                       for e in tx.events(incident.id)):
            return incident.id
        logged = tx.append(incident.id, "concern", now, step_id=step_id, actor=sender, data={
            "from": sender, "name": name, "text": text, "via": via, "ref": ref})
        told = liaison(engine, tx, incident.id)
        if told:
            about = f" (in reply to <code>{esc(step_id)}</code>)" if step_id else ""
            engine.send(tx, notice(incident, engine.directory, told,
                                   f"<b>Concern</b> — incident {incident.id}{about}\n"
                                   f"From {esc(name)} via {via}:\n<blockquote>{esc(text)}"
                                   "</blockquote>\nAnswer them, and log what you did.",
                                   f"{incident.id}/concern/{logged.seq}", now),
                        now)
        return incident.id
