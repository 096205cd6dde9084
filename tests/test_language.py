"""Language negotiation: which template a reader gets, the locale it is formatted for, fallbacks."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from playbook.language import ALIASES, Choice, base, choose, expand, known
from playbook.phrases import PHRASES, phrase
from playbook.render import EXERCISE_BANNER, Renderer, TemplateSource, exercise_banner

VIENNA = ZoneInfo("Europe/Vienna")
NOON_UTC = datetime(2026, 5, 1, 12, 0, tzinfo=ZoneInfo("UTC"))
LRI, FSI, PDI = "\u2066", "\u2068", "\u2069"
ARABIC_INDIC = frozenset("٠١٢٣٤٥٦٧٨٩")
EXTENDED_ARABIC_INDIC = frozenset("۰۱۲۳۴۵۶۷۸۹")
LATIN_DIGITS = frozenset("0123456789")


@pytest.mark.parametrize(("preferences", "available", "expected"), [
    # Exact matches.
    (["en"], ["en", "ar"], Choice("en", "en")),
    (["ar"], ["en", "ar"], Choice("ar", "ar")),
    (["fa-AF"], ["en", "fa", "fa-AF"], Choice("fa-AF", "fa-AF")),
    # The first language the templates have wins, even when a later one is also offered.
    (["uk", "ar"], ["en", "ar", "uk"], Choice("uk", "uk")),
    (["ar", "uk"], ["en", "ar", "uk"], Choice("ar", "ar")),
    (["so", "ar", "en"], ["en", "ar"], Choice("ar", "ar")),
    (["prs", "ar"], ["ar", "fa"], Choice("fa", "fa-AF")),
    # A regional tag reads its language's template, formatted for the region.
    (["ar-EG"], ["en", "ar"], Choice("ar", "ar-EG")),
    (["en-GB"], ["en", "ar"], Choice("en", "en-GB")),
    (["fa-AF"], ["en", "fa"], Choice("fa", "fa-AF")),
    (["fa-IR"], ["fa", "fa-AF"], Choice("fa", "fa-IR")),
    # Dari: its own template where there is one, else Persian with Afghan formatting.
    (["prs"], ["en", "fa", "fa-AF"], Choice("fa-AF", "fa-AF")),
    (["prs"], ["en", "fa"], Choice("fa", "fa-AF")),
    (["prs-AF"], ["en", "fa"], Choice("fa", "fa-AF")),
    # Case does not matter; the locale comes back in its conventional spelling.
    (["PRS"], ["en", "fa"], Choice("fa", "fa-AF")),
    (["PRS"], ["en", "fa", "fa-AF"], Choice("fa-AF", "fa-AF")),
    (["AR-eg"], ["en", "ar"], Choice("ar", "ar-EG")),
    (["en-gb"], ["en"], Choice("en", "en-GB")),
    (["fa-af"], ["en", "fa", "fa-AF"], Choice("fa-AF", "fa-AF")),
])
def test_a_reader_gets_the_first_of_their_languages_the_templates_have(
        preferences: list[str], available: list[str], expected: Choice) -> None:
    """The choice follows the reader's order; regions and Dari map onto the templates there are."""
    assert choose(preferences, available, ["en"]) == expected


@pytest.mark.parametrize(("preferences", "available", "chain", "expected"), [
    (["so"], ["en", "ar"], ["en"], "en"),
    (["so"], ["en", "ar", "uk"], ["uk", "ar"], "uk"),
    (["so", "ti"], ["en", "ar", "uk"], ["ar", "uk"], "ar"),
    # A chain member the templates lack is skipped, not chosen.
    (["so"], ["en", "ar"], ["uk", "ar"], "ar"),
    (["so"], ["en", "ar"], ["fa", "uk", "en"], "en"),
    # Nothing of the chain exists: the first template there is, still marked a fallback.
    (["so"], ["ar", "en"], ["uk"], "ar"),
    # A reader of a language only a regional template has is not given that template.
    (["ar"], ["en", "ar-EG"], ["en"], "en"),
])
def test_a_reader_with_no_matching_language_gets_the_fallback_chain(
        preferences: list[str], available: list[str], chain: list[str], expected: str) -> None:
    """The chain is tried in order, its missing members skipped, and the choice says fallback."""
    assert choose(preferences, available, chain) == Choice(expected, expected, fallback=True)


def test_a_matching_language_is_never_reported_as_a_fallback() -> None:
    """A reader whose own language exists is not a fallback, even if it is the chain's first."""
    assert choose(["en"], ["en", "ar"], ["en"]).fallback is False
    assert choose(["ar-EG"], ["en", "ar"], ["en"]).fallback is False


def test_no_preferences_is_a_fallback() -> None:
    """A reader with no languages at all gets the chain's language, marked as a fallback."""
    assert choose([], ["en", "ar"], ["ar"]) == Choice("ar", "ar", fallback=True)


@pytest.mark.parametrize(("tag", "expected"), [
    ("en", True), ("ar-EG", True), ("fa-AF", True), ("prs", True), ("PRS", True),
    ("prs-AF", True), ("arz", True), ("fa-af", True),
    ("xx-nonsense", False), ("zz", False), ("", False), ("english", False),
])
def test_known_accepts_babel_tags_and_aliases_only(tag: str, expected: bool) -> None:
    """Dari and Afghan Persian are known; made-up tags are refused."""
    assert known(tag) is expected


@pytest.mark.parametrize(("tag", "expected"), [
    ("ar-EG", "ar"), ("AR-eg", "ar"), ("en", "en"), ("fa-AF", "fa"), ("prs", "fa"),
    ("PRS", "fa"), ("arz", "ar"), ("pbt", "ps"), ("uk", "uk"),
])
def test_base_is_the_language_after_aliases(tag: str, expected: str) -> None:
    """The language part of a tag, with an alias first resolved (`prs` -> `fa`)."""
    assert base(tag) == expected


def test_expand_puts_the_tag_before_what_babel_knows_it_by() -> None:
    """Aliases expand in order; any other tag stands alone."""
    assert expand("prs") == ("prs", "fa-AF", "fa")
    assert expand("PRS") == ("PRS", "fa-AF", "fa")
    assert expand("ar-EG") == ("ar-EG",)
    assert all(known(t) for alias in ALIASES.values() for t in alias)


def _render(text: str, template: str, locale: str) -> str:
    source = TemplateSource("k", template, f"message_templates/k/{template}.j2", text)
    return Renderer(VIENNA).render(source, {"when": NOON_UTC, "n": 1234.5}, locale=locale).text


def _digits(text: str) -> set[str]:
    return {ch for ch in text if ch.isdigit()}


def test_the_locale_decides_the_clock_of_an_english_template() -> None:
    """The same `en` template reads 2:00 PM to an American and 14:00 to a British reader."""
    text = "{{ when|time }} {{ n|number }}"
    assert _render(text, "en", "en") == "2:00\u202fPM 1,234.5"
    assert _render(text, "en", choose(["en-GB"], ["en"], ["en"]).locale) == "14:00 1,234.5"


def test_the_locale_decides_the_digits() -> None:
    """Egyptian Arabic gets Arabic-Indic digits, Dari the extended Persian ones."""
    text = "{{ when|time }} {{ n|number }}"
    egyptian = _render(text, "ar", "ar-EG")
    afghan = _render(text, "fa-AF", "fa-AF")
    assert _digits(egyptian) == set("٠١٢٣٤٥")
    assert _digits(egyptian) <= ARABIC_INDIC
    assert _digits(afghan) == set("۰۱۲۳۴۵")
    assert _digits(afghan) <= EXTENDED_ARABIC_INDIC
    assert "٢:٠٠" in egyptian
    assert "١٬٢٣٤٫٥" in egyptian
    assert "۱۴:۰۰" in afghan
    assert "۱٬۲۳۴٫۵" in afghan
    # The same `ar` template is formatted differently for an Egyptian reader than for `ar`.
    assert _render(text, "ar", "ar") != egyptian
    assert not _digits(_render(text, "en", "en")) - LATIN_DIGITS


def test_afghan_month_names_differ_from_iranian_ones() -> None:
    """May is `می` in Afghanistan, not the Iranian `مهٔ`; a Dari reader of `fa` gets `می`."""
    iranian = _render("{{ when|date }}", "fa", "fa")
    afghan = _render("{{ when|date }}", "fa-AF", "fa-AF")
    assert iranian != afghan
    assert "می" in afghan.split()
    assert "مهٔ" in iranian.split()
    dari = choose(["prs"], ["en", "fa"], ["en"])
    assert _render("{{ when|date }}", dari.template, dari.locale) == afghan


@pytest.mark.parametrize(("locale", "expected"), [
    ("fa-AF", "fa-AF"), ("prs", "fa-AF"), ("PRS", "fa-AF"), ("fa", "fa"), ("fa-IR", "fa"),
    ("ar-EG", "ar"), ("ar", "ar"), ("en-GB", "en"), ("de", "en"), ("xx", "en"),
])
def test_the_exercise_banner_is_in_the_readers_language(locale: str, expected: str) -> None:
    """Afghan Persian has its own banner, regional Arabic gets Arabic, the unknown English."""
    assert exercise_banner(locale) == EXERCISE_BANNER[expected]


def test_the_afghan_banner_is_not_the_iranian_one() -> None:
    """`fa-AF` and `fa` use different words for an exercise."""
    assert exercise_banner("fa-AF") != exercise_banner("fa")


@pytest.mark.parametrize("locale", ["zz", "de", "xx-nonsense", "so"])
def test_a_phrase_falls_back_to_english(locale: str) -> None:
    """A language the engine has no words in gets English, with its values as given."""
    assert phrase("ack_code", locale, code="K7F3-Q2MX") == PHRASES["ack_code"]["en"].format(
        code="K7F3-Q2MX")
    assert phrase("thanks_ack", locale) == PHRASES["thanks_ack"]["en"]


def test_a_phrase_prefers_the_readers_own_variant() -> None:
    """Dari readers get the Afghan wording, regional Arabic readers the Arabic one."""
    assert phrase("thanks_ack", "prs") == PHRASES["thanks_ack"]["fa-AF"]
    assert phrase("thanks_ack", "fa-AF") == PHRASES["thanks_ack"]["fa-AF"]
    assert phrase("thanks_ack", "fa") == PHRASES["thanks_ack"]["fa"]
    assert phrase("thanks_ack", "ar-EG") == PHRASES["thanks_ack"]["ar"]
    assert PHRASES["thanks_ack"]["fa-AF"] != PHRASES["thanks_ack"]["fa"]


def _isolated(text: str, value: str) -> str:
    """The characters on either side of `value` in `text`, with the value itself."""
    at = text.index(value)
    return text[at - 1:at + len(value) + 1]


def test_a_latin_value_in_an_rtl_phrase_is_isolated_left_to_right() -> None:
    """A code inside Arabic sits between LRI (U+2066) and PDI (U+2069), nothing else added."""
    text = phrase("ack_code", "ar", code="K7F3-Q2MX")
    around = _isolated(text, "K7F3-Q2MX")
    assert [f"U+{ord(c):04X}" for c in (around[0], around[-1])] == ["U+2066", "U+2069"]
    assert around == f"{LRI}K7F3-Q2MX{PDI}"
    assert text.count(LRI) == text.count(PDI) == 1
    assert FSI not in text
    assert text.replace(LRI, "").replace(PDI, "") == PHRASES["ack_code"]["ar"].format(
        code="K7F3-Q2MX")


def test_an_rtl_value_in_an_rtl_phrase_is_isolated_by_first_strong() -> None:
    """An Arabic-script name inside Dari sits between FSI (U+2068) and PDI (U+2069)."""
    text = phrase("backup", "prs", name="حسن رحیمی")
    around = _isolated(text, "حسن رحیمی")
    assert [f"U+{ord(c):04X}" for c in (around[0], around[-1])] == ["U+2068", "U+2069"]
    assert around == f"{FSI}حسن رحیمی{PDI}"
    assert LRI not in text


def test_a_mixed_value_is_isolated_by_first_strong() -> None:
    """A value with any right-to-left letter is not forced left to right."""
    text = phrase("backup", "fa-AF", name="Hassan حسن")
    assert _isolated(text, "Hassan حسن") == f"{FSI}Hassan حسن{PDI}"


def test_an_ltr_phrase_has_no_isolates() -> None:
    """English and regional English carry no bidi control characters."""
    for locale in ("en", "en-GB", "uk"):
        text = phrase("backup", locale, name="حسن")
        assert not {LRI, FSI, PDI} & set(text)
        assert "حسن" in text
