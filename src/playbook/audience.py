"""Who a message reaches, in which language, over which channels.

Pure functions of the directory, the playbook and the activation values. The engine uses them to
fan a message out; `plan` and `validate` use the same functions to show, before a crisis, how
many people each step reaches and who would get a language that is not theirs.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from playbook.directory import Contact, Directory, Intermediary, Recipient
from playbook.language import ALIASES, Choice, base, choose, expand
from playbook.model import Audience, MessageStep, Playbook
from playbook.plan import fill
from playbook.render import TemplateLibrary

EVERY_LANGUAGE = "*"


def select(audience: Audience, directory: Directory, values: Mapping[str, Any],
           holders: Mapping[str, str | None]) -> list[Recipient]:
    """Everyone an audience reaches, each once, in directory order."""
    found: dict[str, Recipient] = {}
    for role in audience.roles:
        member = directory.staff_member(holders.get(role) or "")
        if member is not None:
            found.setdefault(f"staff:{member.id}", person(member, "staff"))
    if audience.intermediaries is not None:
        wanted = {k: {fill(v, values) for v in vs}
                  for k, vs in audience.intermediaries.wanted().items()}
        for someone in directory.intermediaries:
            if someone.active and _matches(someone, wanted):
                found.setdefault(f"intermediary:{someone.id}", person(someone, "intermediary"))
    if audience.media:
        for contact in directory.media:
            found.setdefault(f"media:{contact.id}", person(contact, "media"))
    for channel_id in audience.public:
        for recipient in _public(directory, channel_id):
            found.setdefault(recipient.id, recipient)
    return list(found.values())


def missing_public(audience: Audience, directory: Directory) -> list[str]:
    """Public channel ids a playbook names that the directory does not define."""
    known = {p.id for p in directory.public}
    return [c for c in audience.public if c not in known]


def person(contact: Contact, kind: Literal["staff", "intermediary", "media"]) -> Recipient:
    """A directory entry as an addressee."""
    return Recipient(f"{kind}:{contact.id}", contact.name, kind, tuple(contact.languages),
                     contact.addresses())


def _public(directory: Directory, channel_id: str) -> Iterator[Recipient]:
    for entry in directory.public:
        if entry.id != channel_id:
            continue
        for lang, address in entry.addresses.items():
            languages = () if lang == EVERY_LANGUAGE else (lang,)
            yield Recipient(f"public:{entry.id}:{lang}", entry.name or entry.id, "public",
                            languages, ((entry.channel, address),))


def _matches(someone: Intermediary, wanted: Mapping[str, set[str]]) -> bool:
    fields = {"community": someone.communities, "area": someone.areas, "tag": someone.tags,
              "kind": (someone.kind,)}
    for name, accepted in wanted.items():
        if name == "language":
            if not _speaks(someone.languages, accepted):
                return False
        elif not accepted & set(fields[name]):
            return False
    return True


def _speaks(languages: Iterable[str], accepted: set[str]) -> bool:
    """`ar` accepts every Arabic reader; `ar-EG` only those who list exactly that.

    An alias and the variety it stands for are one language: `prs` (Dari) accepts those who
    list `fa-AF`, and `fa-AF` those who list `prs`, as `choose` gives both the same text.
    """
    theirs = {t.lower() for tag in languages for t in expand(tag)} | {base(t) for t in languages}
    return any(a.lower() in theirs or _variety(a) in theirs for a in accepted)


def _variety(tag: str) -> str:
    """What an alias stands for, lower-cased (`prs` -> `fa-af`); any other tag itself."""
    return (*ALIASES.get(tag.lower(), ()), tag)[0].lower()


def choice_for(recipient: Recipient, available: Sequence[str],
               playbook: Playbook) -> Choice | None:
    """The language a recipient gets; None for a public channel that posts every language."""
    if recipient.kind == "public" and not recipient.languages:
        return None
    return choose(recipient.languages, available, playbook.fallback_chain)


def available(playbook: Playbook, templates: TemplateLibrary, key: str) -> tuple[str, ...]:
    """The languages a message exists in: the playbook's, then any regional versions."""
    extra = sorted(lang for k, lang in templates.sources if k == key
                   and lang not in playbook.languages)
    return (*(lang for lang in playbook.languages if templates.get(key, lang)), *extra)


def variants(recipients: Iterable[Recipient], offered: Sequence[str],
             playbook: Playbook) -> dict[str, str]:
    """{locale: template language} for every text this audience needs, rendered once each."""
    needed: dict[str, str] = {}
    for recipient in recipients:
        choice = choice_for(recipient, offered, playbook)
        if choice is None:
            needed.update({lang: lang for lang in playbook.languages})
        else:
            needed.setdefault(choice.locale, choice.template)
    order = {lang: i for i, lang in enumerate(offered)}
    return dict(sorted(needed.items(), key=lambda kv: (order.get(kv[1], len(order)), kv[0])))


def channels_for(recipient: Recipient, allowed: Iterable[str]) -> list[tuple[str, str]]:
    """The (channel, address) pairs to use: each allowed one the recipient has, else the first."""
    if recipient.kind == "public":
        return list(recipient.addresses)
    wanted = allowed if isinstance(allowed, frozenset) else frozenset(allowed)
    if not wanted:
        return list(recipient.addresses[:1])
    return [(c, a) for c, a in recipient.addresses if c in wanted]


@dataclass(frozen=True)
class Fallback:
    """A recipient none of whose languages a message has, and what they get instead."""

    recipient: Recipient
    gets: str


@dataclass(frozen=True)
class Reach:
    """How many recipients one message step reaches, by language and by channel."""

    step: MessageStep
    recipients: int
    by_language: Mapping[str, int] = field(default_factory=dict)
    by_channel: Mapping[str, int] = field(default_factory=dict)
    fallbacks: tuple[Fallback, ...] = ()
    unreachable: tuple[Recipient, ...] = ()
    """Recipients with none of the channels the step allows."""


def reach(step: MessageStep, playbook: Playbook, directory: Directory,
          values: Mapping[str, Any], holders: Mapping[str, str | None],
          offered: Sequence[str]) -> Reach:
    """What one step would reach with this directory: counts per language and channel."""
    recipients = select(step.to, directory, values, holders)
    languages: Counter[str] = Counter()
    channels: Counter[str] = Counter()
    fallbacks, unreachable = [], []
    for recipient in recipients:
        choice = choice_for(recipient, offered, playbook)
        langs = playbook.languages if choice is None else (choice.locale,)
        if choice is not None and choice.fallback:
            fallbacks.append(Fallback(recipient, choice.template))
        pairs = channels_for(recipient, step.channels)
        if not pairs:
            unreachable.append(recipient)
        for lang in langs:
            languages[lang] += 1
            for channel, _ in pairs:
                channels[channel] += 1
    return Reach(step, len(recipients), dict(languages.most_common()),
                 dict(channels.most_common()), tuple(fallbacks), tuple(unreachable))


def language_gaps(playbook: Playbook, templates: TemplateLibrary,
                  directory: Directory) -> list[Fallback]:
    """Intermediaries and media who read none of a playbook's messages' languages.

    Checked against everyone, whatever the audiences select at activation, so `validate`
    names them long before a crisis; they would get the fallback chain's language.
    """
    gaps: dict[str, Fallback] = {}
    people = [person(p, "intermediary") for p in directory.intermediaries if p.active]
    people += [person(m, "media") for m in directory.media]
    for step in playbook.message_steps():
        offered = available(playbook, templates, step.message)
        for someone in people:
            choice = choice_for(someone, offered, playbook)
            if choice is not None and choice.fallback:
                gaps.setdefault(someone.id, Fallback(someone, choice.template))
    return list(gaps.values())
