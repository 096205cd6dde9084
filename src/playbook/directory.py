"""The people a city can reach: staff (the roster), trusted intermediaries, media, public channels.

Pure: selecting an audience, filling roles and choosing a language are functions of the directory
and the playbook. `route` is the one place that decides where a delivery may go, so an exercise
can never reach a real person.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictStr, model_validator

from playbook.model import PARAMETER_REF, Audience, Language, Playbook

PersonId = Annotated[StrictStr, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")]
Tag = Annotated[StrictStr, Field(pattern=r"^[a-z][a-z0-9_-]{0,62}$")]
ChatId = Annotated[StrictStr, Field(pattern=r"^(-?\d{1,20}|@[A-Za-z][A-Za-z0-9_]{3,31})$")]
Email = Annotated[StrictStr, Field(pattern=r"^[^@\s<>]+@[^@\s<>]+\.[^@\s<>]+$")]
PERSONAL_CHANNELS = ("telegram", "email")
SANDBOX_CHANNEL = "console"


class _Entry(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class _Contact(_Entry):
    id: PersonId
    name: Annotated[StrictStr, Field(min_length=1, max_length=200)]
    languages: tuple[Language, ...] = Field(min_length=1, description="In order of preference.")
    telegram_chat_id: ChatId | None = None
    email: Email | None = None

    @model_validator(mode="after")
    def _reachable(self) -> _Contact:
        if self.telegram_chat_id is None and self.email is None:
            raise ValueError("no way to reach this person — add telegram_chat_id or email")
        return self

    def addresses(self) -> tuple[tuple[str, str], ...]:
        """(channel, address) pairs in the order they are tried."""
        found = (("telegram", self.telegram_chat_id), ("email", self.email))
        return tuple((c, a) for c, a in found if a)


class Staff(_Contact):
    """A member of the comms team who can fill roles."""

    roles: tuple[Tag, ...] = Field(default=(), description="Roles this person fills first.")
    backup_for: tuple[Tag, ...] = Field(default=(), description="Roles this person backs up.")
    available: StrictBool = Field(default=True, description="false while on leave.")


class Intermediary(_Contact):
    """A trusted community or religious leader, or a community organisation."""

    organisation: StrictStr = ""
    kind: Tag = "community_leader"
    communities: tuple[Tag, ...] = ()
    areas: tuple[Tag, ...] = ()
    tags: tuple[Tag, ...] = ()
    backup: PersonId | None = None
    active: StrictBool = True


class MediaContact(_Contact):
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


def select(audience: Audience, directory: Directory, values: Mapping[str, Any],
           holders: Mapping[str, str | None]) -> list[Recipient]:
    """Everyone an audience reaches, each once, in directory order."""
    found: dict[str, Recipient] = {}
    for role in audience.roles:
        member = directory.staff_member(holders.get(role) or "")
        if member is not None:
            found.setdefault(f"staff:{member.id}", _person(member, "staff"))
    if audience.intermediaries is not None:
        wanted = {k: _fill(v, values) for k, v in
                  audience.intermediaries.model_dump(exclude_none=True).items()}
        for person in directory.intermediaries:
            if person.active and _matches(person, wanted):
                found.setdefault(f"intermediary:{person.id}", _person(person, "intermediary"))
    if audience.media:
        for contact in directory.media:
            found.setdefault(f"media:{contact.id}", _person(contact, "media"))
    for channel_id in audience.public:
        for recipient in _public(directory, channel_id):
            found.setdefault(recipient.id, recipient)
    return list(found.values())


def missing_public(audience: Audience, directory: Directory) -> list[str]:
    """Public channel ids a playbook names that the directory does not define."""
    known = {p.id for p in directory.public}
    return [c for c in audience.public if c not in known]


def _person(contact: _Contact, kind: Literal["staff", "intermediary", "media"]) -> Recipient:
    return Recipient(f"{kind}:{contact.id}", contact.name, kind, tuple(contact.languages),
                     contact.addresses())


def _public(directory: Directory, channel_id: str) -> Iterator[Recipient]:
    for entry in directory.public:
        if entry.id != channel_id:
            continue
        for lang, address in entry.addresses.items():
            languages = () if lang == "*" else (lang,)
            yield Recipient(f"public:{entry.id}:{lang}", entry.name or entry.id, "public",
                            languages, ((entry.channel, address),))


def _fill(value: str, values: Mapping[str, Any]) -> str:
    ref = PARAMETER_REF.match(value)
    return str(values.get(ref.group(1), value)) if ref else value


def _matches(person: Intermediary, wanted: Mapping[str, str]) -> bool:
    fields = {"community": person.communities, "area": person.areas, "tag": person.tags,
              "kind": (person.kind,)}
    return all(value in fields[name] for name, value in wanted.items())


def language_for(recipient: Recipient, available: Iterable[str]) -> str:
    """The language to send a recipient: the first of theirs the playbook has.

    A regional tag falls back to its base language (`ar-EG` → `ar`); failing both, the playbook's
    first (source) language. A public channel without a language takes every language (`*`).
    """
    offered = list(available)
    for lang in recipient.languages:
        if lang in offered:
            return lang
        base = lang.split("-")[0]
        if base in offered:
            return base
    if not recipient.languages and recipient.kind == "public":
        return "*"
    return offered[0]


def channels_for(recipient: Recipient, allowed: Iterable[str]) -> list[tuple[str, str]]:
    """The (channel, address) pairs to use: each allowed one the recipient has, else the first."""
    if recipient.kind == "public":
        return list(recipient.addresses)
    wanted = set(allowed)
    if not wanted:
        return list(recipient.addresses[:1])
    return [(c, a) for c, a in recipient.addresses if c in wanted]


def route(recipient: Recipient, channel: str, address: str, *, exercise: bool,
          incident_id: str, participants: frozenset[str]) -> tuple[str, str]:
    """Where a delivery may actually go: the one place that keeps exercises away from people.

    In an exercise only drill participants are reached, on their own personal channels; every
    other recipient and every public channel lands in the incident's sandbox instead.
    """
    if not exercise:
        return channel, address
    person = recipient.id.split(":", 1)[1] if recipient.kind == "staff" else None
    if person is not None and person in participants and channel in PERSONAL_CHANNELS:
        return channel, address
    return SANDBOX_CHANNEL, f"exercise/{incident_id}"
