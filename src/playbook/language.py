"""Which language a recipient gets, and which locale it is formatted for.

Decided with babel's locale negotiation over the recipient's languages in their order of
preference: an exact template wins, a regional tag falls back to its language (`ar-EG` -> `ar`),
and a few tags babel does not know are first expanded to the ones it does (Dari `prs` ->
`fa-AF`, then `fa`). A recipient none of whose languages a template has gets the playbook's
fallback chain, and the choice says so, so that it is reported and never silent.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import TypeVar

from babel import Locale, UnknownLocaleError, negotiate_locale

T = TypeVar("T")
ALIASES: dict[str, tuple[str, ...]] = {
    # ISO 639-3 codes for varieties CLDR files under another tag.
    "prs": ("fa-AF", "fa"),      # Dari
    "prs-af": ("fa-AF", "fa"),
    "pes": ("fa-IR", "fa"),      # Iranian Persian
    "arb": ("ar",),              # Modern Standard Arabic
    "apc": ("ar-SY", "ar-LB", "ar"),  # Levantine Arabic
    "arz": ("ar-EG", "ar"),      # Egyptian Arabic
    "pbu": ("ps",), "pbt": ("ps",),  # Pashto
    "ckb": ("ckb", "ku"),        # Central Kurdish
}


@dataclass(frozen=True)
class Choice:
    """The template language a recipient gets and the locale its dates and numbers follow."""

    template: str
    """The language of the template used, as the template library spells it (`ar`)."""
    locale: str
    """The locale to format for: the reader's own tag where it refines the template's."""
    fallback: bool = False
    """None of the recipient's languages has a template: the playbook's fallback chain decided."""


def known(tag: str) -> bool:
    """Whether `tag` is a language tag babel knows, directly or through an alias."""
    if tag.lower() in ALIASES:
        return True
    try:
        Locale.parse(tag, sep="-")
    except (ValueError, UnknownLocaleError):
        return False
    return True


def expand(tag: str) -> tuple[str, ...]:
    """`tag` followed by the tags babel knows it by (`prs` -> `prs`, `fa-AF`, `fa`)."""
    return (tag, *ALIASES.get(tag.lower(), ()))


def choose(preferences: Sequence[str], available: Sequence[str],
           fallback: Sequence[str]) -> Choice:
    """The first of `preferences` the templates have (`available`), else the fallback chain."""
    return _choose(tuple(preferences), tuple(available), tuple(fallback))


@lru_cache(maxsize=4096)
def _choose(preferences: tuple[str, ...], available: tuple[str, ...],
            fallback: tuple[str, ...]) -> Choice:
    spelling = {a.lower(): a for a in available}
    for tag in preferences:
        # One preference at a time: a later language the reader knows better never wins over
        # an earlier one only because a regional variant of it exists.
        found = negotiate_locale(list(expand(tag)), list(available), sep="-")
        if found is not None:
            template = spelling[found.lower()]
            return Choice(template, _locale(tag, template))
    for tag in fallback:
        if tag.lower() in spelling:
            return Choice(spelling[tag.lower()], spelling[tag.lower()], fallback=True)
    first = available[0] if available else (fallback[0] if fallback else "en")
    return Choice(first, first, fallback=True)


def _locale(tag: str, template: str) -> str:
    """The recipient's own tag when babel knows it and it is a variant of the template's language.

    `en-GB` reading the `en` template gets British times (14:00); `prs` reading `fa-AF` gets the
    Afghan calendar month names of `fa-AF`.
    """
    for candidate in expand(tag):
        try:
            mine = Locale.parse(candidate, sep="-")
            theirs = Locale.parse(template, sep="-")
        except (ValueError, UnknownLocaleError):
            continue
        if mine.language != theirs.language:
            continue
        if theirs.territory and mine.territory != theirs.territory:
            return template
        return _canonical(candidate)
    return template


def _canonical(tag: str) -> str:
    """A tag in BCP 47's usual case (`AR-eg` -> `ar-EG`), so one locale has one spelling.

    Phrases, exercise banners and rendered variants are looked up by the locale as spelt.
    """
    first, *rest = tag.split("-")
    parts = [first.lower()]
    for part in rest:
        if len(part) == 4 and part.isalpha():
            parts.append(part.title())
        elif (len(part) == 2 and part.isalpha()) or (len(part) == 3 and part.isdigit()):
            parts.append(part.upper())
        else:
            parts.append(part.lower())
    return "-".join(parts)


def lookup_key(table: Mapping[str, object], locale: str, default: str = "en") -> str:
    """Which key of a per-language table a locale reads: its variant, its language, or `default`.

    `fa-AF` reads `fa-AF` where the table has it, else `fa`; `prs` reads as `fa-AF`.
    """
    for tag in expand(locale):
        for key in (tag, tag.split("-")[0]):
            if key in table:
                return key
    return default


def lookup(table: Mapping[str, T], locale: str, default: str = "en") -> T:
    """A per-language entry for a locale (see `lookup_key`)."""
    return table[lookup_key(table, locale, default)]


def base(tag: str) -> str:
    """The language part of a tag (`ar-EG` -> `ar`), after aliases (`prs` -> `fa`)."""
    return expand(tag)[-1].split("-")[0].lower()
