"""Exercise isolation: the one place that decides where an exercise delivery may go.

Every outbox row passes `seal` (through `Engine.send`, the only way into the outbox). In an
exercise a row keeps its address only when it is a drill participant's own private chat or
mailbox, and nobody else in the directory shares that address; everything else (intermediaries,
media, public channels, other staff, group chats, webhooks, CAP feeds) lands in the incident's
sandbox. Every exercise text starts with the exercise banner in its own language. The rules
trust neither the playbook nor the directory: a staff entry that borrows an intermediary's chat
or a channel's address is not reached either.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace

from playbook.delivery import Delivery
from playbook.directory import Directory
from playbook.render import EXERCISE_BANNER, exercise_banner

SANDBOX_CHANNEL = "console"
PERSONAL_CHANNELS = frozenset({"telegram", "email"})
Address = tuple[str, str]


def sandbox(incident_id: str) -> str:
    """The sandbox address of one exercise (a folder of the console channel)."""
    return f"exercise/{incident_id}"


def is_private(channel: str, address: str) -> bool:
    """A one-person address: a private Telegram chat (positive id) or a mailbox."""
    if channel == "telegram":
        return address.isdigit()
    return channel == "email" and "@" in address and not address.startswith("@")


def reachable(directory: Directory, participants: Iterable[str]) -> frozenset[Address]:
    """The addresses an exercise may reach: participants' own private chats and mailboxes.

    An address that anyone else in the directory also uses is left out, so no entry can lend
    a real person's chat to a drill.
    """
    owners: dict[Address, set[str]] = {}
    for kind, people in (("staff", directory.staff), ("intermediary", directory.intermediaries),
                         ("media", directory.media)):
        for person in people:
            for address in person.addresses():
                owners.setdefault(address, set()).add(f"{kind}:{person.id}")
    for public in directory.public:
        for where in public.addresses.values():
            owners.setdefault((public.channel, where), set()).add(f"public:{public.id}")
    mine = {f"staff:{person}" for person in participants}
    return frozenset(
        (channel, address) for (channel, address), who in owners.items()
        if channel in PERSONAL_CHANNELS and is_private(channel, address)
        and len(who) == 1 and who <= mine)


def banner_first(text: str, lang: str) -> str:
    """The text with the exercise banner of its language as its first line."""
    banner = exercise_banner(lang)
    return text if text.startswith(banner) else f"{banner}\n\n{text}"


def strip_banner(text: str) -> str:
    """The text without a leading exercise banner, to add a note above the body."""
    for banner in EXERCISE_BANNER.values():
        if text.startswith(banner):
            return text[len(banner):].lstrip("\n")
    return text


def seal(delivery: Delivery, *, exercise: bool, incident_id: str,
         allowed: frozenset[Address]) -> Delivery:
    """The delivery as it may go out: unchanged for an actual incident, isolated in a drill."""
    if not exercise:
        return delivery
    address = (delivery.channel, delivery.address)
    if not (delivery.recipient_id.startswith("staff:") and address in allowed):
        address = (SANDBOX_CHANNEL, sandbox(incident_id))
    return replace(delivery, exercise=True, channel=address[0], address=address[1],
                   text=banner_first(delivery.text, delivery.lang))
