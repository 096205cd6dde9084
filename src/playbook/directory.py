"""The people a city can reach: staff (the roster), trusted intermediaries, media, public channels.

Pure: selecting an audience, filling roles and choosing a language are functions of the directory
and the playbook. `route` is the one place that decides where a delivery may go, so an exercise
can never reach a real person.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictStr, model_validator

from playbook.model import Language, Playbook

PersonId = Annotated[StrictStr, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")]
Tag = Annotated[StrictStr, Field(pattern=r"^[a-z][a-z0-9_-]{0,62}$")]
ChatId = Annotated[StrictStr, Field(pattern=r"^(-?\d{1,20}|@[A-Za-z][A-Za-z0-9_]{3,31})$")]
Email = Annotated[StrictStr, Field(pattern=r"^[^@\s<>]+@[^@\s<>]+\.[^@\s<>]+$")]


class _Entry(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Contact(_Entry):
    id: PersonId
    name: Annotated[StrictStr, Field(min_length=1, max_length=200)]
    languages: tuple[Language, ...] = Field(min_length=1, description="In order of preference.")
    telegram_chat_id: ChatId | None = None
    email: Email | None = None

    @model_validator(mode="after")
    def _reachable(self) -> Contact:
        if self.telegram_chat_id is None and self.email is None:
            raise ValueError("no way to reach this person — add telegram_chat_id or email")
        return self

    def addresses(self) -> tuple[tuple[str, str], ...]:
        """(channel, address) pairs in the order they are tried."""
        found = (("telegram", self.telegram_chat_id), ("email", self.email))
        return tuple((c, a) for c, a in found if a)


class Staff(Contact):
    """A member of the comms team who can fill roles."""

    roles: tuple[Tag, ...] = Field(default=(), description="Roles this person fills first.")
    backup_for: tuple[Tag, ...] = Field(default=(), description="Roles this person backs up.")
    available: StrictBool = Field(default=True, description="false while on leave.")


class Intermediary(Contact):
    """A trusted community or religious leader, or a community organisation."""

    organisation: StrictStr = ""
    kind: Tag = "community_leader"
    communities: tuple[Tag, ...] = ()
    areas: tuple[Tag, ...] = ()
    tags: tuple[Tag, ...] = ()
    backup: PersonId | None = None
    active: StrictBool = True


class MediaContact(Contact):
    """A journalist or newsroom that gets media statements."""

    outlet: StrictStr = ""


class PublicChannel(_Entry):
    """A resident-facing channel; `addresses` maps a language (or `*` for all) to an address."""

    id: Tag
    name: StrictStr = ""
    channel: Literal["telegram", "email", "webhook", "cap", "file", "console"]
    addresses: dict[StrictStr, StrictStr] = Field(min_length=1)


class Directory(_Entry):
    """Everyone the city can reach."""

    staff: tuple[Staff, ...] = ()
    intermediaries: tuple[Intermediary, ...] = ()
    media: tuple[MediaContact, ...] = ()
    public: tuple[PublicChannel, ...] = ()

    def staff_member(self, person: str) -> Staff | None:
        """The staff member with this id."""
        return next((s for s in self.staff if s.id == person), None)

    def contact(self, recipient_id: str) -> Contact | None:
        """The entry behind a recipient id such as `intermediary:imam-karim` or `staff:anna`."""
        kind, _, ident = recipient_id.partition(":")
        people: dict[str, tuple[Contact, ...]] = {
            "staff": self.staff, "intermediary": self.intermediaries, "media": self.media}
        return next((p for p in people.get(kind, ()) if p.id == ident), None)


@dataclass(frozen=True)
class Recipient:
    """One addressee of a message: a person, or one language of a public channel."""

    id: str
    name: str
    kind: Literal["staff", "intermediary", "media", "public"]
    languages: tuple[str, ...]
    addresses: tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class Assignment:
    """Who holds a role in one incident, and who backs them up."""

    role: str
    holder: str | None
    backup: str | None
    note: str = ""


def assign_roles(playbook: Playbook, directory: Directory) -> list[Assignment]:
    """Fill each role: a primary, else a backup from the roster, else the playbook's backup role."""
    result: dict[str, Assignment] = {}
    for role in playbook.roles:
        primaries = [s.id for s in directory.staff if role in s.roles and s.available]
        backups = [s.id for s in directory.staff if role in s.backup_for and s.available]
        holder = primaries[0] if primaries else (backups[0] if backups else None)
        others = [p for p in primaries[1:] + backups if p != holder]
        note = "" if primaries else ("filled by its backup: no primary available" if holder
                                     else "unfilled: nobody available for this role")
        result[role] = Assignment(role, holder, others[0] if others else None, note)
    for role, assignment in result.items():
        if assignment.holder is None:
            cover = _covering(playbook, result, role)
            if cover is not None:
                result[role] = Assignment(role, result[cover].holder, result[cover].backup,
                                          f"covered by the {playbook.roles[cover].title.lower()}:"
                                          " nobody in the roster holds this role")
    return list(result.values())


def _covering(playbook: Playbook, found: Mapping[str, Assignment], role: str) -> str | None:
    """The first role along the playbook's `backup` chain that has a holder."""
    seen = {role}
    nxt = playbook.roles[role].backup
    while nxt is not None and nxt not in seen:
        if found[nxt].holder is not None:
            return nxt
        seen.add(nxt)
        nxt = playbook.roles[nxt].backup
    return None
