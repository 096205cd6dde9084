"""The bot's own words in the user's language: compiled gettext catalogs, chosen by locale.

Key messages are templates the city approves (`render`); the sentences of the bot's menus and
conversations are gettext messages instead, marked in the code with `_("...")` and
`ngettext("...", "...", n)`, extracted and compiled by `python -m playbook.i18ntool` and
shipped as `locale/<lang>/LC_MESSAGES/playbook.mo` beside this module. A user's tag
(`ar-EG`, `uk_UA`, `prs`) is negotiated to the nearest catalog the way a recipient's is to a
template (`language.choose`), and anything else reads English.

Placeholders are named (`_("Incident %(id)s is open.") % {"id": incident_id}`) so a
translation can put them in any order; `Translator.isolate` keeps a value's own direction
inside a right-to-left sentence.
"""

from __future__ import annotations

import gettext
import re
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from importlib.resources import files
from importlib.resources.abc import Traversable

from babel import Locale

from playbook.language import choose
from playbook.render import FSI, LRI, PDI, is_rtl

DOMAIN = "playbook"
SOURCE_LANGUAGE = "en"
LOCALES: tuple[str, ...] = ("en", "ar", "es", "fa", "fr", "uk")
"""The catalogs shipped: the languages of the protocol library. English is the source."""
LOCALE_DIR: Traversable = files("playbook") / "locale"
_COMMAND = re.compile(r"(?<![\w/])/[a-z][a-z_]*\b")


def N_(message: str) -> str:
    """Mark a string for translation without translating it (module-level constants).

    Translate it where it is shown: `t.gettext(GREETING)`. The name is gettext's convention,
    which extraction looks for.
    """
    return message


@dataclass(frozen=True)
class Translator:
    """One language's catalog: what the bot says to a user who reads `locale`."""

    locale: str
    """The catalog chosen (`ar` for a user whose tag is `ar-EG`)."""
    translations: gettext.NullTranslations
    rtl: bool
    """Whether the catalog's language is written right to left (Arabic, Persian)."""

    def gettext(self, message: str) -> str:
        """`message` in this language, or as written where the catalog lacks it."""
        return self._commands(self.translations.gettext(message))

    def ngettext(self, singular: str, plural: str, n: int) -> str:
        """The form for `n` of a message with plurals, by the language's plural rule."""
        return self._commands(self.translations.ngettext(singular, plural, n))

    def _commands(self, text: str) -> str:
        """In right-to-left text a `/command` is a left-to-right run: "/log", not "log/"."""
        return _COMMAND.sub(lambda m: f"{LRI}{m.group()}{PDI}", text) if self.rtl else text

    def pgettext(self, context: str, message: str) -> str:
        """`message` as meant in `context`, for a short word with two meanings ("Open")."""
        return self.translations.pgettext(context, message)

    def isolate(self, values: Mapping[str, object]) -> dict[str, object]:
        """Placeholder values ready for `%`: in a right-to-left language each text is isolated.

        A code, a phone number or a Latin name keeps its own order inside Arabic or Persian,
        and a name in another script cannot reorder the sentence around it. Numbers stay
        numbers, for `%(n)d`.
        """
        if not self.rtl:
            return dict(values)
        return {key: (f"{LRI if _ltr(value) else FSI}{value}{PDI}"
                      if isinstance(value, str) else value)
                for key, value in values.items()}


def negotiate(tag: str | None, available: tuple[str, ...] = LOCALES) -> str:
    """The catalog for a user's language tag (`ar-EG` -> `ar`, `prs` -> `fa`), else English.

    Accepts BCP 47 and POSIX spellings (`uk_UA`, `fr_CA.UTF-8`), as Telegram and the
    environment give them.
    """
    if not tag:
        return SOURCE_LANGUAGE
    cleaned = tag.split(".")[0].split("@")[0].replace("_", "-").strip()
    if not cleaned:
        return SOURCE_LANGUAGE
    return choose([cleaned], available, [SOURCE_LANGUAGE]).template


@lru_cache(maxsize=512)
def translator(locale: str | None) -> Translator:
    """The translator for a user's language tag, from the shipped catalogs (cached)."""
    return _shipped(negotiate(locale))


@lru_cache(maxsize=len(LOCALES))
def _shipped(lang: str) -> Translator:
    return load(lang)


def load(lang: str, directory: Traversable = LOCALE_DIR) -> Translator:
    """The catalog of `lang` compiled under `directory` (English reads the code's own words).

    A missing catalog for a language other than English is a packaging error, not a reason to
    answer a user in the wrong language silently.
    """
    mo = directory / lang / "LC_MESSAGES" / f"{DOMAIN}.mo"
    translations: gettext.NullTranslations
    if mo.is_file():
        with mo.open("rb") as handle:
            translations = gettext.GNUTranslations(handle)
    elif lang == SOURCE_LANGUAGE:
        translations = gettext.NullTranslations()
    else:
        raise FileNotFoundError(f"no compiled catalog for {lang!r} at {mo}: "
                                "run `python -m playbook.i18ntool compile`")
    return Translator(lang, translations, is_rtl(lang))


def autonym(lang: str) -> str:
    """A language's name in itself (`العربية`, `українська`), for a language picker.

    From CLDR rather than the catalogs, so every reader finds their language by its own name.
    """
    name = Locale.parse(lang, sep="-").display_name or lang
    return name[:1].upper() + name[1:]  # a picker's entry: "Français", not "français"


def _ltr(value: str) -> bool:
    return all(not ("\u0590" <= ch <= "\u08ff") for ch in value)
