"""Intermediaries on Telegram: invite codes, joined chats, chosen languages, dead chats.

The directory files say who the city's intermediaries are; what the bot learns later (a chat
id from an invite, a language picked in the bot, a chat that blocked the bot) is kept in the
database and laid over the files, so a restart or a re-import loses none of it.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta

from playbook.directory import Directory, Intermediary
from playbook.engine import Engine
from playbook.errors import BadInput
from playbook.fanout import esc, notice
from playbook.listening import liaison
from playbook.phrases import new_code, read_code
from playbook.ports import InviteRow, LinkRow, Tx

INVITE_TTL = timedelta(days=7)
_INVITE_LENGTH = 8


def invite(engine: Engine, person: str, *, by: str, now: datetime,
           ttl: timedelta = INVITE_TTL) -> InviteRow:
    """A new single-use code with which intermediary `person` joins the bot."""
    if ttl <= timedelta(0):
        raise BadInput.one("--valid", "an invite must stay valid for some time",
                           "give a duration such as 7d or 48h")
    entry = engine.files.contact(f"intermediary:{person}")
    if not isinstance(entry, Intermediary):
        known = ", ".join(i.id for i in engine.files.intermediaries[:8]) or "none"
        raise BadInput.one(person, "no intermediary with this id in the directory",
                           f"use an id from the intermediaries file (e.g. {known})")
    if not entry.active:
        raise BadInput.one(person, "this intermediary is marked inactive in the directory",
                           "set active back to true before inviting them")
    code = new_code(_INVITE_LENGTH)
    row = InviteRow(code, f"intermediary:{entry.id}", by, now, now + ttl)
    with engine.store.begin() as tx:
        tx.add_invite(row)
    return row


def join(engine: Engine, typed: str, chat_id: str, now: datetime) -> Intermediary | None:
    """Link the chat to the invited intermediary; None for an unknown, used or expired code."""
    code = read_code(typed)
    with engine.store.begin() as tx:
        found = tx.invite(code)
        if found is None or not tx.use_invite(code, chat_id, now):
            return None
        entry = engine.files.contact(found.person_id)
        if not isinstance(entry, Intermediary):
            return None  # removed from the directory since the invite was made
        old = {link.person_id: link for link in tx.links()}.get(found.person_id)
        language = old.language if old else entry.languages[0]
        tx.set_link(LinkRow(found.person_id, chat_id, language, True, now, "joined by invite"))
        relink(engine, tx.links())
    return entry


def choose_language(engine: Engine, person_id: str, chat_id: str, language: str,
                    now: datetime) -> None:
    """Briefings go to this person in `language` first from now on."""
    with engine.store.begin() as tx:
        tx.set_link(LinkRow(person_id, chat_id, language, True, now, "language chosen"))
        relink(engine, tx.links())


def gone(engine: Engine, tx: Tx, recipient_id: str, chat_id: str, incident_id: str,
         reason: str, now: datetime) -> None:
    """A chat refuses the bot (blocked, deleted): stop using it and tell the liaison."""
    entry = engine.directory.contact(recipient_id)
    if entry is None or entry.telegram_chat_id != chat_id:
        return
    tx.set_link(LinkRow(recipient_id, chat_id, entry.languages[0], False, now, reason))
    relink(engine, tx.links())
    person = liaison(engine, tx, incident_id)
    incident = tx.incident(incident_id)
    if person is None or incident is None:
        return
    other = f" Their e-mail still works: {esc(entry.email)}." if entry.email else ""
    text = (f"<b>Telegram no longer reaches {esc(entry.name)}</b> ({esc(recipient_id)}): "
            f"{esc(reason)}.{other} Call them; to bring them back, send a new invite: "
            f"<code>playbook directory invite {esc(entry.id)}</code>")
    engine.send(tx, notice(incident, engine.directory, person, text,
                           f"{incident_id}/inactive/{recipient_id}", now), now)


def relink(engine: Engine, rows: Iterable[LinkRow]) -> None:
    """Lay what the bot learnt over the directory files."""
    engine.directory = overlay(engine.files, rows)


def overlay(directory: Directory, rows: Iterable[LinkRow]) -> Directory:
    """The directory with each linked chat, chosen language and dead chat applied."""
    found = {link.person_id: link for link in rows}
    if not found:
        return directory
    people = []
    for entry in directory.intermediaries:
        link = found.get(f"intermediary:{entry.id}")
        if link is None:
            people.append(entry)
        elif link.active:
            languages = (link.language, *(x for x in entry.languages if x != link.language))
            people.append(entry.model_copy(update={"telegram_chat_id": link.chat_id,
                                                   "languages": languages}))
        elif entry.telegram_chat_id == link.chat_id:
            people.append(entry.model_copy(update={"telegram_chat_id": None}))
        else:
            people.append(entry)
    staff = [s.model_copy(update={"telegram_chat_id": None})
             if (link := found.get(f"staff:{s.id}")) is not None and not link.active
             and s.telegram_chat_id == link.chat_id else s for s in directory.staff]
    return directory.model_copy(update={"intermediaries": tuple(people), "staff": tuple(staff)})
